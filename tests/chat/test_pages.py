"""Server-rendered pages without a browser: assets from our own origin, locales, escaping, CSRF."""

from __future__ import annotations

import re

import httpx

from tests.chat.support import sign_up


def _browser(app_url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=app_url, timeout=60)
    assert client.get("/login").status_code == 200
    return client, client.cookies["kovr_csrf"]


def _signed_in(app_url: str) -> tuple[httpx.Client, str]:
    account = sign_up(app_url)
    client, csrf = _browser(app_url)
    response = client.post("/login", data={"csrf_token": csrf, "email": account.email, "password": account.password})
    assert response.status_code == 303 and response.headers["location"] == "/chat"
    return client, client.cookies["kovr_csrf"]  # a sign-in has its own CSRF token


def test_pages_load_scripts_only_from_our_origin(app_url: str) -> None:
    client, _ = _browser(app_url)
    page = client.get("/login").text
    sources = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert sources and all(s.startswith("/static/") for s in sources)
    assert "https://" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page))
    htmx = client.get("/static/vendor/htmx.min.js")
    assert htmx.status_code == 200 and htmx.headers["content-type"].startswith("text/javascript")
    assert "htmx" in htmx.text[:2000]
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/static/vendor/other.js").status_code == 404


def test_english_locale(app_url: str) -> None:
    client, _ = _browser(app_url)
    switched = client.get("/lang/en", params={"next": "/login"})
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    page = client.get("/login").text
    assert '<html lang="en">' in page and "Sign in" in page
    assert client.get("/lang/en", params={"next": "//evil.example"}).headers["location"] == "/"
    fresh = httpx.get(f"{app_url}/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Sign in" in fresh.text
    assert "로그인" in httpx.get(f"{app_url}/login").text


def test_sending_from_the_page_escapes_text_and_needs_csrf(app_url: str) -> None:
    client, csrf = _signed_in(app_url)
    hostile = "<script>alert('x')</script> 안녕?"
    refused = client.post("/chat/send", data={"content": hostile}, headers={"HX-Request": "true"})
    assert refused.status_code in (401, 403)
    sent = client.post("/chat/send", data={"content": hostile, "conversation_id": ""},
                       headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert sent.status_code == 200
    assert "<script>alert" not in sent.text and "&lt;script&gt;" in sent.text
    conversation = sent.headers["hx-push-url"].rsplit("/", 1)[-1]
    page = client.get(f"/c/{conversation}").text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    too_long = client.post("/chat/send", data={"content": "가" * 9000, "conversation_id": conversation},
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert too_long.status_code == 422 and "너무" in too_long.text


def test_signed_out_pages_go_to_login(app_url: str) -> None:
    client, _ = _browser(app_url)
    for path in ("/chat", "/settings", "/"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login"
    bad = client.post("/signup", data={"csrf_token": client.cookies["kovr_csrf"], "email": "not-an-email",
                                       "password": "short", "display_name": "이름"})
    assert bad.status_code == 422 and "입력값이 올바르지 않습니다" in bad.text


def _checked(page: str) -> list[str]:
    return re.findall(r'name="answer_style" value="(\w+)"\s+checked', page)


def test_answer_style_in_the_settings_decides_how_the_page_samples(app_url: str) -> None:
    client, csrf = _signed_in(app_url)
    settings_page = client.get("/settings").text
    assert "답변 스타일" in settings_page and _checked(settings_page) == ["balanced"]

    def sent_parameters() -> dict[str, object]:
        sent = client.post("/chat/send", data={"content": "하늘은 왜 파란가요?", "conversation_id": ""},
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf})
        assert sent.status_code == 200
        conversation = sent.headers["hx-push-url"].rsplit("/", 1)[-1]
        items = client.get(f"/api/v1/conversations/{conversation}/messages").json()["items"]
        return next(m for m in items if m["role"] == "assistant")["parameters"]

    assert sent_parameters()["temperature"] == 0.7  # balanced: the service's default
    saved = client.post("/settings/answer-style", data={"csrf_token": csrf, "answer_style": "precise"})
    assert saved.status_code == 200 and "저장했습니다" in saved.text
    assert _checked(saved.text) == ["precise"]
    assert sent_parameters()["temperature"] == 0.0  # greedy
    assert client.get("/api/v1/users/me").json()["answer_style"] == "precise"
    bad = client.post("/settings/answer-style", data={"csrf_token": csrf, "answer_style": "wild"})
    assert bad.status_code == 422 and "입력값이 올바르지 않습니다" in bad.text
    # Without the CSRF token the session does not count: sent back to sign in, nothing changed.
    assert client.post("/settings/answer-style", data={"answer_style": "creative"}).status_code in (303, 401, 403)
    assert client.get("/api/v1/users/me").json()["answer_style"] == "precise"
