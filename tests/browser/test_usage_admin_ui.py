"""Usage and admin in a real browser: the settings page's usage chart (server-drawn SVG), and the
admin page disabling and enabling an account with htmx. Screenshots at desktop (1280x800) and
phone (390x844) width go to test-artifacts/ and /tmp/shots-usage/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient

from kovr.settings import Settings
from tests.backend.usage_support import send
from tests.chat.support import Account, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SHOTS = Path("/tmp/shots-usage")


@pytest.fixture()
def db(app_settings: Settings) -> Iterator[Any]:
    assert app_settings.mongodb_uri is not None
    client: MongoClient[dict[str, Any]] = MongoClient(app_settings.mongodb_uri.get_secret_value(), tz_aware=True)
    yield client[app_settings.mongodb_db]
    client.close()


def _shots(page: Any, artifacts: Path, name: str, locator: Any | None = None) -> None:
    """The page at both widths (the same page, resized), full height."""
    SHOTS.mkdir(exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.wait_for_timeout(150)
        if locator is not None:
            locator.scroll_into_view_if_needed()
        for folder in (artifacts, SHOTS):
            page.screenshot(path=str(folder / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size(SIZES["desktop"])


def _log_in(browser: Any, base: str, account: Account) -> Any:
    """A signed-in page; CSP reports and page errors collect in `page.problems` (must stay empty)."""
    context = browser.new_context(locale="ko-KR", viewport=SIZES["desktop"])
    page = context.new_page()
    page.problems = []
    page.on("console", lambda msg: page.problems.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.goto(f"{base}/login")
    page.get_by_label("이메일").fill(account.email)
    page.get_by_label("비밀번호").fill(account.password)
    page.get_by_role("button", name="로그인").click()
    page.wait_for_url(f"{base}/chat")
    return page


def test_settings_shows_the_usage_chart(browser: Any, app_url: str, artifacts_dir: Path) -> None:
    account = sign_up(app_url, "사용량")
    conversation = account.conversation()
    for question in ("세종대왕은 무엇을 만들었나요?", "안녕하세요? 자기소개를 해 주세요."):
        assert send(account, conversation, question).status_code == 200
    page = _log_in(browser, app_url, account)
    page.goto(f"{app_url}/settings")
    chart = page.get_by_role("img", name="최근 30일 일별 생성 토큰")
    chart.wait_for()
    assert chart.is_visible() and chart.bounding_box()["width"] > 200
    assert page.locator("svg.usage-svg rect.usage-bar").count() == 30
    today = page.locator("svg.usage-svg rect.usage-bar").last
    assert float(today.get_attribute("height") or 0) > 100  # today is the busiest (the only) day
    assert "메시지 2개" in (today.locator("title").text_content() or "")
    assert page.get_by_text("이번 달 합계").is_visible()
    usage = page.locator("#usage")
    _shots(page, artifacts_dir, "settings-usage", usage)
    page.set_viewport_size(SIZES["phone"])
    assert chart.bounding_box()["width"] <= 390  # the chart shrinks with the page, no sideways scroll
    assert page.problems == []
    page.context.close()


def test_admin_disables_and_enables_an_account(browser: Any, app_url: str, db: Any, artifacts_dir: Path) -> None:
    admin, victim = sign_up(app_url, "관리자"), sign_up(app_url, "대상자")
    db.users.update_one({"_id": ObjectId(admin.user_id)}, {"$set": {"role": "admin"}})
    assert send(victim, victim.conversation()).status_code == 200
    page = _log_in(browser, app_url, admin)
    page.goto(f"{app_url}/admin")
    row = page.locator(f"#user-{victim.user_id}")
    row.wait_for()
    page.locator("#model-panel dl.model-stats").wait_for()  # the model server panel loaded (htmx)
    row.get_by_role("button", name="비활성화", exact=True).click()
    row.get_by_role("button", name="활성화", exact=True).wait_for()
    assert row.locator(".badge.off").is_visible()
    assert victim.client.get("/api/v1/users/me").status_code == 401  # the API token and sessions stop at once
    page.locator("#audit-panel").get_by_text("계정 비활성화").first.wait_for()
    _shots(page, artifacts_dir, "admin")
    row.get_by_role("button", name="활성화", exact=True).click()
    row.get_by_role("button", name="비활성화", exact=True).wait_for()
    page.locator("#audit-panel").get_by_text("계정 활성화", exact=True).first.wait_for()
    assert db.users.find_one({"_id": ObjectId(victim.user_id)})["disabled"] is False
    # No button to disable oneself.
    assert page.locator(f"#user-{admin.user_id}").get_by_role("button", name="비활성화", exact=True).count() == 0
    assert page.problems == []
    page.context.close()
