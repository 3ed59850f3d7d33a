"""Migrations: fresh → all applied; again → nothing; concurrent runners apply each once; edits reported."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from backend.db.client import Db, open_client
from backend.db.migrate import LOCK_COLLECTION, MigrationError, apply_migrations, discover, migration_status

SLOW_MIGRATION = """
import asyncio

async def up(db):
    await db.counters.update_one({"_id": "{name}"}, {"$inc": {"runs": 1}}, upsert=True)
    await asyncio.sleep(0.3)  # long enough for a second runner to arrive while this one holds the lock
"""


@pytest.fixture
async def fresh_db(mongo_uri: str) -> AsyncIterator[Db]:
    client = open_client(mongo_uri)
    yield client[f"migr_{uuid.uuid4().hex[:10]}"]
    await client.close()


@pytest.fixture
def migration_package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A throw-away migrations package with two slow, counting migrations."""
    name = f"kovr_test_migrations_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for stem in ("0001_first", "0002_second"):
        (folder / f"{stem}.py").write_text(textwrap.dedent(SLOW_MIGRATION).replace("{name}", stem))
    (folder / "helpers.py").write_text("# not a migration: no number\n")
    sys.path.insert(0, str(tmp_path))
    yield name, folder
    sys.path.remove(str(tmp_path))


async def test_fresh_database_gets_everything_then_nothing(fresh_db: Db) -> None:
    names = [m.name for m in discover()]
    assert names[0] == "0001_initial" and names == sorted(names)
    first = await apply_migrations(fresh_db)
    assert first.applied == names and first.changed == []
    expected = {
        "users",
        "refresh_tokens",
        "api_tokens",
        "conversations",
        "messages",
        "images",
        "feedback",
        "login_attempts",
    }
    assert expected <= set(await fresh_db.list_collection_names())
    users_indexes = await fresh_db.users.index_information()
    assert users_indexes["email_unique"]["unique"] is True
    ttl = await fresh_db.refresh_tokens.index_information()
    assert ttl["expires_ttl"]["expireAfterSeconds"] == 0
    recorded = await fresh_db["_migrations"].find_one({"_id": "0001_initial"})
    assert recorded is not None and len(recorded["checksum"]) == 64

    second = await apply_migrations(fresh_db)
    assert second.applied == [] and second.already == names


async def test_concurrent_runners_apply_each_migration_once(
    mongo_uri: str, migration_package: tuple[str, Path]
) -> None:
    package, _ = migration_package
    migrations = discover(package)
    assert [m.name for m in migrations] == ["0001_first", "0002_second"]
    db_name = f"migr_{uuid.uuid4().hex[:10]}"
    clients = [open_client(mongo_uri) for _ in range(3)]
    try:
        reports = await asyncio.gather(
            *(apply_migrations(c[db_name], migrations=migrations) for c in clients)
        )
        applied = sorted(name for r in reports for name in r.applied)
        assert applied == ["0001_first", "0002_second"]
        runs = {d["_id"]: d["runs"] async for d in clients[0][db_name].counters.find({})}
        assert runs == {"0001_first": 1, "0002_second": 1}
    finally:
        for c in clients:
            await c.close()


async def test_edited_applied_migration_is_reported(
    fresh_db: Db, migration_package: tuple[str, Path]
) -> None:
    package, folder = migration_package
    await apply_migrations(fresh_db, migrations=discover(package))
    path = folder / "0001_first.py"
    path.write_text(path.read_text() + "\n# edited after it was applied\n")
    status = await migration_status(fresh_db, discover(package))
    assert status.changed == ["0001_first"]
    report = await apply_migrations(fresh_db, migrations=discover(package))
    assert report.applied == [] and report.changed == ["0001_first"]


