"""Password hashing stays off the event loop; tokens have the promised shape; cursors refuse junk."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from bson import ObjectId

from backend.core import security
from backend.core.clock import utcnow
from backend.core.i18n import locale_from_header
from backend.core.secrets import ensure_jwt_secret, secret_file
from backend.db.cursor import InvalidCursor, decode_cursor, encode_cursor
from kovr.settings import load_settings


async def test_hashing_does_not_block_the_event_loop() -> None:
    task = asyncio.create_task(security.hash_password("비밀번호-1234"))
    ticks = 0
    while not task.done():
        await asyncio.sleep(0.001)
        ticks += 1
    password_hash = task.result()
    assert ticks >= 3  # the loop kept running while argon2 worked in a thread
    assert password_hash.startswith("$argon2id$")
    assert await security.verify_password("비밀번호-1234", password_hash)
    assert not await security.verify_password("비밀번호-1235", password_hash)
    assert not await security.verify_password("x", "not-a-hash")


def test_access_tokens_expire_and_are_typed() -> None:
    token, lifetime = security.create_access_token("abc", secret="s" * 40, algorithm="HS256", minutes=1)
    assert lifetime == 60
    assert security.decode_access_token(token, secret="s" * 40, algorithm="HS256")["sub"] == "abc"
    with pytest.raises(security.TokenError):
        security.decode_access_token(token, secret="t" * 40, algorithm="HS256")
    expired, _ = security.create_access_token("abc", secret="s" * 40, algorithm="HS256", minutes=-1)
    with pytest.raises(security.TokenError):
        security.decode_access_token(expired, secret="s" * 40, algorithm="HS256")


def test_cursor_round_trip_and_junk() -> None:
    at, oid = utcnow(), ObjectId()
    assert decode_cursor(encode_cursor(at, oid)) == (at, oid)
    for junk in ("", "@@@", "bm9wZQ", encode_cursor(at, oid)[:-4]):
        with pytest.raises(InvalidCursor):
            decode_cursor(junk)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "ko"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("ko-KR,ko;q=0.9,en;q=0.8", "ko"),
        ("fr-FR,en;q=0.5", "en"),
        ("fr", "ko"),
        ("en;q=0.2,ko;q=0.9", "ko"),
        ("en;q=abc", "ko"),
    ],
)
def test_locale_from_accept_language(header: str | None, expected: str) -> None:
    assert locale_from_header(header) == expected


def test_jwt_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = load_settings(profile="development", data_dir=tmp_path)
    first = ensure_jwt_secret(settings)
    assert first.jwt_secret is not None and len(first.jwt_secret.get_secret_value()) >= 32
    path = secret_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ensure_jwt_secret(load_settings(profile="development", data_dir=tmp_path))
    assert again.jwt_secret == first.jwt_secret  # same key after a restart: sessions survive
    given = load_settings(profile="development", data_dir=tmp_path, jwt_secret="g" * 40)
    assert ensure_jwt_secret(given).jwt_secret == given.jwt_secret
