"""Admin use cases: users with their usage, disabling and enabling accounts, per-user quotas,
the audit trail, the model server's state. The front doors let only admins in (404 for everyone
else); every change here writes an audit entry {actor_id, action, target_id, details, at}."""

from __future__ import annotations

import dataclasses
from typing import Any

from backend.chat.model_client import ModelClient
from backend.chat.model_metrics import load_between
from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import audit as audit_repo
from backend.db import refresh_tokens as refresh_repo
from backend.db import usage as usage_repo
from backend.db import users as users_repo
from backend.db.client import Db
from backend.db.ids import parse_id
from backend.schemas.admin import AdminUser, AdminUserPage, AuditEntry, ModelState, QuotaUpdate
from backend.schemas.common import public_value
from backend.schemas.usage import UsageTotals

PAGE_LIMIT = 100


def is_admin(user: dict[str, Any] | None) -> bool:
    return bool(user and user.get("role") == "admin" and not user.get("disabled"))


def _totals(doc: dict[str, Any] | None) -> UsageTotals:
    doc = doc or {}
    return UsageTotals(messages=doc.get("messages", 0), prompt_tokens=doc.get("prompt_tokens", 0),
                       generated_tokens=doc.get("generated_tokens", 0))


def _admin_user(doc: dict[str, Any], today: dict[str, Any] | None, month: dict[str, Any] | None) -> AdminUser:
    return AdminUser(
        id=str(doc["_id"]), email=doc["email"], display_name=doc["display_name"], role=doc.get("role", "user"),
        disabled=bool(doc.get("disabled")), created_at=doc["created_at"],
        quota_messages_per_day=doc.get("quota_messages_per_day"), quota_tokens_per_day=doc.get("quota_tokens_per_day"),
        today=_totals(today), month=_totals(month),
    )


async def _with_usage(db: Db, docs: list[dict[str, Any]]) -> list[AdminUser]:
    ids, today = [d["_id"] for d in docs], utcnow().date()
    month = await usage_repo.totals_by_user(db=db, user_ids=ids, since=today.replace(day=1).isoformat())
    day = await usage_repo.totals_by_user(db=db, user_ids=ids, since=today.isoformat())
    return [_admin_user(d, day.get(d["_id"]), month.get(d["_id"])) for d in docs]


async def list_users(db: Db, *, cursor: str | None, limit: int) -> AdminUserPage:
    """Oldest account first; `cursor` is the last id of the previous page."""
    after = None if cursor is None else parse_id(cursor)
    if cursor is not None and after is None:
        raise AppError("invalid_cursor")
    docs = await users_repo.list_users(db=db, after=after, limit=min(limit, PAGE_LIMIT) + 1)
    page, more = docs[:limit], len(docs) > limit
    return AdminUserPage(items=await _with_usage(db, page), next_cursor=str(page[-1]["_id"]) if more else None)


async def get_user(db: Db, *, user_id: str) -> AdminUser:
    return (await _with_usage(db, [await _target(db, user_id)]))[0]


async def _target(db: Db, user_id: str) -> dict[str, Any]:
    oid = parse_id(user_id)
    doc = None if oid is None else await users_repo.get_user(db=db, user_id=oid)
    if doc is None:
        raise AppError("user_not_found")
    return doc


async def set_disabled(db: Db, *, actor: dict[str, Any], user_id: str, disabled: bool) -> AdminUser:
    """Disabling ends the account's sign-ins (refresh families revoked) and, with its user record
    disabled, every access token and API token stops: this worker forgets them at once, other
    workers within `auth_cache_s`. Enabling lets API tokens work again; sessions need a new sign-in."""
    target = await _target(db, user_id)
    if disabled and target["_id"] == actor["_id"]:
        raise AppError("cannot_disable_self")
    await users_repo.update_user(db=db, user_id=target["_id"], changes={"disabled": disabled})
    if disabled:
        await refresh_repo.revoke_user_tokens(db=db, user_id=target["_id"])
    await audit_repo.record(db=db, actor_id=actor["_id"], action="user.disable" if disabled else "user.enable",
                            target_id=target["_id"], details={"email": target["email"], "by": actor["email"]})
    return await get_user(db, user_id=user_id)


async def set_quota(db: Db, *, actor: dict[str, Any], user_id: str, quota: QuotaUpdate) -> AdminUser:
    target = await _target(db, user_id)
    await users_repo.set_quota(db=db, user_id=target["_id"], messages_per_day=quota.messages_per_day,
                               tokens_per_day=quota.tokens_per_day)
    await audit_repo.record(db=db, actor_id=actor["_id"], action="user.quota", target_id=target["_id"],
                            details={"email": target["email"], "by": actor["email"], **quota.model_dump()})
    return await get_user(db, user_id=user_id)


async def audit_log(db: Db, *, limit: int = 50) -> list[AuditEntry]:
    return [AuditEntry(id=str(d["_id"]), actor_id=str(d["actor_id"]), action=d["action"],
                       target_id=str(d["target_id"]) if d.get("target_id") else None,
                       details=public_value(d.get("details") or {}), at=d["at"])
            for d in await audit_repo.latest(db=db, limit=limit)]


async def model_state(model: ModelClient) -> ModelState:
    """/info and /metrics of the model server; an unreachable one is reported, not raised."""
    try:
        info = await model.info(refresh=True)
        current = await model.metrics()
    except AppError:
        return ModelState(reachable=False, info={}, queue_length=None, running=None, tokens_per_second=None,
                          throughput=None, generated_tokens=None, window_s=None)
    load = load_between(model.previous_metrics, current)
    return ModelState(reachable=True, info=info.raw, **dataclasses.asdict(load))

