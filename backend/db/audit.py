"""Repository: the audit trail of admin actions (`audit`: actor_id, action, target_id, details, at;
index `at`, migration 0007). Written once, never changed."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from backend.core.clock import utcnow
from backend.db.client import Db
from backend.db.models import AuditDoc


async def record(*, db: Db, actor_id: ObjectId, action: str, target_id: ObjectId | None,
                 details: dict[str, Any] | None = None) -> AuditDoc:
    doc = AuditDoc(actor_id=actor_id, action=action, target_id=target_id, details=details or {}, at=utcnow())
    doc["_id"] = (await db.audit.insert_one(dict(doc))).inserted_id
    return doc


async def latest(*, db: Db, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first."""
    return await db.audit.find({}).sort([("at", -1), ("_id", -1)]).limit(limit).to_list(length=limit)
