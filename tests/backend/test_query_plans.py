"""Every database access on the chat path is an index lookup on the embedded database (SecantusDB).

The repository functions the chat path calls are run against a database with some history; every
command they send is captured (pymongo command monitoring) and its filter explained. SecantusDB
plans an index only when the index holds every filtered field, and `explain` works for finds only,
so updates, deletes and counts are explained as the find of the same filter. A filter on `_id`
equality is a point lookup there even where `explain` says COLLSCAN (not asserted beyond that).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from backend.db import conversations as conv_repo
from backend.db import messages as msg_repo
from backend.db import refresh_tokens, usage, users
from backend.db.client import Db
from backend.db.migrate import apply_migrations


class Captured(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "update", "delete", "aggregate"):
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(mongo_uri: str) -> AsyncIterator[tuple[Db, Captured]]:
    listener = Captured()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True, retryWrites=False,
                                                                event_listeners=[listener])
    db = client[f"plans_{uuid.uuid4().hex[:8]}"]
    await apply_migrations(db)
    yield db, listener
    await client.close()


def _filters(command: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    name = next(iter(command))
    coll = command[name]
    if name == "find":
        return [(coll, command.get("filter", {}), command.get("sort"))]
    if name == "update":
        return [(coll, u["q"], None) for u in command["updates"]]
    if name == "delete":
        return [(coll, d["q"], None) for d in command["deletes"]]
    match = next((s["$match"] for s in command.get("pipeline", []) if "$match" in s), None)
    return [] if match is None else [(coll, match, None)]


def _stages(plan: dict[str, Any]) -> list[str]:
    stages, node = [], plan.get("queryPlanner", {}).get("winningPlan", {})
    while node:
        stages.append(node.get("stage", ""))
        node = node.get("inputStage")
    return stages


async def test_the_chat_paths_queries_are_index_lookups(watched: tuple[Db, Captured]) -> None:
    db, listener = watched
    user = await users.create_user(db=db, email=f"{uuid.uuid4().hex[:6]}@example.com", password_hash="x",
                                   display_name="가")
    uid = user["_id"]
    conv = await conv_repo.create_conversation(db=db, user_id=uid, title="새 대화")
    await msg_repo.insert_messages(db=db, docs=[
        msg_repo.new_message(conversation_id=conv["_id"], user_id=uid, role="user", content=f"제주도 {i}")
        for i in range(50)])
    await refresh_tokens.insert_refresh_token(db=db, user_id=uid, token_hash=uuid.uuid4().hex, family_id="fam",
                                              expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    listener.commands.clear()

    # auth (on a cache miss), send, stream, end, sweep, list, search
    await users.get_user(db=db, user_id=uid)
    await refresh_tokens.family_active(db=db, family_id="fam")
    await conv_repo.get_conversation(db=db, user_id=uid, conversation_id=conv["_id"])
    answer = msg_repo.new_message(conversation_id=conv["_id"], user_id=uid, role="assistant", content="")
    msg_repo.new_job(answer, worker_id="w1", lease_s=8, parameters={}, attempt=0)
    await conv_repo.claim(db=db, user_id=uid, conversation_id=conv["_id"], message_id=answer["_id"],
                          shown=conv_repo.Shown(leaf_id=answer["_id"], added_messages=2, title="t"))
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    await msg_repo.count_recent_user_messages(db=db, user_id=uid, since=since,
                                              until=dt.datetime.now(dt.UTC))
    await msg_repo.latest_messages(db=db, user_id=uid, conversation_id=conv["_id"], limit=402)
    await msg_repo.insert_messages(db=db, docs=[answer])
    # the tree: the shown branch, siblings, a switch, a deleted subtree
    await msg_repo.tree_nodes(db=db, user_id=uid, conversation_id=conv["_id"])
    await msg_repo.get_messages(db=db, user_id=uid, message_ids=[answer["_id"]])
    await msg_repo.siblings_of(db=db, message=answer)
    await msg_repo.has_children(db=db, message=answer)
    await conv_repo.set_leaf(db=db, user_id=uid, conversation_id=conv["_id"], leaf_id=answer["_id"])
    await msg_repo.delete_messages(db=db, user_id=uid, message_ids=[ObjectId()])
    await msg_repo.save_progress(db=db, message_id=answer["_id"], worker_id="w1", content="안녕", generated_tokens=1,
                                 lease_until=dt.datetime.now(dt.UTC))
    await msg_repo.finish_job(db=db, message_id=answer["_id"], worker_id="w1", changes={"content": "안녕하세요"})
    await conv_repo.release(db=db, conversation_id=conv["_id"], message_id=answer["_id"])
    await conv_repo.release(db=db, conversation_id=conv["_id"], message_id=answer["_id"],
                            undo=(conv, conv_repo.Shown(leaf_id=answer["_id"], added_messages=2, title="t")))
    await msg_repo.get_job(db=db, message_id=answer["_id"])
    await msg_repo.expired_jobs(db=db)
    await msg_repo.settle_if_expired(db=db, message_id=answer["_id"])
    await msg_repo.get_message(db=db, user_id=uid, message_id=answer["_id"])
    await conv_repo.list_conversations(db=db, user_id=uid, limit=20)
    await conv_repo.list_conversations(db=db, user_id=uid, limit=20, containing="제주도")
    await conv_repo.list_conversations(db=db, user_id=uid, limit=20, containing="제")
    # a next page, and pages reaching years back (windows: backend/db/windows.py)
    page_two = (dt.datetime.now(dt.UTC), ObjectId())
    await conv_repo.list_conversations(db=db, user_id=uid, limit=20, before=page_two)
    await conv_repo.list_conversations(db=db, user_id=uid, limit=20, before=page_two, containing="제주도")
    # the daily quota's reservation (both limits, one, none), settling, the usage page and admin list
    for limits in (usage.Limits(messages=100, tokens=10_000), usage.Limits(messages=100, tokens=0),
                   usage.Limits(messages=0, tokens=0)):
        held = await usage.reserve(db=db, user_id=uid, tokens=10, limits=limits)
        assert held is not None
        await usage.settle(db=db, reservation=held, prompt_tokens=5, generated_tokens=3)
    assert held is not None
    await usage.release(db=db, reservation=held)
    await usage.days(db=db, user_id=uid, since="2026-01-01")
    await usage.totals_by_user(db=db, user_ids=[uid], since="2026-01-01")

    scans = []
    checked = 0
    for command in listener.commands:
        for coll, query, sort in _filters(command):
            if isinstance(query.get("_id"), (ObjectId, str)):
                continue  # a point lookup (ObjectIds, and the string keys of usage_daily)
            cursor = db[coll].find(query)
            if sort:
                cursor = cursor.sort(list(sort.items()))
            stages = _stages(await cursor.explain())
            checked += 1
            if "COLLSCAN" in stages:
                scans.append((coll, query, stages))
    assert checked >= 10
    assert scans == [], scans
