"""Security hardening of the HTTP layer (issue 39): text that is not Unicode, emails as one
account, CSRF bound to the session, Origin checks, cookies, security headers."""

from __future__ import annotations

import uuid

import httpx

from tests.backend.conftest import signup_and_login

LONE = '"a\\ud800b"'  # a JSON escape that decodes to a lone surrogate


async def _raw(client: httpx.AsyncClient, method: str, path: str, body: str) -> httpx.Response:
    return await client.request(method, path, content=body.encode(), headers={"content-type": "application/json"})


async def test_lone_surrogates_are_invalid_text_in_every_field(client: httpx.AsyncClient) -> None:
    user = await signup_and_login(client)
    bodies = [
        ("POST", "/api/v1/auth/signup",
         f'{{"email": "{uuid.uuid4().hex}@example.com", "password": {LONE}, "display_name": "x"}}'),
        ("POST", "/api/v1/auth/signup",
         f'{{"email": "{uuid.uuid4().hex}@example.com", "password": "long-enough-1", "display_name": {LONE}}}'),
        ("POST", "/api/v1/auth/refresh", f'{{"refresh_token": {LONE}}}'),
        ("POST", "/api/v1/conversations", f'{{"title": {LONE}}}'),
        ("PATCH", "/api/v1/users/me", f'{{"display_name": {LONE}}}'),
        ("POST", "/api/v1/users/me/password", f'{{"current_password": {LONE}, "new_password": "long-enough-2"}}'),
        ("POST", "/api/v1/tokens", f'{{"name": {LONE}}}'),
        ("POST", f"/api/v1/messages/{'0' * 24}/feedback", f'{{"rating": 1, "comment": {LONE}}}'),
        ("POST", f"/api/v1/conversations/{'0' * 24}/messages", f'{{"content": {LONE}}}'),
    ]
    for method, path, body in bodies:
        response = await _raw(client, method, path, body)
        assert response.status_code == 422, (path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "invalid_text", (path, response.text)
    token = (await client.post("/api/v1/tokens", json={"name": "v1"})).json()["token"]
    for content in (LONE, f'[{{"type": "text", "text": {LONE}}}]'):
        body = f'{{"model": "kovr", "messages": [{{"role": "user", "content": {content}}}]}}'
        response = await client.post("/v1/chat/completions", content=body.encode(), headers={
            "content-type": "application/json", "authorization": f"Bearer {token}"})
        assert response.status_code == 422, response.text
        error = response.json()["error"]  # OpenAI's shape
        assert error["code"] == "invalid_text" and error["type"] == "invalid_request_error", error
    # A valid pair of surrogates is an ordinary character (U+1F600).
    fine = await _raw(client, "POST", "/api/v1/conversations", '{"title": "\\ud83d\\ude00 대화"}')
    assert fine.status_code == 201 and fine.json()["title"] == "\U0001f600 대화"
    assert user


async def test_emails_are_one_account_however_typed(client: httpx.AsyncClient) -> None:
    local = f"u{uuid.uuid4().hex[:8]}"
    await signup_and_login(client, email=f"{local}@example.com")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in local)  # ｕ１２… (NFKC folds them)
    again = await client.post("/api/v1/auth/signup", json={
        "email": f"{fullwidth}@example.com", "password": "비밀번호-correct-horse", "display_name": "x"})
    assert again.status_code == 409, again.text
    login = await client.post("/api/v1/auth/token", data={"username": f"{fullwidth}@ＥＸＡＭＰＬＥ.com",
                                                          "password": "비밀번호-correct-horse"})
    assert login.status_code == 200, login.text
    korean = await client.post("/api/v1/auth/signup", json={
        "email": f"{local}@예시.한국", "password": "비밀번호-correct-horse", "display_name": "x"})
    assert korean.status_code == 201, korean.text
    ascii_domain = "예시.한국".encode("idna").decode()
    assert ascii_domain.startswith("xn--") and korean.json()["email"] == f"{local}@{ascii_domain}"
    puny = await client.post("/api/v1/auth/token", data={"username": f"{local}@{ascii_domain}",
                                                         "password": "비밀번호-correct-horse"})
    assert puny.status_code == 200, puny.text


