"""Sign-up, password login, refresh rotation with reuse detection, logout, password change, NFC,
deleting the account."""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from typing import Any

import httpx
from bson import ObjectId
from jose import jwt

from backend.db import messages as msg_repo
from backend.db import users as users_repo
from tests.backend.conftest import TEST_SECRET, LiveServer, MakeClient, signup_and_login, start_server


def _email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def test_signup_returns_public_fields_only(client: httpx.AsyncClient) -> None:
    email = _email()
    resp = await client.post(
        "/api/v1/auth/signup",
        json={"email": email.upper(), "password": "password-123", "display_name": "김철수"},
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"id", "email", "display_name", "role", "answer_style", "training_consent", "created_at"}
    assert body["training_consent"] is False  # opt-in only
    assert body["email"] == email  # stored lower-cased
    assert body["display_name"] == "김철수"


async def test_taken_email_is_409_case_insensitively(client: httpx.AsyncClient) -> None:
    email = _email()
    first = {"email": email, "password": "password-123", "display_name": "a"}
    assert (await client.post("/api/v1/auth/signup", json=first)).status_code == 201
    again = await client.post("/api/v1/auth/signup", json={**first, "email": email.upper()})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"
    assert again.json()["error"]["message"] == "이미 가입된 이메일입니다."


