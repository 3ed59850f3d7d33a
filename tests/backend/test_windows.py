"""Newest-first reads in time windows (backend/db/windows.py): the windows tile the past without gaps
or overlaps, stop once enough is found, and the list and search pages read through them are the
same as one unbounded, sorted read — across ties, an absence of months, and history years old."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId

from backend.core.clock import as_utc, utcnow
from backend.db import conversations as conv_repo
from backend.db import messages as msg_repo
from backend.db.client import Db, open_client
from backend.db.migrate import apply_migrations
from backend.db.windows import MAX_SPAN, Window, newest_first

NOW = dt.datetime(2026, 12, 7, 12, 30, 15, 500_000, tzinfo=dt.UTC)


async def _windows(items: list[dt.datetime], wanted: int, until: dt.datetime | None = None) -> tuple[
        list[Window], int]:
    seen: list[Window] = []
    total = 0

    async def read(window: Window) -> int:
        nonlocal total
        seen.append(window)
        n = sum(1 for t in items if (window.since is None or t >= window.since)
                and (window.until is None or t < window.until))
        total += n
        return n

    await newest_first(read, until=until, start=until or NOW, wanted=wanted)
    return seen, total


async def test_windows_tile_the_past_and_stop_when_enough() -> None:
    recent = [NOW - dt.timedelta(minutes=m) for m in range(0, 50, 5)]  # ten in the last hour
    seen, total = await _windows(recent, wanted=5)
    assert len(seen) == 1 and seen[0].until is None and total == 10
    assert seen[0].since == (NOW - dt.timedelta(hours=1)).replace(microsecond=0)

    # two items a month ago and one five years ago: empty windows grow, the last one is unbounded
    spread = [NOW - dt.timedelta(days=30), NOW - dt.timedelta(days=31), NOW - dt.timedelta(days=5 * 365)]
    seen, total = await _windows(spread, wanted=10)
    assert total == 3 and seen[-1].since is None
    for newer, older in itertools.pairwise(seen):  # contiguous: each starts where the next ends
        assert newer.since is not None and older.until == newer.since
        assert newer.since.microsecond == 0
    assert len(seen) <= 9


async def test_windows_never_overflow_and_cap_their_reach() -> None:
    rng = random.Random(3)
    items = [NOW - dt.timedelta(seconds=rng.randrange(10 ** 9)) for _ in range(40)]  # up to 31 years back
    for wanted in (1, 5, 39, 40, 100):
        seen, total = await _windows(items, wanted=wanted)
        assert total >= min(wanted, len(items))
        starts = [w.since for w in seen if w.since is not None]
        assert all(NOW - since <= MAX_SPAN + dt.timedelta(seconds=1) for since in starts)


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Db]:
    client = open_client(mongo_uri, retry_writes=False)
    database = client[f"win_{uuid.uuid4().hex[:10]}"]
    await apply_migrations(database)
    yield database
    await client.close()


def _dated_id(at: dt.datetime) -> ObjectId:
    return ObjectId(int(at.timestamp()).to_bytes(4, "big") + uuid.uuid4().bytes[:8])


async def _history(db: Db, user: ObjectId) -> list[dict[str, Any]]:
    """45 conversations: some this hour (three sharing one date), a day, a month and years ago."""
    now = utcnow().replace(microsecond=0)
    tie = now - dt.timedelta(minutes=20)
    ages = ([dt.timedelta(minutes=m) for m in (1, 7, 33)] + [now - tie] * 3
            + [dt.timedelta(days=1, minutes=m) for m in range(9)]
            + [dt.timedelta(days=30, hours=h) for h in range(10)]
            + [dt.timedelta(days=400 + 50 * k) for k in range(20)])
    convs, messages = [], []
    for i, age in enumerate(ages):
        at = now - age
        title = f"대화 {i}" + (" 제주도 여행" if i % 4 == 0 else "")
        conv = conv_repo.new_conversation(user_id=user, title=title)
        conv.update(_id=_dated_id(at), created_at=at, updated_at=at)
        text = "제주도에서 본 바다" if i % 3 == 0 else "서울의 날씨"
        message = msg_repo.new_message(conversation_id=conv["_id"], user_id=user, role="user", content=text,
                                       message_id=_dated_id(at))
        message["created_at"] = message["updated_at"] = at
        convs.append(conv)
        messages.append(message)
    await db.conversations.insert_many(convs)
    await db.messages.insert_many([dict(m) for m in messages])
    return convs


def _order(docs: list[dict[str, Any]]) -> list[ObjectId]:
    return [d["_id"] for d in sorted(docs, key=lambda d: (as_utc(d["updated_at"]), d["_id"]), reverse=True)]


async def _all_pages(db: Db, user: ObjectId, size: int, containing: str | None = None) -> list[ObjectId]:
    seen: list[ObjectId] = []
    before = None
    while True:
        page = await conv_repo.list_conversations(db=db, user_id=user, limit=size + 1, before=before,
                                                  containing=containing)
        seen += [d["_id"] for d in page[:size]]
        if len(page) <= size:
            return seen
        before = (page[size - 1]["updated_at"], page[size - 1]["_id"])


async def test_list_and_search_pages_match_one_sorted_read(db: Db) -> None:
    user, other = ObjectId(), ObjectId()
    convs = await _history(db, user)
    await _history(db, other)  # never seen by `user`
    expected = _order(convs)
    for size in (1, 4, 7, 20, 100):
        assert await _all_pages(db, user, size) == expected, size
    jeju = _order([c for i, c in enumerate(convs) if i % 4 == 0 or i % 3 == 0])
    for size in (3, 20):
        assert await _all_pages(db, user, size, containing="제주도") == jeju, size
    seoul = _order([c for i, c in enumerate(convs) if i % 3 != 0])
    assert await _all_pages(db, user, 6, containing="서울") == seoul
