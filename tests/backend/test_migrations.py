"""Migrations: fresh → all applied; again → nothing; concurrent runners apply each once; edits reported."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

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