async def test_stale_lock_is_taken_over_and_live_lock_waits(fresh_db: Db, migration_package: Any) -> None:
    package, _ = migration_package
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    await fresh_db[LOCK_COLLECTION].insert_one(
        {"_id": "migrations", "owner": "crashed", "locked_until": past}
    )
    report = await apply_migrations(fresh_db, migrations=discover(package))
    assert report.applied == ["0001_first", "0002_second"]

    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    await fresh_db[LOCK_COLLECTION].update_one(
        {"_id": "migrations"}, {"$set": {"owner": "alive", "locked_until": future}}
    )
    with pytest.raises(MigrationError, match="lock"):
        await apply_migrations(fresh_db, migrations=discover(package), wait_s=0.5)


async def test_search_keys_are_backfilled_on_old_data_once(fresh_db: Db) -> None:
    """0004 on data stored before it (no keys): every message and title gets its bigram keys, the
    search finds them, and a second run changes nothing."""
    from backend.db import conversations as conv_repo

    older = [m for m in discover() if m.name < "0004"]
    await apply_migrations(fresh_db, migrations=older)
    user, conv = ObjectId(), ObjectId()
    now = dt.datetime.now(dt.UTC)
    await fresh_db.conversations.insert_one({"_id": conv, "user_id": user, "title": "Old Trip 계획", "created_at": now,
                                             "updated_at": now, "model": None, "message_count": 1})
    await fresh_db.messages.insert_many([
        {"conversation_id": conv, "user_id": user, "role": "user", "content": f"{i}번째: 제주도에서 귤을 샀어요",
         "status": "complete", "image_ids": [], "created_at": now, "updated_at": now} for i in range(1203)])
    report = await apply_migrations(fresh_db)
    assert [m for m in report.applied if m.startswith("0004")] == ["0004_search_keys"]
    assert await fresh_db.messages.count_documents({"search_keys": {"$exists": False}}) == 0
    stored = await fresh_db.conversations.find_one({"_id": conv})
    assert stored is not None and {"ol", "tr", "계획"} <= set(stored["title_keys"])
    for q in ("제주도", "귤", "TRIP"):
        found = await conv_repo.list_conversations(db=fresh_db, user_id=user, limit=5, containing=q)
        assert [c["_id"] for c in found] == [conv], q
    assert (await apply_migrations(fresh_db)).applied == []


