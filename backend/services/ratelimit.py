"""Rate limits on accounts, in a sliding window: failed sign-ins per account and per client address,
and sign-ups per client address (each costs an argon2 hash and creates an account).

Kept in the database (`login_attempts`) so several app processes share the count.
"""

from __future__ import annotations

import datetime as dt
import math

from backend.core.clock import as_utc, utcnow
from backend.core.errors import AppError
from backend.core.text import normalise_email
from backend.db import login_attempts
from backend.db.client import Db
from kovr.settings import Settings


def _keys(email: str, client_ip: str | None) -> list[tuple[str, str]]:
    keys = [("account", f"email:{normalise_email(email)}")]
    if client_ip:
        keys.append(("address", f"ip:{client_ip}"))
    return keys


async def check_login_allowed(*, db: Db, settings: Settings, email: str, client_ip: str | None) -> None:
    """Raise RateLimited with the seconds until the oldest counted failure leaves the window."""
    limits = {"account": settings.login_rate_limit, "address": settings.login_rate_limit_address}
    waits = [await _retry_after(db, key, limits[kind], settings.login_rate_window_s)
             for kind, key in _keys(email, client_ip)]
    if max(waits):
        raise AppError("rate_limited", retry_after_s=max(waits))


async def check_signup_allowed(*, db: Db, settings: Settings, client_ip: str | None) -> None:
    """Count this sign-up attempt against its address, or raise RateLimited if the address has used its quota."""
    if not client_ip:
        return
    key, window = f"signup-ip:{client_ip}", settings.signup_rate_window_s
    wait = await _retry_after(db, key, settings.signup_rate_limit_address, window)
    if wait:
        raise AppError("rate_limited", retry_after_s=wait)
    # Counted before the password is hashed, successful or not: the hash is the expensive part.
    await login_attempts.record(db=db, keys=[key], at=utcnow(), window_s=window)


async def _retry_after(db: Db, key: str, limit: int, window_s: int) -> int:
    """0 if ``key`` has fewer than ``limit`` entries in the window, else seconds until the oldest leaves it."""
    now = utcnow()
    window = dt.timedelta(seconds=window_s)
    count, oldest = await login_attempts.count_since(db=db, key=key, since=now - window)
    if count < limit or oldest is None:
        return 0
    return max(1, math.ceil((as_utc(oldest) + window - now).total_seconds()))


async def record_login_failure(*, db: Db, settings: Settings, email: str, client_ip: str | None) -> None:
    keys = [key for _, key in _keys(email, client_ip)]
    await login_attempts.record(db=db, keys=keys, at=utcnow(), window_s=settings.login_rate_window_s)


async def clear_account_failures(*, db: Db, email: str) -> None:
    """After a good sign-in, or when the account is deleted (per-address counts stay: they are not
    one account's alone)."""
    await login_attempts.clear(db=db, key=_keys(email, None)[0][1])