async def test_bad_signup_inputs_are_422_in_one_shape(client: httpx.AsyncClient) -> None:
    ok = {"email": _email(), "password": "password-123", "display_name": "홍길동"}
    bad_bodies = [
        {**ok, "email": "not-an-email"},
        {**ok, "email": "a" * 250 + "@example.com"},
        {**ok, "password": "short"},
        {**ok, "password": "p" * 300},
        {**ok, "display_name": "가" * 65},
        {**ok, "display_name": "   "},
        {**ok, "display_name": "줄\n바꿈"},
        {**ok, "role": "admin"},  # unknown fields are refused, not ignored
        {"email": ok["email"], "password": ok["password"]},
    ]
    for body in bad_bodies:
        resp = await client.post("/api/v1/auth/signup", json=body)
        assert resp.status_code == 422, body
        error = resp.json()["error"]
        assert error["code"] == "validation_error"
        assert error["message"].startswith("입력값이 올바르지 않습니다.")
        assert "password-123" not in resp.text  # submitted values are never echoed
    not_json = await client.post(
        "/api/v1/auth/signup", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


async def test_errors_in_english_on_request(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/users/me", headers={"Accept-Language": "en-US,en;q=0.9,ko;q=0.5"})
    assert resp.status_code == 401
    assert resp.json() == {"error": {"code": "not_authenticated", "message": "Authentication is required."}}
    korean = await client.get("/api/v1/users/me", headers={"Accept-Language": "ko-KR,en;q=0.5"})
    assert korean.json()["error"]["message"] == "로그인이 필요합니다."


async def test_login_returns_a_token_pair_with_the_right_claims(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    assert user["token_type"] == "bearer"
    assert user["expires_in"] == 15 * 60
    claims = jwt.decode(user["access_token"], TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"]
    assert {"exp", "iat", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 15 * 60
    me = await client.get("/api/v1/users/me")
    assert me.status_code == 200 and me.json()["id"] == user["id"]


async def test_bad_credentials_give_the_same_401_either_way(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    wrong_password = await _login(client, user["email"], "wrong-password")
    no_such_user = await _login(client, _email(), "wrong-password")
    assert wrong_password.status_code == no_such_user.status_code == 401
    assert wrong_password.json() == no_such_user.json()
    assert wrong_password.json()["error"]["code"] == "invalid_credentials"


async def test_garbage_and_forged_tokens_are_401(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    forged = jwt.encode({"sub": user["id"], "exp": 2**33, "iat": 0, "jti": "x", "typ": "access"}, "other-key")
    for header in ("Bearer nonsense", f"Bearer {forged}", "Basic abc", "Bearer", "Bearer kovr_unknown"):
        resp = await client.get("/api/v1/users/me", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert resp.json()["error"]["code"] in {"invalid_token", "not_authenticated"}


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    first = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != user["refresh_token"]
    assert pair["access_token"] != user["access_token"]
    # The spent token comes back: a copy exists somewhere, so the whole sign-in ends.
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    successor = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert successor.status_code == 401
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 401


async def test_refresh_rejects_unknown_and_bad_bodies(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "invalid_refresh_token"
    for body in ({}, {"refresh_token": ""}, {"refresh_token": "x" * 600}):
        assert (await client.post("/api/v1/auth/refresh", json=body)).status_code == 422


async def test_logout_revokes_the_refresh_token_and_its_access_token(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    resp = await client.post("/api/v1/auth/logout", json={"refresh_token": user["refresh_token"]})
    assert resp.status_code == 204
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert again.status_code == 401
    assert (await client.get("/api/v1/users/me")).status_code == 401


async def test_password_change_ends_other_sessions(make_client: MakeClient) -> None:
    here, elsewhere = await make_client(), await make_client()
    user = await signup_and_login(here)
    other = (await _login(elsewhere, user["email"], user["password"])).json()
    elsewhere.headers["Authorization"] = f"Bearer {other['access_token']}"

    wrong = await here.post(
        "/api/v1/users/me/password",
        json={"current_password": "not-it-at-all", "new_password": "new-password-1"},
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
    short = await here.post(
        "/api/v1/users/me/password", json={"current_password": user["password"], "new_password": "short"}
    )
    assert short.status_code == 422
    ok = await here.post(
        "/api/v1/users/me/password",
        json={"current_password": user["password"], "new_password": "new-password-1"},
    )
    assert ok.status_code == 204

    assert (await here.get("/api/v1/users/me")).status_code == 200  # this session goes on
    assert (await elsewhere.get("/api/v1/users/me")).status_code == 401
    refused = await elsewhere.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refused.status_code == 401
    kept = await here.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert kept.status_code == 200
    assert (await _login(here, user["email"], user["password"])).status_code == 401
    assert (await _login(here, user["email"], "new-password-1")).status_code == 200


async def test_profile_update_and_limits(client: httpx.AsyncClient) -> None:
    await signup_and_login(client)
    decomposed = unicodedata.normalize("NFD", "한글 이름")
    resp = await client.patch("/api/v1/users/me", json={"display_name": decomposed})
    assert resp.status_code == 200
    assert resp.json()["display_name"] == "한글 이름"  # stored composed (NFC)
    assert (await client.patch("/api/v1/users/me", json={"display_name": "가" * 65})).status_code == 422
    assert (await client.patch("/api/v1/users/me", json={"email": "x@example.com"})).status_code == 422
    assert resp.json()["answer_style"] == "balanced"
    styled = await client.patch("/api/v1/users/me", json={"answer_style": "creative"})
    assert styled.status_code == 200 and styled.json()["answer_style"] == "creative"
    assert styled.json()["display_name"] == "한글 이름"  # other fields untouched
    assert (await client.patch("/api/v1/users/me", json={"answer_style": "wild"})).status_code == 422


async def test_nfd_password_and_email_match_their_nfc_form(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    email = f"한글-{uuid.uuid4().hex[:6]}@example.com"
    password = "비밀번호는한글입니다"
    resp = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": unicodedata.normalize("NFD", email),
            "password": unicodedata.normalize("NFD", password),
            "display_name": "가",
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["email"] == email
    assert (await _login(client, email, password)).status_code == 200
    stored = await live.db.users.find_one({"email": email})
    assert stored is not None and stored["password_hash"].startswith("$argon2")


async def test_disabled_accounts_cannot_sign_in_or_use_tokens(
    client: httpx.AsyncClient, live: LiveServer
) -> None:
    user = await signup_and_login(client)
    await live.db.users.update_one({"email": user["email"]}, {"$set": {"disabled": True}})
    assert (await client.get("/api/v1/users/me")).status_code == 401
    login = await _login(client, user["email"], user["password"])
    assert login.status_code == 403 and login.json()["error"]["code"] == "account_disabled"
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert refresh.status_code == 401


async def test_logout_with_only_the_access_token_ends_that_sign_in(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    assert (await client.get("/api/v1/users/me")).status_code == 401
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]})
    assert refused.status_code == 401


async def test_concurrent_refreshes_with_one_token_let_only_one_through(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    body = {"refresh_token": user["refresh_token"]}
    results = await asyncio.gather(*(client.post("/api/v1/auth/refresh", json=body) for _ in range(4)))
    assert sorted(r.status_code for r in results) == [200, 401, 401, 401]


async def _user_with_a_message(
    client: httpx.AsyncClient, live: Any, title: str
) -> tuple[dict[str, Any], ObjectId, dict[str, Any]]:
    """A new account with one conversation holding one message: (account, user id, conversation)."""
    account = await signup_and_login(client)
    uid = ObjectId(account["id"])
    conv = (await client.post("/api/v1/conversations", json={"title": title})).json()
    await msg_repo.create_message(db=live.db, conversation_id=ObjectId(conv["id"]), user_id=uid, role="user",
                                  content="안녕")
    return account, uid, conv


async def test_delete_account_erases_everything_it_owns(make_client: Any, live: Any) -> None:
    """DELETE /users/me needs the password, then the account, its data and every token are gone;
    other users keep theirs, and the e-mail address can sign up again."""
    alice, bob = await make_client(), await make_client()
    a, uid, conv = await _user_with_a_message(alice, live, "지울 대화")
    b = await signup_and_login(bob)
    api_token = (await alice.post("/api/v1/tokens", json={"name": "스크립트"})).json()["token"]
    await (await make_client()).post("/api/v1/auth/token", data={"username": a["email"], "password": "틀린 비밀번호"})
    bob_conv = (await bob.post("/api/v1/conversations", json={"title": "밥의 대화"})).json()

    wrong = await alice.request("DELETE", "/api/v1/users/me", json={"password": "틀린 비밀번호"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
    assert (await alice.get(f"/api/v1/conversations/{conv['id']}")).status_code == 200  # nothing lost
    assert (await alice.request("DELETE", "/api/v1/users/me", json={})).status_code == 422

    gone = await alice.request("DELETE", "/api/v1/users/me", json={"password": a["password"]})
    assert gone.status_code == 204
    for collection in ("conversations", "messages", "api_tokens", "refresh_tokens"):
        assert await live.db[collection].count_documents({"user_id": uid}) == 0, collection
    assert await live.db.users.count_documents({"_id": uid}) == 0
    assert await live.db.login_attempts.count_documents({"key": f"email:{a['email']}"}) == 0
    assert (await alice.get("/api/v1/users/me")).status_code == 401  # the access token died with it
    with_token = await (await make_client()).get("/api/v1/users/me", headers={"Authorization": f"Bearer {api_token}"})
    assert with_token.status_code == 401
    login = await (await make_client()).post("/api/v1/auth/token",
                                             data={"username": a["email"], "password": a["password"]})
    assert login.status_code == 401
    assert (await bob.get(f"/api/v1/conversations/{bob_conv['id']}")).status_code == 200
    assert (await bob.get("/api/v1/users/me")).json()["id"] == b["id"]
    again = await (await make_client()).post("/api/v1/auth/signup", json={
        "email": a["email"], "password": a["password"], "display_name": "다시"})
    assert again.status_code == 201


async def test_a_deletion_cut_short_is_finished_at_the_next_start(make_client: Any, live: Any) -> None:
    """A crash after the account was marked leaves it disabled; the next start of the app erases it."""
    alice, bob = await make_client(), await make_client()
    a, uid, _ = await _user_with_a_message(alice, live, "반쯤 지운 대화")
    b = await signup_and_login(bob)
    await users_repo.mark_deleting(db=live.db, user_id=uid)  # the process dies right after this step

    assert (await alice.get("/api/v1/users/me")).status_code == 401  # disabled at once
    login = await (await make_client()).post("/api/v1/auth/token",
                                             data={"username": a["email"], "password": a["password"]})
    assert login.status_code == 403  # a disabled account, as an admin would disable it
    assert await live.db.messages.count_documents({"user_id": uid}) == 1  # not yet erased

    restarted, server, task = await start_server(live.settings)
    try:
        assert await live.db.users.count_documents({"_id": uid}) == 0
        assert await live.db.conversations.count_documents({"user_id": uid}) == 0
        assert await live.db.messages.count_documents({"user_id": uid}) == 0
        async with httpx.AsyncClient(base_url=restarted.url, headers=bob.headers) as again:
            assert (await again.get("/api/v1/users/me")).json()["id"] == b["id"]
    finally:
        server.should_exit = True
        await task