async def test_message_tree_converts_old_conversations_once(fresh_db: Db) -> None:
    """0006 on conversations stored the old way (linear, answers with `alternatives`): parents by
    time, each alternative a sibling answer with its fields and rating, the current answers shown;
    a second run (also one cut short) changes nothing."""
    import importlib

    from backend.db.tree import Tree

    await apply_migrations(fresh_db, migrations=[m for m in discover() if m.name < "0006"])
    user, conv, empty = ObjectId(), ObjectId(), ObjectId()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    at = [t0 + dt.timedelta(minutes=i) for i in range(10)]
    await fresh_db.conversations.insert_many([
        {"_id": c, "user_id": user, "title": "예전 대화", "created_at": t0, "updated_at": t0, "model": None,
         "message_count": 4} for c in (conv, empty)])
    q0, a0, q1, a1 = ObjectId(), ObjectId(), ObjectId(), ObjectId()

    def message(_id: ObjectId, role: str, content: str, when: dt.datetime, **extra: Any) -> dict[str, Any]:
        return {"_id": _id, "conversation_id": conv, "user_id": user, "role": role, "content": content,
                "status": "complete", "image_ids": [], "created_at": when, "updated_at": when, **extra}

    alternatives = [
        {"content": "첫 답", "status": "complete", "finish_reason": "eos_token", "generated_tokens": 3,
         "feedback": {"rating": 1, "comment": "좋아요"}, "parameters": {"temperature": 0.0}, "error": None,
         "created_at": at[2]},
        {"content": "둘째 답", "status": "stopped", "finish_reason": "stopped", "generated_tokens": 2,
         "feedback": None, "parameters": {"temperature": 1.0}, "error": None, "created_at": at[3]},
    ]
    await fresh_db.messages.insert_many([
        message(q0, "user", "질문 하나", at[0]),
        message(a0, "assistant", "셋째 답", at[1], attempt=2, alternatives=alternatives, feedback=None),
        message(q1, "user", "질문 둘", at[4]),
        message(a1, "assistant", "답 둘", at[5]),
    ])
    # The rating given to the first answer before it was regenerated, stored under the message's id.
    await fresh_db.feedback.insert_one({"message_id": a0, "user_id": user, "conversation_id": conv, "rating": 1,
                                        "comment": "좋아요", "content": "첫 답", "created_at": at[2]})

    report = await apply_migrations(fresh_db)
    assert "0006_message_tree" in report.applied

    async def snapshot() -> list[dict[str, Any]]:
        docs = await fresh_db.messages.find({"conversation_id": conv}, {"search_keys": 0}).to_list(None)
        return sorted(docs, key=lambda d: (d["created_at"], d["_id"]))

    docs = await snapshot()
    by_id = {d["_id"]: d for d in docs}
    assert len(docs) == 6 and all("alternatives" not in d for d in docs)
    assert [by_id[i]["parent_id"] for i in (q0, a0, q1, a1)] == [None, q0, a0, q1]
    assert by_id[a0]["attempt"] == 2 and by_id[a0]["content"] == "셋째 답"
    siblings = [d for d in docs if d["parent_id"] == q0]
    assert [d["content"] for d in siblings] == ["첫 답", "둘째 답", "셋째 답"]  # the current one is the newest
    first, second = siblings[0], siblings[1]
    assert by_id[a0]["created_at"] == at[3] + dt.timedelta(milliseconds=1) < by_id[q1]["created_at"]
    assert first["status"] == "complete" and first["feedback"] == {"rating": 1, "comment": "좋아요"}
    assert first["parameters"] == {"temperature": 0.0} and first["created_at"] == at[2]
    assert second["status"] == "stopped" and second["finish_reason"] == "stopped"
    assert second["role"] == "assistant" and second["user_id"] == user and second["conversation_id"] == conv
    # The rating moved to the answer it was given to.
    ratings = await fresh_db.feedback.find({"conversation_id": conv}).to_list(None)
    assert [(r["message_id"], r["rating"]) for r in ratings] == [(first["_id"], 1)]
    # The conversation shows what it showed before: the newest answers.
    stored = await fresh_db.conversations.find_one({"_id": conv})
    assert stored is not None and stored["current_leaf_id"] == a1
    assert Tree(docs).path(a1) == [q0, a0, q1, a1]
    assert (await fresh_db.conversations.find_one({"_id": empty}) or {})["current_leaf_id"] is None
    assert "conversation_parent" in await fresh_db.messages.index_information()

    # Again, in full and as if cut short before the conversation was marked: the same documents.
    module = importlib.import_module("migrations.0006_message_tree")
    await module.up(fresh_db)
    await fresh_db.conversations.update_one({"_id": conv}, {"$unset": {"current_leaf_id": ""}})
    await module.up(fresh_db)
    assert await snapshot() == docs
    assert (await fresh_db.conversations.find_one({"_id": conv}) or {})["current_leaf_id"] == a1
    assert await fresh_db.feedback.count_documents({"conversation_id": conv}) == 1


async def test_usage_admin_indexes_are_made_once_on_old_data(fresh_db: Db) -> None:
    """0007 on a database from before it: usage_daily is unique per user and day (the quota's
    conditional upsert relies on it), audit is ordered by time; a second run changes nothing."""
    older = [m for m in discover() if m.name < "0007"]
    await apply_migrations(fresh_db, migrations=older)
    user = ObjectId()
    await fresh_db.usage_daily.insert_one({"user_id": user, "day": "2026-01-01", "messages": 1})
    report = await apply_migrations(fresh_db)
    assert "0007_usage_admin" in report.applied
    usage = await fresh_db.usage_daily.index_information()
    assert usage["user_day"]["unique"] is True
    assert "at" in await fresh_db.audit.index_information()
    with pytest.raises(DuplicateKeyError):
        await fresh_db.usage_daily.insert_one({"user_id": user, "day": "2026-01-01", "messages": 1})
    await importlib.import_module("migrations.0007_usage_admin").up(fresh_db)  # again, by hand


