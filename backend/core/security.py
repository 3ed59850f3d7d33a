"""Passwords (argon2 via passlib, off the event loop), JWT access tokens, opaque random tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any

import anyio
from jose import JWTError, jwt
from passlib.context import CryptContext

from backend.core.clock import utcnow

# argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~0.1 s per check on a small
# CPU and little memory per concurrent login. Stored hashes carry their parameters, so a later
# increase still verifies old hashes.
_pwd = CryptContext(
    schemes=["argon2"],
    deprecated="auto",
    argon2__type="ID",
    argon2__memory_cost=19 * 1024,
    argon2__rounds=2,
    argon2__parallelism=1,
)

API_TOKEN_PREFIX = "kovr_"


class TokenError(ValueError):
    """The access token is malformed, badly signed or expired."""


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_pwd.hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    try:
        return await anyio.to_thread.run_sync(_pwd.verify, password, password_hash)
    except (ValueError, TypeError):  # unknown or corrupt hash: a failed login, not a 500
        return False


# A real hash to verify against when the email is unknown, so both cases cost the same time.
_DUMMY_HASH = _pwd.hash("kovr-timing-equaliser")


async def burn_password_check(password: str) -> None:
    await verify_password(password, _DUMMY_HASH)


def create_access_token(
    subject: str, *, secret: str, algorithm: str, minutes: int, extra: dict[str, Any] | None = None
) -> tuple[str, int]:
    """A signed JWT with sub/iat/exp/jti; returns it with its lifetime in seconds."""
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(minutes=minutes)).timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm=algorithm), minutes * 60


def decode_access_token(token: str, *, secret: str, algorithm: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm], options={"require_sub": True})
    except JWTError as exc:
        raise TokenError(str(exc)) from None
    if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
        raise TokenError("not an access token")
    return dict(claims)


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_api_token() -> str:
    """`kovr_` + 32 random bytes, url-safe: shown once, stored only as its sha256."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
