"""Accounts and sessions, for the API routes and the server-rendered pages alike.

    user = await signup(db=db, email=..., password=..., display_name=...)       # kovr create-user
    user = await signup_from_client(db=db, settings=settings, ..., client_ip=ip)  # API and page, rate limited
    user = await authenticate(db=db, settings=settings, email=..., password=..., client_ip=ip)
    tokens = await issue_session_tokens(db=db, settings=settings, user=user)
    user, tokens = await rotate_refresh(db=db, settings=settings, refresh_token=...)
    await logout(db=db, refresh_token=...)

Errors are the classes in backend.services.errors; the API maps them to its error shape.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from backend.core import security
from backend.core.clock import as_utc, utcnow
from backend.core.errors import AppError
from backend.core.secrets import jwt_key
from backend.db import api_tokens, conversations, refresh_tokens, users
from backend.db.auth_cache import CACHE
from backend.db.client import Db
from backend.db.ids import parse_id
from backend.services import ratelimit
from kovr.settings import Settings


@dataclass(frozen=True)
class SessionTokens:
    access_token: str
    expires_in: int
    refresh_token: str | None  # None when a browser tab reused a just-rotated cookie (grace window)
    family_id: str


async def signup(
    *, db: Db, email: str, password: str, display_name: str, role: users.Role = "user", first_admin: bool = False
) -> dict[str, Any]:
    """A new account; with `first_admin` (the `first_user_admin` setting) the very first account
    becomes an admin, so a fresh install needs no command line."""
    password_hash = await security.hash_password(password)
    try:
        user = await users.create_user(
            db=db, email=email, password_hash=password_hash, display_name=display_name, role=role
        )
    except users.EmailTaken:
        raise AppError("email_taken", email) from None
    if first_admin and role != "admin" and await users.promote_if_first(db=db, user_id=user["_id"]):
        user["role"] = "admin"
    return user


async def signup_from_client(
    *, db: Db, settings: Settings, email: str, password: str, display_name: str, client_ip: str | None
) -> dict[str, Any]:
    """Self-service sign-up (the API and the page), rate limited per client address; create-user is not."""
    await ratelimit.check_signup_allowed(db=db, settings=settings, client_ip=client_ip)
    return await signup(db=db, email=email, password=password, display_name=display_name,
                        first_admin=settings.first_user_admin)


async def authenticate(
    *, db: Db, settings: Settings, email: str, password: str, client_ip: str | None
) -> dict[str, Any]:
    """Check a password login; the same error whether or not the email exists, rate limited."""
    # Counted before the password is checked: concurrent guesses cannot all slip past the limit.
    await ratelimit.begin_login(db=db, settings=settings, email=email, client_ip=client_ip)
    user = await users.get_user_by_email(db=db, email=email)
    if user is None:
        await security.burn_password_check(password)  # same cost as a real check: no account probing
        ok = False
    else:
        ok = await security.verify_password(password, user["password_hash"])
    if not ok or user is None:
        raise AppError("invalid_credentials")
    if user.get("disabled"):
        raise AppError("account_disabled")
    await ratelimit.login_succeeded(db=db, settings=settings, email=email, client_ip=client_ip)
    return user


def _access_token(settings: Settings, user_id: ObjectId, family_id: str | None = None) -> tuple[str, int]:
    # `fam` ties the access token to its sign-in, so a password change can keep this session alive.
    return security.create_access_token(
        str(user_id),
        secret=jwt_key(settings),
        algorithm=settings.jwt_algorithm,
        minutes=settings.access_token_minutes,
        extra={"fam": family_id} if family_id else None,
    )


async def _new_refresh(
    *, db: Db, settings: Settings, user_id: ObjectId, family_id: str, client: str | None = None
) -> tuple[str, ObjectId]:
    token = security.random_token(32)
    expires = utcnow() + dt.timedelta(days=settings.refresh_token_days)
    token_id = await refresh_tokens.insert_refresh_token(
        db=db,
        user_id=user_id,
        token_hash=security.sha256_hex(token),
        family_id=family_id,
        expires_at=expires,
        client=client,
    )
    return token, token_id


async def issue_session_tokens(
    *, db: Db, settings: Settings, user: dict[str, Any], client: str | None = None
) -> SessionTokens:
    """A new sign-in: a fresh refresh-token family and an access token."""
    family_id = uuid.uuid4().hex
    refresh, _ = await _new_refresh(
        db=db, settings=settings, user_id=user["_id"], family_id=family_id, client=client
    )
    access, expires_in = _access_token(settings, user["_id"], family_id)
    return SessionTokens(access, expires_in, refresh, family_id)


async def rotate_refresh(
    *, db: Db, settings: Settings, refresh_token: str, grace_s: int = 0
) -> tuple[dict[str, Any], SessionTokens]:
    """Trade a refresh token for a new pair; a second use of the same token revokes its family.

    `grace_s` (browser cookies only): a reuse within that many seconds of the rotation is taken
    as two tabs racing, and gets an access token without a new refresh token instead of a revocation.
    """
    token_hash = security.sha256_hex(refresh_token)
    now = utcnow()
    claimed = await refresh_tokens.claim_refresh_token(db=db, token_hash=token_hash, now=now)
    if claimed is None:
        return await _refused_refresh(
            db=db, settings=settings, token_hash=token_hash, now=now, grace_s=grace_s
        )
    user = await _active_user(db, claimed["user_id"])
    if user is None:
        await refresh_tokens.revoke_family(db=db, family_id=claimed["family_id"])
        raise AppError("invalid_refresh_token")
    refresh, new_id = await _new_refresh(
        db=db,
        settings=settings,
        user_id=user["_id"],
        family_id=claimed["family_id"],
        client=claimed.get("client"),
    )
    await refresh_tokens.set_replaced_by(db=db, token_id=claimed["_id"], successor_id=new_id)
    access, expires_in = _access_token(settings, user["_id"], claimed["family_id"])
    return user, SessionTokens(access, expires_in, refresh, claimed["family_id"])


async def _refused_refresh(
    *, db: Db, settings: Settings, token_hash: str, now: dt.datetime, grace_s: int
) -> tuple[dict[str, Any], SessionTokens]:
    doc = await refresh_tokens.find_refresh_token(db=db, token_hash=token_hash)
    if doc is None or doc.get("revoked") or as_utc(doc["expires_at"]) <= now or doc.get("used_at") is None:
        raise AppError("invalid_refresh_token")
    if grace_s and (now - as_utc(doc["used_at"])).total_seconds() <= grace_s:
        user = await _active_user(db, doc["user_id"])
        if user is not None:
            access, expires_in = _access_token(settings, user["_id"], doc["family_id"])
            return user, SessionTokens(access, expires_in, None, doc["family_id"])
    # A rotated token came back: someone holds a copy. End the whole sign-in.
    await refresh_tokens.revoke_family(db=db, family_id=doc["family_id"])
    raise AppError("refresh_token_reused")


async def _active_user(db: Db, user_id: ObjectId) -> dict[str, Any] | None:
    user = await users.get_user(db=db, user_id=user_id)
    return None if user is None or user.get("disabled") else user


async def logout(*, db: Db, refresh_token: str | None) -> None:
    """End the sign-in that this refresh token belongs to (its whole family); unknown tokens are ignored."""
    if not refresh_token:
        return
    doc = await refresh_tokens.find_refresh_token(db=db, token_hash=security.sha256_hex(refresh_token))
    if doc is not None:
        await refresh_tokens.revoke_family(db=db, family_id=doc["family_id"])


async def logout_access_token(*, db: Db, settings: Settings, token: str) -> None:
    """End the sign-in an access token belongs to; invalid tokens and API tokens are ignored."""
    try:
        _, family = await session_from_access_token(db=db, settings=settings, token=token)
    except AppError:
        return
    if family is not None:
        await refresh_tokens.revoke_family(db=db, family_id=family)


async def family_of(*, db: Db, refresh_token: str | None) -> str | None:
    if not refresh_token:
        return None
    doc = await refresh_tokens.find_refresh_token(db=db, token_hash=security.sha256_hex(refresh_token))
    return None if doc is None else doc["family_id"]


async def change_password(
    *, db: Db, user: dict[str, Any], current_password: str, new_password: str, keep_family: str | None = None
) -> None:
    """Set a new password and end every other sign-in (all refresh families but `keep_family`)."""
    if not await security.verify_password(current_password, user["password_hash"]):
        raise AppError("wrong_password")
    await users.set_password_hash(
        db=db, user_id=user["_id"], password_hash=await security.hash_password(new_password)
    )
    await refresh_tokens.revoke_user_tokens(db=db, user_id=user["_id"], keep_family=keep_family)


async def delete_account(*, db: Db, user: dict[str, Any], password: str) -> None:
    """Erase the account and everything it owns; needs the password.

    The user is disabled and marked first, so no request signs in or adds data while the rest goes;
    the user record goes last, so an interrupted deletion leaves a disabled account whose record
    still names the owner of what is left, and the next start of the app finishes it
    (`finish_deletions`).
    """
    if not await security.verify_password(password, user["password_hash"]):
        raise AppError("wrong_password")
    await users.mark_deleting(db=db, user_id=user["_id"])
    await _erase(db, user)


async def finish_deletions(*, db: Db) -> int:
    """Finish the erasures that an earlier process began and did not complete; how many."""
    pending = await users.users_being_deleted(db=db)
    for user in pending:
        await _erase(db, user)
    return len(pending)


async def _erase(db: Db, user: dict[str, Any]) -> None:
    """Everything the user owns, then the user. Each step is idempotent, so it can run again."""
    user_id = user["_id"]
    await conversations.delete_user_conversations(db=db, user_id=user_id)
    await api_tokens.delete_user_tokens(db=db, user_id=user_id)
    await refresh_tokens.delete_user_tokens(db=db, user_id=user_id)
    await ratelimit.clear_account_failures(db=db, email=user["email"])
    await users.delete_user(db=db, user_id=user_id)


async def user_from_access_token(*, db: Db, settings: Settings, token: str) -> dict[str, Any]:
    user, _ = await session_from_access_token(db=db, settings=settings, token=token)
    return user


async def session_from_access_token(
    *, db: Db, settings: Settings, token: str
) -> tuple[dict[str, Any], str | None]:
    """The user of a valid access token, and the sign-in (refresh family) it belongs to.

    Remembered for `auth_cache_s` (see backend/db/auth_cache.py for the staleness bound)."""
    try:
        claims = security.decode_access_token(
            token, secret=jwt_key(settings), algorithm=settings.jwt_algorithm
        )
    except security.TokenError:
        raise AppError("invalid_token") from None
    cached = CACHE.get(token)
    if cached is not None:
        return dict(cached.user), cached.family  # a copy: callers may change theirs
    user, family = await _session_of(db, claims)
    CACHE.put(token, user, family, settings.auth_cache_s)
    return user, family


async def _session_of(db: Db, claims: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    user_id = parse_id(claims["sub"])
    user = None if user_id is None else await _active_user(db, user_id)
    if user is None:
        raise AppError("invalid_token")
    family = claims.get("fam")
    if isinstance(family, str):
        # Logging out or a password change revokes the family: its access tokens stop at once too.
        if not await refresh_tokens.family_active(db=db, family_id=family):
            raise AppError("invalid_token")
        return user, family
    changed = user.get("password_changed_at")
    # A token without a sign-in stops working at a password change (iat has second precision).
    if changed is not None and int(claims.get("iat", 0)) < int(as_utc(changed).timestamp()):
        raise AppError("invalid_token")
    return user, None


async def create_api_token(*, db: Db, user: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """A new personal token; the full value is returned here once and stored only as sha256."""
    token = security.new_api_token()
    doc = await api_tokens.create_api_token(
        db=db, user_id=user["_id"], name=name, prefix=token[:12], token_hash=security.sha256_hex(token)
    )
    return doc, token


async def user_from_api_token(*, db: Db, token: str, cache_s: float = 0.0) -> dict[str, Any]:
    """The owner of an active personal token; remembered for `cache_s` (its last use is then
    recorded once per lookup, not per request)."""
    cached = CACHE.get(token)
    if cached is not None:
        return dict(cached.user)
    doc = await api_tokens.find_active_token(db=db, token_hash=security.sha256_hex(token))
    user = None if doc is None else await _active_user(db, doc["user_id"])
    if doc is None or user is None:
        raise AppError("invalid_token")
    await api_tokens.touch_api_token(db=db, token_id=doc["_id"])
    CACHE.put(token, user, None, cache_s)
    return user
