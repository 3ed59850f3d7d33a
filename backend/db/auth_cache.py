"""A short-lived, per-process memory of which credentials were valid, so a chat request does not
pay two database lookups (user, sign-in) before its first token.

Staleness bound: a change this process writes through the repositories (users, refresh_tokens,
api_tokens: logout, password change, profile change, disabling, token revoked, account deleted)
drops the entries it affects at once. A change made elsewhere (another
worker, an admin writing the database) is seen within `auth_cache_s` seconds (default 2; 0 turns
the cache off). Entries never outlive the access token itself: the JWT is still decoded and its
expiry checked on every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

MAX_ENTRIES = 10_000  # a bound on memory: past it the cache starts over


@dataclass(frozen=True)
class Entry:
    until: float
    user: dict[str, Any]
    family: str | None


class AuthCache:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def get(self, token: str) -> Entry | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry.until < time.monotonic():
            del self._entries[token]
            return None
        return entry

    def put(self, token: str, user: dict[str, Any], family: str | None, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[token] = Entry(time.monotonic() + ttl_s, user, family)

    def forget_user(self, user_id: ObjectId) -> None:
        self._drop(lambda e: e.user.get("_id") == user_id)

    def forget_family(self, family: str) -> None:
        self._drop(lambda e: e.family == family)

    def clear(self) -> None:
        self._entries.clear()

    def _drop(self, match: Any) -> None:
        for token in [t for t, e in self._entries.items() if match(e)]:
            del self._entries[token]


CACHE = AuthCache()  # one per process: every worker has its own
