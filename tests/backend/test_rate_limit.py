"""Sign-in rate limiting per account and per client address: 429 with Retry-After."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.backend.conftest import backend_settings, signup_and_login, start_server

WINDOW_S = 120


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    return {"login_rate_limit": 3, "login_rate_limit_address": 6, "login_rate_window_s": WINDOW_S,
            "signup_rate_limit_address": 4, "signup_rate_window_s": WINDOW_S}


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def test_account_is_limited_after_failures(client: httpx.AsyncClient, live: Any) -> None:
    user = await signup_and_login(client)
    for _ in range(3):
        assert (await _login(client, user["email"], "wrong-password")).status_code == 401
    limited = await _login(client, user["email"].upper(), user["password"])  # even the right password waits
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "잠시 후" in limited.json()["error"]["message"]
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    # Browser logins share the limit.
    await client.get("/healthz")
    form = {
        "username": user["email"],
        "password": user["password"],
        "csrf_token": client.cookies["kovr_csrf"],
    }
    assert (await client.post("/api/v1/auth/session", data=form)).status_code == 429
    # Once the failures leave the window, the account may sign in again.
    await live.db.login_attempts.delete_many({"key": {"$regex": f"^email(-ip)?:{user['email']}"}})
    assert (await _login(client, user["email"], user["password"])).status_code == 200


async def test_client_address_is_limited_across_accounts(client: httpx.AsyncClient, live: Any) -> None:
    await live.db.login_attempts.delete_many({})
    for _ in range(6):
        resp = await _login(client, f"nobody-{uuid.uuid4().hex[:8]}@example.com", "wrong-password")
        assert resp.status_code == 401
    resp = await _login(client, f"someone-{uuid.uuid4().hex[:8]}@example.com", "wrong-password")
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    await live.db.login_attempts.delete_many({})


async def test_success_resets_the_account_count(client: httpx.AsyncClient, live: Any) -> None:
    await live.db.login_attempts.delete_many({})
    user = await signup_and_login(client)
    for _ in range(2):
        assert (await _login(client, user["email"], "wrong-password")).status_code == 401
    assert (await _login(client, user["email"], user["password"])).status_code == 200
    for _ in range(2):
        assert (await _login(client, user["email"], "wrong-password")).status_code == 401
    assert (await _login(client, user["email"], user["password"])).status_code == 200
    await live.db.login_attempts.delete_many({})


async def test_sign_ups_are_limited_per_client_address(make_client: Any, live: Any) -> None:
    """Each sign-up costs an argon2 hash and an account: an address gets `signup_rate_limit_address`."""
    await live.db.login_attempts.delete_many({"key": {"$regex": "^signup-ip:"}})
    client = await make_client()
    bodies = [{"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery",
               "display_name": "새 사용자"} for _ in range(5)]
    for body in bodies[:4]:
        assert (await client.post("/api/v1/auth/signup", json=body)).status_code == 201
    limited = await client.post("/api/v1/auth/signup", json=bodies[4])
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= WINDOW_S
    assert await live.db.users.count_documents({"email": bodies[4]["email"]}) == 0
    # The page shares the limit and says so in Korean.
    await client.get("/healthz")
    form = {**bodies[4], "csrf_token": client.cookies["kovr_csrf"]}
    page = await client.post("/signup", data=form)
    assert page.status_code == 429 and "잠시 후" in page.text
    # Failed sign-ins do not use up the sign-up quota, nor sign-ups the sign-in one.
    await live.db.login_attempts.delete_many({"key": {"$regex": "^signup-ip:"}})
    assert (await client.post("/api/v1/auth/signup", json=bodies[4])).status_code == 201
    assert (await _login(client, bodies[4]["email"], bodies[4]["password"])).status_code == 200
    await live.db.login_attempts.delete_many({})


def _new_user() -> dict[str, str]:
    return {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse battery",
            "display_name": "새 사용자"}


async def _signup_keys(db: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    async for doc in db.login_attempts.find({"key": {"$regex": "^signup-ip:"}}):
        counts[doc["key"]] += doc["count"]
    return counts


async def test_limits_count_the_address_a_trusted_proxy_forwards(make_client: Any, live: Any) -> None:
    """Loopback is a trusted proxy by default: its X-Forwarded-For names the client, so users
    behind one proxy each get their own sign-up quota."""
    await live.db.login_attempts.delete_many({"key": {"$regex": "^signup-ip:"}})
    client = await make_client()
    for ip in ["203.0.113.7"] * 4 + ["198.51.100.9"]:
        answer = await client.post("/api/v1/auth/signup", json=_new_user(), headers={"X-Forwarded-For": ip})
        assert answer.status_code == 201
    limited = await client.post("/api/v1/auth/signup", json=_new_user(), headers={"X-Forwarded-For": "203.0.113.7"})
    assert limited.status_code == 429
    # Refused ones count too.
    assert await _signup_keys(live.db) == {"signup-ip:203.0.113.7": 5, "signup-ip:198.51.100.9": 1}
    await live.db.login_attempts.delete_many({})


async def test_forwarded_headers_from_an_untrusted_sender_are_ignored(mongo_uri: str, tmp_path: Any) -> None:
    """A client cannot choose its own address: only `forwarded_allow_ips` may forward one."""
    settings = backend_settings(mongo_uri, f"untrusted_{uuid.uuid4().hex[:6]}", tmp_path,
                                forwarded_allow_ips="10.0.0.0/8")
    live_server, server, task = await start_server(settings)
    try:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
            answer = await client.post("/api/v1/auth/signup", json=_new_user(),
                                       headers={"X-Forwarded-For": "203.0.113.7"})
        assert answer.status_code == 201
        assert await _signup_keys(live_server.db) == {"signup-ip:127.0.0.1": 1}
    finally:
        server.should_exit = True
        await task


async def test_concurrent_wrong_logins_let_exactly_the_limit_through(make_client: Any, live: Any) -> None:
    """30 guesses at once on one account: exactly `login_rate_limit` reach the password check."""
    await live.db.login_attempts.delete_many({})
    user = await signup_and_login(await make_client())
    clients = [await make_client() for _ in range(30)]
    answers = await asyncio.gather(*(_login(c, user["email"], "wrong-password") for c in clients))
    assert Counter(a.status_code for a in answers) == {401: 3, 429: 27}
    await live.db.login_attempts.delete_many({})


async def test_concurrent_sign_ups_from_one_address_create_exactly_the_limit(make_client: Any, live: Any) -> None:
    await live.db.login_attempts.delete_many({})
    clients = [await make_client() for _ in range(12)]
    bodies = [_new_user() for _ in clients]
    answers = await asyncio.gather(
        *(c.post("/api/v1/auth/signup", json=b) for c, b in zip(clients, bodies, strict=True)))
    assert Counter(a.status_code for a in answers) == {201: 4, 429: 8}
    assert await live.db.users.count_documents({"email": {"$in": [b["email"] for b in bodies]}}) == 4
    await live.db.login_attempts.delete_many({})


async def test_an_attacker_cannot_lock_the_owner_out(make_client: Any, live: Any) -> None:
    """Failures from another address use up that address's allowance for the account, not the
    owner's: the owner's right password from their own address still works."""
    await live.db.login_attempts.delete_many({})
    owner = await make_client()
    user = await signup_and_login(owner)
    attacker = await make_client()
    for _ in range(5):
        await attacker.post("/api/v1/auth/token", data={"username": user["email"], "password": "guess-guess"},
                            headers={"X-Forwarded-For": "203.0.113.66"})
    blocked = await attacker.post("/api/v1/auth/token", data={"username": user["email"], "password": user["password"]},
                                  headers={"X-Forwarded-For": "203.0.113.66"})
    assert blocked.status_code == 429
    mine = await owner.post("/api/v1/auth/token", data={"username": user["email"], "password": user["password"]},
                            headers={"X-Forwarded-For": "198.51.100.5"})
    assert mine.status_code == 200, mine.text
    await live.db.login_attempts.delete_many({})
