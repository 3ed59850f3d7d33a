"""The conversation tree in a real browser: 계속 on a length-ended answer, edit a sent message
inline (Enter during Hangul composition never submits), the "1 / 2" switcher, regenerate as a
new version, delete a message, a search hit on another branch, the English labels, phone width. Screenshots go to
test-artifacts/ and /tmp/shots-tree/."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.chat.support import QA, Account, sign_up, stream_message

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path("/tmp/shots-tree")


def _shot(page: Any, artifacts: Path, name: str) -> None:
    path = artifacts / f"tree-ui-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def _log_in(page: Any, base: str, account: Account) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("이메일").fill(account.email)
    page.get_by_label("비밀번호").fill(account.password)
    page.get_by_role("button", name="로그인").click()
    page.wait_for_url(f"{base}/chat")


def _saved(account: Account, conversation: str) -> list[dict[str, Any]]:
    return account.messages(conversation)


def _continue_a_cut_off_answer(page: Any, account: Account, conversation: str, artifacts: Path) -> None:
    before = _saved(account, conversation)[-1]
    assert before["finish_reason"] == "length"
    last = page.locator(f"#m-{before['id']}")
    _shot(page, artifacts, "continue-button")
    last.get_by_role("button", name="계속").click()
    deadline = time.monotonic() + 60
    while ((after := _saved(account, conversation)[-1])["status"] == "streaming"
           or after["content"] == before["content"]):
        assert time.monotonic() < deadline, "the continued answer did not finish"
        time.sleep(0.2)
    # The page shows the whole answer, rendered, once its stream ended.
    page.wait_for_function(
        "([id, n]) => { const c = document.querySelector(`#m-${id} .msg-body > .content.markdown`);"
        " return c && c.textContent.trim().length > n; }", arg=[before["id"], len(before["content"])])
    assert after["id"] == before["id"] and after["content"].startswith(before["content"])
    assert len(after["content"]) > len(before["content"])
    assert len(_saved(account, conversation)) == 4  # the same message grew: nothing was added


def _edit_with_ime_safe_enter(page: Any, account: Account, conversation: str, artifacts: Path) -> str:
    question = _saved(account, conversation)[2]
    article = page.locator(f"#m-{question['id']}")
    article.get_by_role("button", name="수정").click()
    box = article.locator(".edit-input")
    box.wait_for()
    assert box.input_value() == question["content"]
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if "/edit" in r.url else None)
    box.fill("세종대왕에 대해 더 알려 주세요 한")
    box.evaluate("""el => el.dispatchEvent(new KeyboardEvent('keydown',
        {key: 'Enter', code: 'Enter', keyCode: 229, isComposing: true, bubbles: true, cancelable: true}))""")
    page.wait_for_timeout(600)
    assert posted == []  # Enter that confirms a Hangul syllable does not send
    _shot(page, artifacts, "edit-form")
    box.fill("세종대왕에 대해 더 알려 주세요")
    box.press("Enter")
    page.locator("article.msg.user .switcher-count", has_text="2 / 2").wait_for(timeout=60_000)
    page.locator("article.msg.assistant").nth(1).locator(".msg-body > .content.markdown").wait_for(timeout=60_000)
    shown = _saved(account, conversation)
    assert shown[2]["content"] == "세종대왕에 대해 더 알려 주세요" and shown[2]["siblings"]["count"] == 2
    assert page.locator("article.msg").count() == 4
    _shot(page, artifacts, "edited-branch")
    return str(question["id"])


def _switch_back_and_forth(page: Any, base: str, conversation: str, old_question: str) -> None:
    edited = page.locator("article.msg.user").nth(1)
    edited.get_by_role("button", name="이전 버전").click()
    page.locator(f"#m-{old_question} .switcher-count", has_text="1 / 2").wait_for()
    assert page.locator("article.msg.user").nth(1).inner_text().startswith(QA[1][0])
    page.goto(f"{base}/c/{conversation}")  # remembered
    page.locator(f"#m-{old_question} .switcher-count", has_text="1 / 2").wait_for()
    page.locator(f"#m-{old_question}").get_by_role("button", name="다음 버전").click()
    page.locator("article.msg.user .switcher-count", has_text="2 / 2").wait_for()


def _search_opens_the_branch_of_the_hit(page: Any, base: str, conversation: str, old_question: str) -> None:
    """The old question is on the branch not shown: the search result opens that branch."""
    page.locator("#conversation-search").fill("무엇을 만들었나요")
    link = page.locator(f"#conv-{conversation} a.conv-link[href*='?m=']")
    link.wait_for()
    link.click()
    page.wait_for_url(f"{base}/c/{conversation}")
    page.locator(f"#m-{old_question} .switcher-count", has_text="1 / 2").wait_for()
    page.locator(f"#m-{old_question}").get_by_role("button", name="다음 버전").click()
    page.locator("article.msg.user .switcher-count", has_text="2 / 2").wait_for()


def _regenerate_then_delete(page: Any, account: Account, conversation: str) -> None:
    first_answer = page.locator("article.msg.assistant").first
    first_answer.get_by_role("button", name="다시 생성").click()
    page.locator("article.msg.assistant .switcher-count", has_text="2 / 2").wait_for(timeout=60_000)
    page.locator("article.msg.assistant .msg-body > .content.markdown").first.wait_for(timeout=60_000)
    assert page.locator("article.msg").count() == 2  # the new answer's branch has nothing after it yet
    newest = _saved(account, conversation)[-1]
    page.locator(f"#m-{newest['id']}").get_by_role("button", name="메시지 삭제").click()  # confirm: accepted
    page.locator(f"#m-{newest['id']}").wait_for(state="detached")
    assert page.locator("article.msg.assistant .switcher").count() == 0
    assert all(m["id"] != newest["id"] for m in _saved(account, conversation))


def test_tree_in_the_browser(browser: Any, app_url: str, artifacts_dir: Path) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    stream_message(account, conversation, QA[0][0], parameters={"temperature": 0})
    stream_message(account, conversation, QA[1][0], parameters={"temperature": 0, "max_new_tokens": 6})
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    _log_in(page, app_url, account)
    page.goto(f"{app_url}/c/{conversation}")

    _continue_a_cut_off_answer(page, account, conversation, artifacts_dir)
    old_question = _edit_with_ime_safe_enter(page, account, conversation, artifacts_dir)
    _switch_back_and_forth(page, app_url, conversation, old_question)
    _search_opens_the_branch_of_the_hit(page, app_url, conversation, old_question)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state(),
                                locale="ko-KR", is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    mobile.goto(f"{app_url}/c/{conversation}")
    mobile.locator("article.msg.user .switcher-count", has_text="2 / 2").wait_for()
    _shot(mobile, artifacts_dir, "phone-switcher")
    phone.close()

    page.goto(f"{app_url}/lang/en?next=/c/{conversation}")
    page.locator("article.msg.user").first.get_by_role("button", name="Edit").wait_for()
    page.locator("article.msg.user").nth(1).get_by_role("button", name="Previous version").wait_for()
    _shot(page, artifacts_dir, "english")
    page.goto(f"{app_url}/lang/ko?next=/c/{conversation}")

    _regenerate_then_delete(page, account, conversation)
    _shot(page, artifacts_dir, "after-delete")
    context.close()
    assert errors == []
