"""Every page under the strict Content-Security-Policy in a real browser: login, sign-up, the chat
with a streamed answer (and an uploaded image), a share link's public page, settings and /docs.
Any `securitypolicyviolation` event or CSP console message fails the test: nothing on our pages
may need inline code or eval."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browser.support import attach_image, fill_sign_up

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Runs before any page script (Playwright injects it outside the page's CSP).
REPORT_VIOLATIONS = """document.addEventListener('securitypolicyviolation', (e) =>
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI + ' at ' +
                e.sourceFile + ':' + e.lineNumber));"""


def test_every_page_runs_under_the_content_security_policy(browser: Any, app_url: str, tmp_path: Path) -> None:
    context = browser.new_context(locale="ko-KR")
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if (
        "Content Security Policy" in msg.text or "CSP violation" in msg.text) else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    policies: dict[str, str] = {}
    page.on("response", lambda r: policies.setdefault(r.url, r.headers.get("content-security-policy", ""))
            if "text/html" in r.headers.get("content-type", "") else None)

    page.goto(f"{app_url}/login")
    page.get_by_label("이메일").wait_for()
    fill_sign_up(page, app_url, f"csp-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_role("button", name="회원가입").click()
    page.wait_for_url(f"{app_url}/chat")
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(image)
    attach_image(page, image)  # the preview is a blob: image
    page.locator(".attachment button").first.click()  # removed again: the text model takes none
    box = page.locator("#composer-input")
    box.fill("안녕하세요")
    box.press("Enter")
    page.locator("article.msg.assistant .content.markdown").last.wait_for(timeout=60_000)
    page.get_by_role("button", name="공유").click()  # the share panel (htmx), then the public page
    page.goto(page.locator("#share-url").input_value())
    page.locator(".shared-messages .msg.assistant").wait_for()
    page.goto(f"{app_url}/settings")
    page.locator("form[action='/settings/delete-account']").wait_for()
    page.goto(f"{app_url}/docs")
    page.get_by_text("/api/v1/auth/signup").first.wait_for(timeout=20_000)
    page.get_by_role("button", name="Authorize").click()
    page.locator(".modal-ux").wait_for()
    page.wait_for_timeout(300)
    context.close()

    assert not problems, problems
    assert len(policies) >= 6, policies
    for url, policy in policies.items():
        assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy and "unsafe-eval" not in policy, url
        assert "frame-ancestors 'none'" in policy, url
