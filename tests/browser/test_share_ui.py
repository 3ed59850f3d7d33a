"""Share and consent in a real browser: the 공유 button makes a link that a fresh browser (no
account) opens read-only; revoke kills it; settings lists shares and toggles training consent.
Screenshots (desktop 1280x800, phone 390x844) go to /tmp/shots-share/."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import fill_sign_up
from tests.chat.support import QA

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path("/tmp/shots-share")
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}


def _shot(page: Any, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def _signed_up_with_an_answer(browser: Any, base: str) -> Any:
    context = browser.new_context(viewport=DESKTOP, locale="ko-KR")
    page = context.new_page()
    fill_sign_up(page, base, f"share-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_role("button", name="회원가입").click()
    page.wait_for_url(f"{base}/chat")
    page.locator("#composer-input").fill(QA[1][0])
    page.locator("#composer-input").press("Enter")
    page.wait_for_url(re.compile(r"/c/[0-9a-f]{24}$"))
    page.locator("article.msg.assistant .msg-body > .content.markdown").wait_for(timeout=60_000)
    return page


def _share(page: Any) -> str:
    page.get_by_role("button", name="공유").click()
    url = page.locator("#share-url")
    url.wait_for()
    return str(url.input_value())


def _open_fresh(browser: Any, url: str, viewport: dict[str, int], shot: str | None = None) -> tuple[int, str]:
    """The link in a browser that never signed in."""
    context = browser.new_context(viewport=viewport, locale="ko-KR")
    try:
        page = context.new_page()
        response = page.goto(url)
        if shot:
            _shot(page, shot, full_page=True)
        robots = page.locator('meta[name="robots"]').get_attribute("content") or ""
        assert "noindex" in robots and page.locator("form").count() == 0
        return response.status, page.locator("body").inner_text()
    finally:
        context.close()


def test_share_link_opens_without_an_account_and_revoke_ends_it(browser: Any, app_url: str) -> None:
    page = _signed_up_with_an_answer(browser, app_url)
    url = _share(page)
    assert re.fullmatch(rf"{re.escape(app_url)}/s/[A-Za-z0-9_-]{{24}}", url), url
    page.locator(".share-box button", has_text="복사").click()
    page.locator("#toast", has_text="복사했습니다").wait_for()
    _shot(page, "chat-share-panel-desktop")

    status, text = _open_fresh(browser, url, DESKTOP, "shared-page-desktop")
    assert status == 200 and QA[1][0] in text and "훈민정음" in text and "share-" not in text
    status, _ = _open_fresh(browser, url, PHONE, "shared-page-phone")
    assert status == 200

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(500)  # the sidebar slides away (a 0.2 s transition) at phone width
    _shot(page, "chat-share-panel-phone")
    page.set_viewport_size(DESKTOP)
    page.locator(".share-box button", has_text="폐기").click()
    page.locator("#share-panel", has_text="공유 링크를 폐기했습니다").wait_for()
    status, text = _open_fresh(browser, url, DESKTOP)
    assert status == 404 and "공유 링크를 찾을 수 없습니다" in text
    page.context.close()


def test_settings_lists_shares_and_toggles_consent(browser: Any, app_url: str) -> None:
    page = _signed_up_with_an_answer(browser, app_url)
    url = _share(page)
    page.goto(f"{app_url}/settings")
    shares = page.locator(".share-list li")
    assert shares.count() == 1 and url in shares.first.inner_text()

    consent = page.get_by_role("checkbox", name="내 대화를 모델 개선에 사용")
    assert not consent.is_checked()  # off by default
    consent.check()
    page.locator(".consent-form button[type=submit]").click()
    page.locator(".notice", has_text="저장했습니다").wait_for()
    assert page.get_by_role("checkbox", name="내 대화를 모델 개선에 사용").is_checked()
    assert page.request.get(f"{app_url}/api/v1/users/me").json()["training_consent"] is True
    page.locator("#consent-h").scroll_into_view_if_needed()
    _shot(page, "settings-consent-shares-desktop")
    page.set_viewport_size(PHONE)
    page.locator("#consent-h").scroll_into_view_if_needed()
    _shot(page, "settings-consent-shares-phone")
    page.set_viewport_size(DESKTOP)

    page.get_by_role("checkbox", name="내 대화를 모델 개선에 사용").uncheck()
    page.locator(".consent-form button[type=submit]").click()
    page.locator(".notice", has_text="저장했습니다").wait_for()
    assert page.request.get(f"{app_url}/api/v1/users/me").json()["training_consent"] is False

    page.locator(".share-list li button", has_text="폐기").click()
    page.wait_for_url(f"{app_url}/settings")
    page.get_by_text("공유한 대화가 없습니다.").wait_for()
    status, _ = _open_fresh(browser, url, DESKTOP)
    assert status == 404
    page.context.close()
