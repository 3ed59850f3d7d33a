"""Sign-in rate limiting, per account and per client address, on failed attempts in a sliding window.

Kept in the database (`login_attempts`) so several app processes share the count.
"""

from __future__ import annotations

import datetime as dt
import math

from backend.core.clock import as_utc, utcnow
from backend.db import login_attempts
from backend.db.client import Db
from backend.services.errors import RateLimited
from kovr.settings import Settings


def _keys(email: str, client_ip: str | None) -> list[tuple[str, str]]:
    keys = [("account", f"email:{email.strip().lower()}")]
    if client_ip:
        keys.append(("address", f"ip:{client_ip}"))
    return keys


async def check_login_allowed(*, db: Db, settings: Settings, email: str, client_ip: str | None) -> None:
    """Raise RateLimited with the seconds until the oldest counted failure leaves the window."""
    now = utcnow()
    window = dt.timedelta(seconds=settings.login_rate_window_s)
    limits = {"account": settings.login_rate_limit, "address": settings.login_rate_limit_address}
    retry_after = 0
    for kind, key in _keys(email, client_ip):
        count, oldest = await login_attempts.failures_since(db=db, key=key, since=now - window)
        if count >= limits[kind] and oldest is not None:
            wait = (as_utc(oldest) + window - now).total_seconds()
            retry_after = max(retry_after, max(1, math.ceil(wait)))
    if retry_after:
        raise RateLimited(retry_after)


async def record_login_failure(*, db: Db, settings: Settings, email: str, client_ip: str | None) -> None:
    keys = [key for _, key in _keys(email, client_ip)]
    await login_attempts.record_failure(db=db, keys=keys, at=utcnow(), window_s=settings.login_rate_window_s)


async def record_login_success(*, db: Db, email: str) -> None:
    await login_attempts.clear_failures(db=db, key=_keys(email, None)[0][1])
