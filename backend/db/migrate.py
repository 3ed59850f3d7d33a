"""Apply the numbered modules in `migrations/` (NNNN_name.py with `async def up(db)`) in order.

Each applied migration is recorded in `_migrations` with the sha256 of its source, so an edited
applied migration is reported. A lease document in `_migrations_lock` keeps two processes that
start at once from applying the same migration twice: the second waits, then finds nothing to do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import importlib
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from pymongo.errors import DuplicateKeyError

from backend.core.clock import utcnow
from backend.db.client import Db

log = logging.getLogger("kovr.migrate")

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+$")
LOCK_ID = "migrations"
LOCK_COLLECTION = "_migrations_lock"
RECORD_COLLECTION = "_migrations"
PACKAGE = "migrations"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    name: str
    module_name: str
    path: Path
    checksum: str

    def load(self) -> ModuleType:
        module = importlib.import_module(self.module_name)
        if not callable(getattr(module, "up", None)):
            raise MigrationError(f"migration {self.name} has no `async def up(db)`")
        return module


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # applied earlier, source edited since
    unknown: list[str] = field(default_factory=list)  # recorded in the database, missing on disk


def discover(package: str = PACKAGE) -> list[Migration]:
    module = importlib.import_module(package)
    folder = Path(module.__file__ or "").parent
    found = []
    for path in sorted(folder.glob("*.py")):
        if _NAME.match(path.stem):
            found.append(
                Migration(
                    path.stem, f"{package}.{path.stem}", path, hashlib.sha256(path.read_bytes()).hexdigest()
                )
            )
    numbers = [m.name[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number: {numbers}")
    return found


async def _acquire(db: Db, owner: str, lease_s: float, wait_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        now = utcnow()
        try:
            # Take the lock if it is free or its holder's lease ran out (a crashed process).
            await db[LOCK_COLLECTION].update_one(
                {"_id": LOCK_ID, "$or": [{"locked_until": {"$lt": now}}, {"owner": owner}]},
                {"$set": {"owner": owner, "locked_until": now + dt.timedelta(seconds=lease_s), "since": now}},
                upsert=True,
            )
            return
        except DuplicateKeyError:  # someone else holds it: the upsert collided with their document
            if asyncio.get_running_loop().time() > deadline:
                raise MigrationError(
                    f"another process holds the migration lock for over {wait_s:.0f}s"
                ) from None
            await asyncio.sleep(0.2)


async def _release(db: Db, owner: str) -> None:
    await db[LOCK_COLLECTION].update_one(
        {"_id": LOCK_ID, "owner": owner}, {"$set": {"locked_until": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)}}
    )


async def migration_status(db: Db, migrations: list[Migration] | None = None) -> MigrationReport:
    migrations = discover() if migrations is None else migrations
    recorded = {doc["_id"]: doc async for doc in db[RECORD_COLLECTION].find({})}
    report = MigrationReport()
    for migration in migrations:
        doc = recorded.pop(migration.name, None)
        if doc is None:
            continue
        report.already.append(migration.name)
        if doc.get("checksum") != migration.checksum:
            report.changed.append(migration.name)
    report.unknown = sorted(recorded)
    return report


async def apply_migrations(
    db: Db, *, migrations: list[Migration] | None = None, lease_s: float = 300, wait_s: float = 120
) -> MigrationReport:
    """Apply every pending migration under the lock; safe to call from many processes at once."""
    migrations = discover() if migrations is None else migrations
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    await _acquire(db, owner, lease_s, wait_s)
    try:
        report = await migration_status(db, migrations)
        for migration in migrations:
            if migration.name in report.already:
                continue
            started = utcnow()
            await migration.load().up(db)
            await db[RECORD_COLLECTION].insert_one(
                {
                    "_id": migration.name,
                    "checksum": migration.checksum,
                    "applied_at": utcnow(),
                    "duration_ms": int((utcnow() - started).total_seconds() * 1000),
                }
            )
            report.applied.append(migration.name)
            log.info("migration applied: %s", migration.name)
    finally:
        await _release(db, owner)
    for name in report.changed:
        log.warning("migration %s was edited after it was applied (checksum differs)", name)
    return report
