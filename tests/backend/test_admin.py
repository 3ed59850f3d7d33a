"""The admin API and page: 404 for everyone but admins, the user list with usage, disabling
(sessions and tokens stop at once), per-user quotas, the audit trail, the model server's state,
`kovr create-user --admin` and `first_user_admin`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.backend.usage_support import Stack, send, stack
from tests.chat.fixtures import model_url, stream_knobs, tiny_chat_model  # noqa: F401
from tests.chat.support import Account

ADMIN_GETS = ["/api/v1/admin/users", "/api/v1/admin/audit", "/api/v1/admin/model", "/admin"]


@pytest.fixture(scope="module")
def admin_stack(mongo_uri: str, model_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    with stack(mongo_uri, model_url, tmp_path_factory.mktemp("admin"), first_user_admin=True,
               chat_default_max_new_tokens=16) as running:
        yield running


@pytest.fixture(scope="module")
def admin(admin_stack: Stack) -> Account:
    """The first account of this database: an admin because of `first_user_admin`."""
    return admin_stack.account()


@contextmanager
def _browser(stack_: Stack, account: Account) -> Iterator[httpx.Client]:
    """A signed-in browser session (cookies + CSRF header as the pages send it)."""
    with httpx.Client(base_url=stack_.url, timeout=60) as client:
        client.get("/login")
        signed = client.post("/login", data={"csrf_token": client.cookies["kovr_csrf"], "email": account.email,
                                              "password": account.password})
        assert signed.status_code == 303, signed.text
        client.headers.update({"X-CSRF-Token": client.cookies["kovr_csrf"], "HX-Request": "true"})
        yield client


def test_first_user_is_admin_and_the_next_is_not(admin_stack: Stack, admin: Account) -> None:
    assert admin.client.get("/api/v1/users/me").json()["role"] == "admin"
    other = admin_stack.account()
    assert other.client.get("/api/v1/users/me").json()["role"] == "user"


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_admin_routes_are_404_to_anonymous_and_non_admins(admin_stack: Stack, admin: Account, path: str) -> None:
    user = admin_stack.account()
    target = admin_stack.account().user_id
    with httpx.Client(base_url=admin_stack.url, timeout=30) as anonymous:
        assert anonymous.get(path).status_code == 404
        assert anonymous.post(f"/api/v1/admin/users/{target}/disable").status_code == 404
    assert user.client.get(path).status_code == 404
    with admin_stack.token_client(admin_stack.api_token(user)) as program:
        assert program.get(path).status_code == 404
        assert program.put(f"/api/v1/admin/users/{target}/quota", json={"messages_per_day": 1}).status_code == 404
    with _browser(admin_stack, user) as page:
        assert page.get(path).status_code == 404
        assert page.post(f"/admin/users/{target}/disable").status_code == 404
    assert admin.client.get(path).status_code == 200


def test_list_users_with_usage_paginated(admin_stack: Stack, admin: Account) -> None:
    active = admin_stack.account()
    conversation = active.conversation()
    assert send(active, conversation).status_code == 200
    seen: dict[str, Any] = {}
    cursor = None
    while True:
        page = admin.client.get("/api/v1/admin/users", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2
        seen.update({u["id"]: u for u in body["items"]})
        cursor = body["next_cursor"]
        if cursor is None:
            break
    row = seen[active.user_id]
    assert row["today"]["messages"] == 1 and row["month"]["generated_tokens"] > 0 and row["today"]["prompt_tokens"] > 0
    assert seen[admin.user_id]["role"] == "admin"
    assert admin.client.get("/api/v1/admin/users", params={"cursor": "nope"}).status_code == 422


def test_disable_stops_a_session_and_an_api_token_at_once(admin_stack: Stack, admin: Account) -> None:
    victim = admin_stack.account()
    token = admin_stack.api_token(victim)
    with admin_stack.token_client(token) as program, _browser(admin_stack, victim) as page:
        assert program.get("/api/v1/users/me").status_code == 200  # now cached for auth_cache_s
        assert page.get("/api/v1/users/me").status_code == 200
        assert victim.client.get("/api/v1/users/me").status_code == 200
        done = admin.client.post(f"/api/v1/admin/users/{victim.user_id}/disable")
        assert done.status_code == 200 and done.json()["disabled"] is True
        assert program.get("/api/v1/users/me").status_code == 401
        assert victim.client.get("/api/v1/users/me").status_code == 401
        assert page.get("/api/v1/users/me").status_code == 401
        assert page.get("/chat", follow_redirects=False).status_code in (303, 401)
        relogin = httpx.post(f"{admin_stack.url}/api/v1/auth/token",
                             data={"username": victim.email, "password": victim.password})
        assert relogin.status_code == 403 and relogin.json()["error"]["code"] == "account_disabled"
        enabled = admin.client.post(f"/api/v1/admin/users/{victim.user_id}/enable")
        assert enabled.status_code == 200 and enabled.json()["disabled"] is False
        assert program.get("/api/v1/users/me").status_code == 200  # API tokens work again


def test_an_admin_cannot_disable_themselves(admin: Account) -> None:
    refused = admin.client.post(f"/api/v1/admin/users/{admin.user_id}/disable")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "cannot_disable_self"
    assert admin.client.get("/api/v1/users/me").status_code == 200


def test_set_quota_applies_and_is_audited(admin_stack: Stack, admin: Account) -> None:
    user = admin_stack.account()
    conversation = user.conversation()
    done = admin.client.put(f"/api/v1/admin/users/{user.user_id}/quota", json={"messages_per_day": 1})
    assert done.status_code == 200 and done.json()["quota_messages_per_day"] == 1
    assert send(user, conversation).status_code == 200
    refused = send(user, conversation)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    assert user.client.get("/api/v1/users/me/usage").json()["quota"]["messages_per_day"] == 1
    back = admin.client.put(f"/api/v1/admin/users/{user.user_id}/quota", json={"messages_per_day": None})
    assert back.json()["quota_messages_per_day"] is None
    assert send(user, conversation).status_code == 200  # the default (unlimited) again
    negative = admin.client.put(f"/api/v1/admin/users/{user.user_id}/quota", json={"messages_per_day": -1})
    assert negative.status_code == 422
    audit = admin.client.get("/api/v1/admin/audit").json()
    mine = [a for a in audit if a["target_id"] == user.user_id]
    assert [a["action"] for a in mine] == ["user.quota", "user.quota"]
    assert mine[1]["details"]["messages_per_day"] == 1 and mine[0]["actor_id"] == admin.user_id
    stored = admin_stack.db.audit.find_one({"action": "user.quota"})
    assert set(stored) >= {"actor_id", "action", "target_id", "details", "at"}


def test_disable_and_enable_are_audited(admin_stack: Stack, admin: Account) -> None:
    user = admin_stack.account()
    admin.client.post(f"/api/v1/admin/users/{user.user_id}/disable")
    admin.client.post(f"/api/v1/admin/users/{user.user_id}/enable")
    actions = [a["action"] for a in admin.client.get("/api/v1/admin/audit").json() if a["target_id"] == user.user_id]
    assert actions == ["user.enable", "user.disable"]


def test_model_state_has_info_queue_and_tokens_per_second(admin_stack: Stack, admin: Account) -> None:
    user = admin_stack.account()
    assert send(user, user.conversation()).status_code == 200
    first = admin.client.get("/api/v1/admin/model").json()
    assert first["reachable"] is True and first["info"]["model_id"]
    assert first["queue_length"] == 0 and first["running"] is not None
    assert first["tokens_per_second"] > 0 and first["generated_tokens"] > 0
    assert send(user, user.conversation()).status_code == 200
    second = admin.client.get("/api/v1/admin/model").json()
    assert second["window_s"] > 0 and second["throughput"] > 0


def test_admin_page_shows_users_model_and_audit(admin_stack: Stack, admin: Account) -> None:
    with _browser(admin_stack, admin) as page:
        html = page.get("/admin").text
        assert admin.email in html and "모델 서버" in html and "감사 기록" in html
        assert 'href="/api/v1/admin/export-feedback"' in html  # the export, downloaded with the page's session
        download = page.get("/api/v1/admin/export-feedback")
        assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
        target = admin_stack.account()
        row = page.post(f"/admin/users/{target.user_id}/disable")
        assert row.status_code == 200 and "활성화" in row.text
        assert page.post(f"/admin/users/{target.user_id}/enable").status_code == 200
        assert page.post(f"/admin/users/{target.user_id}/quota",
                         data={"messages_per_day": "5", "tokens_per_day": ""}).status_code == 200
        without_csrf = httpx.post(f"{admin_stack.url}/admin/users/{target.user_id}/disable", cookies=page.cookies)
        assert without_csrf.status_code in (403, 404)
    assert admin_stack.db.users.find_one({"email": target.email})["quota_messages_per_day"] == 5


def _kovr(args: list[str], env: dict[str, str], cwd: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kovr", *args], check=False, env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_create_user_admin_and_first_user_admin(mongo_uri: str, tmp_path: Path) -> None:
    db_name = f"cli_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOVR_")}
    env.update(KOVR_MONGODB_URI=mongo_uri, KOVR_MONGODB_DB=db_name, HOME=str(tmp_path), KOVR_FIRST_USER_ADMIN="true",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    def create(email: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return _kovr(["create-user", "--email", email, *flags, "--password-stdin"], env, tmp_path, "비밀번호-12345\n")

    first, second = create("first@example.com"), create("second@example.com")
    third = create("third@example.com", "--admin")
    assert first.returncode == second.returncode == third.returncode == 0, (first.stderr, second.stderr)
    assert "(admin)" in first.stdout and "(user)" in second.stdout and "(admin)" in third.stdout
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        roles = {u["email"]: u["role"] for u in client[db_name].users.find({})}
    finally:
        client.close()
    assert roles == {"first@example.com": "admin", "second@example.com": "user", "third@example.com": "admin"}
