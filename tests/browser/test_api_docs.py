"""/docs in a real browser: Swagger UI renders the API from our own origin, with no other host asked."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_swagger_ui_renders_without_leaving_our_origin(browser: Any, app_url: str) -> None:
    context = browser.new_context(locale="ko-KR")
    page = context.new_page()
    hosts: set[str] = set()
    errors: list[str] = []
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{app_url}/docs")
    page.get_by_text("/api/v1/auth/signup").first.wait_for(timeout=20_000)
    assert page.locator(".opblock").count() >= 10  # one block per API operation
    assert page.get_by_role("button", name="Authorize").is_visible()
    assert hosts == {urlsplit(app_url).netloc}, hosts
    assert not errors, errors
    context.close()
