"""Security hardening of the HTTP layer (issue 39): text that is not Unicode, emails as one
account, CSRF bound to the session, Origin checks, cookies, security headers."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from bson import ObjectId
from PIL import Image

from backend.db import images as images_repo
from tests.backend.conftest import MakeClient, backend_settings, signup_and_login, start_server

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




async def _browser(make_client: MakeClient) -> tuple[httpx.AsyncClient, str]:
    """A browser signed in through /auth/session (cookies), and its CSRF token."""
    browser = await make_client()
    email, password = f"b-{uuid.uuid4().hex[:8]}@example.com", "browser-password"
    assert (await browser.post("/api/v1/auth/signup", json={
        "email": email, "password": password, "display_name": "브"})).status_code == 201
    login = await browser.post("/api/v1/auth/session", data={
        "username": email, "password": password, "csrf_token": browser.cookies["kovr_csrf"]})
    assert login.status_code == 200, login.text
    return browser, browser.cookies["kovr_csrf"]


async def test_a_planted_csrf_cookie_never_matches(make_client: MakeClient) -> None:
    browser, token = await _browser(make_client)
    planted = "A" * 43  # cookie tossing: the attacker's value in the cookie and in the header
    browser.cookies.set("kovr_csrf", planted)
    forged = await browser.post("/api/v1/conversations", json={"title": "x"}, headers={"X-CSRF-Token": planted})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
    ok = await browser.post("/api/v1/conversations", json={"title": "x"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201, ok.text
    # The token of another browser's sign-in does not fit this one.
    _, other_token = await _browser(make_client)
    crossed = await browser.post("/api/v1/conversations", json={"title": "x"}, headers={"X-CSRF-Token": other_token})
    assert crossed.status_code == 403
    assert other_token != token


async def test_cookie_writes_from_a_foreign_origin_are_refused(make_client: MakeClient, live: Any) -> None:
    browser, token = await _browser(make_client)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}, {"Origin": live.url.replace("127.0.0.1", "localhost")}):
        forged = await browser.post("/api/v1/conversations", json={"title": "x"},
                                    headers={"X-CSRF-Token": token, **headers})
        assert forged.status_code == 403, (headers, forged.text)
        assert forged.json()["error"]["code"] == "csrf_failed"
    for headers in ({"Origin": live.url}, {"Referer": f"{live.url}/chat"}, {}):
        ok = await browser.post("/api/v1/conversations", json={"title": "x"},
                                headers={"X-CSRF-Token": token, **headers})
        assert ok.status_code == 201, (headers, ok.text)
    # The login form is checked the same way.
    fresh = await make_client()
    await fresh.get("/login")
    login = await fresh.post("/login", data={"csrf_token": fresh.cookies["kovr_csrf"], "email": "a@b.example",
                                             "password": "whatever-1"}, headers={"Origin": "http://evil.example"})
    assert login.status_code == 403
    # Bearer calls carry no ambient credential: no token, any Origin.
    api = await make_client()
    await signup_and_login(api)
    bearer = await api.post("/api/v1/conversations", json={"title": "x"}, headers={"Origin": "http://evil.example"})
    assert bearer.status_code == 201, bearer.text


async def test_https_deployments_use_host_prefixed_secure_cookies(
    mongo_uri: str, db_name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = backend_settings(mongo_uri, db_name + "_https", tmp_path_factory.mktemp("https"),
                                public_url="https://kovr.example")
    live_server, server, task = await start_server(settings)
    try:
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as browser:
            page = await browser.get("/login")
            cookies = page.headers.get_list("set-cookie")
            assert cookies and all(c.startswith("__Host-") and "; Secure" in c and "SameSite=Lax" in c
                                   and "Domain" not in c and "Path=/" in c for c in cookies), cookies
            assert "max-age=31536000" in page.headers["strict-transport-security"]
            assert "camera=()" in page.headers["permissions-policy"]
            assert "script-src 'self';" in page.headers["content-security-policy"]
            # The site's origin is KOVR_PUBLIC_URL's, not whatever Host the request names.
            token = next(c for c in cookies if c.startswith("__Host-kovr_csrf=")).split("=", 1)[1].split(";")[0]
            sid = next(c for c in cookies if c.startswith("__Host-kovr_sid=")).split("=", 1)[1].split(";")[0]
            jar = {"__Host-kovr_csrf": token, "__Host-kovr_sid": sid}
            form = {"csrf_token": token, "email": "nobody@example.com", "password": "whatever-1"}
            own = await browser.post("/login", data=form, cookies=jar, headers={"Origin": live_server.url})
            assert own.status_code == 403
            public = await browser.post("/login", data=form, cookies=jar, headers={"Origin": "https://kovr.example"})
            assert public.status_code in (401, 200), public.text  # past the CSRF check: a wrong password
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    return {"upload_rate_limit": 8, "upload_rate_window_s": 600, "image_quota_bytes": 200_000,
            "unattached_image_retention_s": 3600}


def _png(side: int = 8, noise: bool = False) -> bytes:
    image = (Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)) if noise
             else Image.new("RGB", (side, side)))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def _upload(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post("/api/v1/images", files={"file": ("a.png", data, "image/png")})


async def test_uploads_are_rate_limited_per_user(make_client: MakeClient) -> None:
    client = await make_client()
    await signup_and_login(client)
    answers = await asyncio.gather(*(_upload(client, _png()) for _ in range(12)))
    assert Counter(a.status_code for a in answers) == {201: 8, 429: 4}
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
    other = await make_client()
    await signup_and_login(other)
    assert (await _upload(other, _png())).status_code == 201  # a per-user allowance


async def test_storage_quota_says_how_much_is_used(make_client: MakeClient) -> None:
    client = await make_client()
    await signup_and_login(client)
    big = _png(150, noise=True)
    assert 60_000 < len(big) < 100_000
    assert (await _upload(client, big)).status_code == 201
    assert (await _upload(client, _png(150, noise=True))).status_code == 201
    full = await _upload(client, _png(150, noise=True))
    assert full.status_code == 413, full.text
    error = full.json()["error"]
    assert error["code"] == "quota_exceeded" and "사용 중" in error["message"] and "0.2 MiB" in error["message"]


async def test_unattached_images_expire_and_sent_ones_stay(make_client: MakeClient, live: Any) -> None:
    client = await make_client()
    user = await signup_and_login(client)
    first = (await _upload(client, _png())).json()["id"]
    kept = (await _upload(client, _png())).json()["id"]
    doc = await live.db.images.find_one({"_id": ObjectId(first)})
    lifetime = doc["expires_at"].replace(tzinfo=dt.UTC) - doc["created_at"].replace(tzinfo=dt.UTC)
    assert lifetime == dt.timedelta(seconds=3600)
    indexes = await live.db.images.index_information()
    assert any(i.get("expireAfterSeconds") == 0 and i["key"] == [("expires_at", 1)] for i in indexes.values())
    await images_repo.attach_images(db=live.db, user_id=ObjectId(user["id"]), image_ids=[ObjectId(kept)],
                                    conversation_id=ObjectId())
    assert "expires_at" not in await live.db.images.find_one({"_id": ObjectId(kept)})
    # Past its retention (the TTL monitor runs once a minute; the next upload sweeps too).
    await live.db.images.update_one({"_id": ObjectId(first)}, {"$set": {"expires_at": dt.datetime.now(dt.UTC)}})
    assert (await _upload(client, _png())).status_code == 201
    assert (await client.get(f"/api/v1/images/{first}")).status_code == 404
    assert (await client.get(f"/api/v1/images/{kept}")).status_code == 200


async def test_huge_request_headers_are_refused(client: httpx.AsyncClient) -> None:
    try:  # refused with 400, or the connection closed while the client still sends
        big = await client.get("/healthz", headers={"X-Padding": "a" * (1024 * 1024)})
        assert big.status_code in (400, 431), big.status_code
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        pass
    assert (await client.get("/healthz", headers={"X-Padding": "a" * 4000})).status_code == 200


async def test_json_booleans_are_strict(client: httpx.AsyncClient) -> None:
    await signup_and_login(client)
    for value in ('"yes"', '"true"', "1"):
        body = f'{{"model": "kovr", "stream": {value}, "messages": [{{"role": "user", "content": "안녕"}}]}}'
        response = await client.post("/v1/chat/completions", content=body.encode(),
                                     headers={"content-type": "application/json"})
        assert response.status_code == 422, (value, response.text)


async def test_405_names_every_allowed_method(client: httpx.AsyncClient) -> None:
    await signup_and_login(client)
    response = await client.put(f"/api/v1/conversations/{'0' * 24}", json={})
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "PATCH", "DELETE"}
