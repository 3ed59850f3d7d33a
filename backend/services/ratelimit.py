"""Rate limits on accounts and uploads, each decided by one atomic database operation.

Every attempt is counted *before* the work it guards (the password check, the argon2 hash of a
sign-up, storing an upload) by `login_attempts.hit`, which returns the new count in the same
operation; the attempt goes on only if that count is within the limit. N concurrent attempts
therefore let exactly the limit through. Windows are fixed (they start at multiples of their
length); Retry-After is the time until the current one ends. Kept in the database so several
app processes share the counts.

Sign-in policy (docs/security.md), per window `login_rate_window_s`:
- per account *and* client address: `login_rate_limit` attempts — the everyday limit, and the
  only one a single attacker runs into: it locks out that attacker's address for that account,
  not the owner signing in from their own address;
- per account from all addresses: `login_rate_limit_account` (much higher) — a ceiling against
  distributed guessing; reaching it needs many addresses;
- per client address over all accounts: `login_rate_limit_address` — against one address
  spraying many accounts.
A good sign-in gives its attempt back (and clears the account+address count), so only failures
(and attempts still in flight) use up the allowance.
"""

from __future__ import annotations

import math

from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.core.text import normalise_email
from backend.db import login_attempts
from backend.db.client import Db
from kovr.settings import Settings


def _login_keys(settings: Settings, email: str, client_ip: str | None) -> list[tuple[str, int]]:
    account = normalise_email(email)
    keys = [(f"email:{account}", settings.login_rate_limit_account)]
    if client_ip:
        keys.insert(0, (f"email-ip:{account}|{client_ip}", settings.login_rate_limit))
        keys.append((f"ip:{client_ip}", settings.login_rate_limit_address))
    else:  # no address known (a test client): the account+address limit applies to the account
        keys[0] = (f"email:{account}", settings.login_rate_limit)
    return keys


async def _take(db: Db, key: str, limit: int, window_s: int) -> None:
    """Count one attempt; 429 with Retry-After if it is over the limit."""
    now = utcnow()
    count, ends = await login_attempts.hit(db=db, key=key, at=now, window_s=window_s)
    if count > limit:
        raise AppError("rate_limited", retry_after_s=max(1, math.ceil((ends - now).total_seconds())))


async def begin_login(*, db: Db, settings: Settings, email: str, client_ip: str | None) -> None:
    """Count this sign-in attempt before the password is checked, or raise rate_limited."""
    for key, limit in _login_keys(settings, email, client_ip):
        await _take(db, key, limit, settings.login_rate_window_s)


async def login_succeeded(*, db: Db, settings: Settings, email: str, client_ip: str | None) -> None:
    """A good sign-in: its attempt is given back, and the owner's own address starts afresh."""
    account, now, window_s = normalise_email(email), utcnow(), settings.login_rate_window_s
    await login_attempts.give_back(db=db, key=f"email:{account}", at=now, window_s=window_s)
    if client_ip:
        await login_attempts.give_back(db=db, key=f"ip:{client_ip}", at=now, window_s=window_s)
        await login_attempts.clear(db=db, key=f"email-ip:{account}|{client_ip}")


async def check_signup_allowed(*, db: Db, settings: Settings, client_ip: str | None) -> None:
    """Count this sign-up attempt against its address (successful or not: the hash is the
    expensive part), or raise rate_limited."""
    if client_ip:
        await _take(db, f"signup-ip:{client_ip}", settings.signup_rate_limit_address, settings.signup_rate_window_s)


async def check_upload_allowed(*, db: Db, settings: Settings, user_id: str) -> None:
    """Count this image upload against its user, or raise rate_limited."""
    await _take(db, f"upload:{user_id}", settings.upload_rate_limit, settings.upload_rate_window_s)


async def clear_account_failures(*, db: Db, email: str) -> None:
    """When the account is deleted (per-address counts stay: they are not one account's alone)."""
    account = normalise_email(email)
    await login_attempts.clear(db=db, key=f"email:{account}")
    await login_attempts.clear_prefix(db=db, prefix=f"email-ip:{account}|")
