"""The per-process memory of checked credentials (backend/db/auth_cache.py): what it keeps, for how long,
and what drops it."""

from __future__ import annotations

import time

from bson import ObjectId

from backend.db.auth_cache import AuthCache


def test_an_entry_lives_for_its_ttl_and_no_longer() -> None:
    cache, user = AuthCache(), {"_id": ObjectId()}
    cache.put("t", user, "fam", ttl_s=0.05)
    entry = cache.get("t")
    assert entry is not None and entry.user is user and entry.family == "fam"
    time.sleep(0.06)
    assert cache.get("t") is None


def test_ttl_zero_keeps_nothing() -> None:
    cache = AuthCache()
    cache.put("t", {"_id": ObjectId()}, None, ttl_s=0)
    assert cache.get("t") is None


def test_forgetting_a_user_or_a_sign_in_drops_only_theirs() -> None:
    cache, alice, bob = AuthCache(), {"_id": ObjectId()}, {"_id": ObjectId()}
    cache.put("a1", alice, "fa", 60)
    cache.put("a2", alice, "fa2", 60)
    cache.put("b1", bob, "fb", 60)
    cache.forget_family("fa")
    assert cache.get("a1") is None and cache.get("a2") is not None
    cache.forget_user(alice["_id"])
    assert cache.get("a2") is None and cache.get("b1") is not None
