"""Browser sessions: HttpOnly cookies, double-submit CSRF on state-changing requests, silent renewal."""

from __future__ import annotations

import uuid

import httpx

from backend.http.cookies import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE
from tests.backend.conftest import MakeClient


async def _browser(make_client: MakeClient) -> tuple[httpx.AsyncClient, str, str]:
    """A signed-up user logged in through /auth/session, as a browser would be."""
    browser = await make_client()
    email, password = f"b-{uuid.uuid4().hex[:8]}@example.com", "browser-password"
    signup = await browser.post(
        "/api/v1/auth/signup", json={"email": email, "password": password, "display_name": "브"}
    )
    assert signup.status_code == 201
    csrf = browser.cookies[CSRF_COOKIE]  # handed out on the first response
    login = await browser.post(
        "/api/v1/auth/session", data={"username": email, "password": password, "csrf_token": csrf}
    )
    assert login.status_code == 200, login.text
    return browser, browser.cookies[CSRF_COOKIE], email  # a sign-in has its own CSRF token


async def test_every_browser_gets_a_readable_csrf_cookie(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    header = next(h for h in resp.headers.get_list("set-cookie") if h.startswith(f"{CSRF_COOKIE}="))
    assert "HttpOnly" not in header and "SameSite=Lax" in header
    again = await client.get("/healthz")
    assert "set-cookie" not in again.headers  # kept, not re-issued


async def test_login_form_needs_the_csrf_token(make_client: MakeClient) -> None:
    browser = await make_client()
    await browser.get("/healthz")
    resp = await browser.post(
        "/api/v1/auth/session", data={"username": "a@example.com", "password": "whatever1"}
    )
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "csrf_failed"


async def test_session_cookies_are_httponly_and_lax(make_client: MakeClient) -> None:
    browser = await make_client()
    await browser.get("/healthz")
    email = f"c-{uuid.uuid4().hex[:8]}@example.com"
    await browser.post(
        "/api/v1/auth/signup", json={"email": email, "password": "browser-password", "display_name": "c"}
    )
    resp = await browser.post(
        "/api/v1/auth/session",
        data={"username": email, "password": "browser-password"},
        headers={"X-CSRF-Token": browser.cookies[CSRF_COOKIE]},
    )
    assert resp.status_code == 200
    cookies = resp.headers.get_list("set-cookie")
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        line = next(c for c in cookies if c.startswith(f"{name}="))
        assert "HttpOnly" in line and "SameSite=Lax" in line and "Path=/" in line
        assert "Secure" not in line  # plain http here; Secure comes with an https public_url


async def test_cookie_requests_need_csrf_for_changes_only(make_client: MakeClient) -> None:
    browser, csrf, email = await _browser(make_client)
    me = await browser.get("/api/v1/users/me")
    assert me.status_code == 200 and me.json()["email"] == email  # reads need no token

    forged = await browser.post("/api/v1/conversations", json={"title": "위조"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
    wrong = await browser.post(
        "/api/v1/conversations", json={"title": "위조"}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert wrong.status_code == 403
    for method, path in (("PATCH", "/api/v1/users/me"), ("POST", "/api/v1/tokens")):
        assert (
            await browser.request(method, path, json={"display_name": "x", "name": "x"})
        ).status_code == 403

    ok = await browser.post("/api/v1/conversations", json={"title": "진짜"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201
    listing = (await browser.get("/api/v1/conversations")).json()["items"]
    assert [c["title"] for c in listing] == ["진짜"]


async def test_expired_access_cookie_is_renewed_from_the_refresh_cookie(make_client: MakeClient) -> None:
    browser, _, email = await _browser(make_client)
    old_refresh = browser.cookies[REFRESH_COOKIE]
    browser.cookies.delete(ACCESS_COOKIE)  # as if it had expired
    resp = await browser.get("/api/v1/users/me")
    assert resp.status_code == 200 and resp.json()["email"] == email
    assert browser.cookies[REFRESH_COOKIE] != old_refresh  # rotated
    assert ACCESS_COOKIE in browser.cookies

    # A second tab racing with the spent cookie inside the grace window is not a theft...
    racer = await make_client()
    racer.cookies.set(REFRESH_COOKIE, old_refresh)
    assert (await racer.get("/api/v1/users/me")).status_code == 200
    # ...and the first browser still works.
    browser.cookies.delete(ACCESS_COOKIE)
    assert (await browser.get("/api/v1/users/me")).status_code == 200


async def test_logout_with_cookies_clears_them_and_ends_the_session(make_client: MakeClient) -> None:
    browser, csrf, _ = await _browser(make_client)
    refresh = browser.cookies[REFRESH_COOKIE]
    refused = await browser.post("/api/v1/auth/logout")
    assert refused.status_code == 403  # a cross-site page cannot log you out either
    resp = await browser.post("/api/v1/auth/logout", data={"csrf_token": csrf})
    assert resp.status_code == 204
    assert ACCESS_COOKIE not in browser.cookies and REFRESH_COOKIE not in browser.cookies
    assert (await browser.get("/api/v1/users/me")).status_code == 401
    again = await browser.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert again.status_code == 401