async def test_shares_and_consent_migration_on_old_users(fresh_db: Db) -> None:
    """0008 on users stored before it: each gets training_consent false (never true by default), a
    value already set is kept, the shares indexes exist, and a second run changes nothing."""
    older = [m for m in discover() if m.name < "0008"]
    await apply_migrations(fresh_db, migrations=older)
    now = dt.datetime.now(dt.UTC)
    old, decided = ObjectId(), ObjectId()
    await fresh_db.users.insert_many([
        {"_id": old, "email": "old@example.com", "display_name": "옛 사용자", "created_at": now},
        {"_id": decided, "email": "yes@example.com", "display_name": "동의", "created_at": now,
         "training_consent": True},
    ])
    report = await apply_migrations(fresh_db)
    assert "0008_shares_consent" in report.applied
    assert (await fresh_db.users.find_one({"_id": old}) or {})["training_consent"] is False
    assert (await fresh_db.users.find_one({"_id": decided}) or {})["training_consent"] is True
    indexes = await fresh_db.shares.index_information()
    assert {"user_created", "conversation_user"} <= set(indexes)
    assert "training_consent" in await fresh_db.users.index_information()
    from importlib import import_module

    await import_module("migrations.0008_shares_consent").up(fresh_db)  # idempotent when run again by hand
    assert await fresh_db.users.count_documents({"training_consent": {"$exists": False}}) == 0
    assert (await apply_migrations(fresh_db)).applied == []


async def test_redundant_message_indexes_are_dropped_once(fresh_db: Db) -> None:
    """0009 on a database from before it: the two indexes other indexes already serve are gone, the
    ones the chat path plans on stay, and a second run (by hand or by the runner) changes nothing."""
    await apply_migrations(fresh_db, migrations=[m for m in discover() if m.name < "0009"])
    assert {"conversation_created", "user"} <= set(await fresh_db.messages.index_information())
    assert "0009_leaner_message_indexes" in (await apply_migrations(fresh_db)).applied
    names = set(await fresh_db.messages.index_information())
    assert not names & {"conversation_created", "user"}
    assert {"conversation_user_created", "user_role_created", "user_search_keys", "status_lease"} <= names
    await importlib.import_module("migrations.0009_leaner_message_indexes").up(fresh_db)
    assert set(await fresh_db.messages.index_information()) == names
    assert (await apply_migrations(fresh_db)).applied == []


async def test_title_index_gains_the_date_once(fresh_db: Db) -> None:
    """0010 on a database from before it: the title index carries `updated_at` (search reads in time
    windows), the old one is gone, a title search on old data still finds it, and a second run
    changes nothing."""
    from backend.db import conversations as conv_repo

    await apply_migrations(fresh_db, migrations=[m for m in discover() if m.name < "0010"])
    user = ObjectId()
    conv = conv_repo.new_conversation(user_id=user, title="제주도 여행 계획")
    await fresh_db.conversations.insert_one(conv)
    assert "user_title_keys" in await fresh_db.conversations.index_information()
    assert "0010_dated_title_keys" in (await apply_migrations(fresh_db)).applied
    indexes = await fresh_db.conversations.index_information()
    assert "user_title_keys" not in indexes
    assert indexes["user_title_keys_updated"]["key"] == [("user_id", 1), ("title_keys", 1), ("updated_at", -1)]
    found = await conv_repo.list_conversations(db=fresh_db, user_id=user, limit=5, containing="여행")
    assert [c["_id"] for c in found] == [conv["_id"]]
    await importlib.import_module("migrations.0010_dated_title_keys").up(fresh_db)
    assert set(await fresh_db.conversations.index_information()) == set(indexes)
    assert (await apply_migrations(fresh_db)).applied == []
