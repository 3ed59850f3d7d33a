"""The chat in a real browser (Chromium through Playwright): sign up, log in, a Korean question
streamed into the page, reload, rename, delete, an image, IME-safe Enter, phone layout.
Screenshots of the main pages go to test-artifacts/ (look at them after a change to the UI)."""

from __future__ import annotations

import itertools
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.browser.support import PASSWORD, attach_image, fill_sign_up, send_with_image
from tests.chat.support import QA, StreamKnobs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS_JS = """() => {
  window.__steps = [];
  const record = () => {
    const out = document.querySelector('.stream-text');
    if (out) window.__steps.push(out.textContent);
  };
  new MutationObserver(record).observe(document.getElementById('messages'),
                                       {subtree: true, childList: true, characterData: true});
}"""


def _plain(text: str) -> str:
    return re.sub(r"[\s#*_`>|-]", "", text)


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"chat-ui-{name}.png"), full_page=False)


def _sign_up(page: Any, base: str, email: str, artifacts: Path) -> None:
    fill_sign_up(page, base, email)
    _shot(page, artifacts, "signup")
    page.get_by_role("button", name="회원가입").click()
    page.wait_for_url(f"{base}/chat")


def _log_out_and_in(page: Any, base: str, email: str, artifacts: Path) -> None:
    page.get_by_role("button", name="로그아웃").click()
    page.wait_for_url(f"{base}/login")
    page.get_by_label("이메일").fill(email)
    page.get_by_label("비밀번호").fill("틀린 비밀번호입니다")
    page.get_by_role("button", name="로그인").click()
    page.get_by_role("alert").filter(has_text="올바르지 않습니다").wait_for()
    _shot(page, artifacts, "login-error")
    page.get_by_label("비밀번호").fill(PASSWORD)
    page.get_by_role("button", name="로그인").click()
    page.wait_for_url(f"{base}/chat")


def _ime_enter_does_not_send(page: Any) -> None:
    box = page.locator("#composer-input")
    box.fill("한")
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/chat/send" in request.url else None)
    box.evaluate("""el => el.dispatchEvent(new KeyboardEvent('keydown',
        {key: 'Enter', code: 'Enter', keyCode: 229, isComposing: true, bubbles: true, cancelable: true}))""")
    page.wait_for_timeout(600)
    assert sent == [] and page.locator("article.msg").count() == 0
    assert box.input_value() == "한"
    box.press("Shift+Enter")
    assert box.input_value() == "한\n"


def _search_sidebar(page: Any, conversation_id: str) -> None:
    """The sidebar search: by title or by what was said, and never mid-syllable (IME composition)."""
    box, item = page.locator("#conversation-search"), page.locator(f"#conv-{conversation_id}")
    searched: list[str] = []
    page.on("request", lambda request: searched.append(request.url) if "/chat/conversations" in request.url else None)
    box.evaluate("""el => { el.value = 'ㅅ';
        el.dispatchEvent(new InputEvent('input', {data: 'ㅅ', isComposing: true, bubbles: true})); }""")
    page.wait_for_timeout(700)
    assert searched == []  # "ㅅ" is half a syllable: no search yet
    box.evaluate("""el => { el.value = '세종';
        el.dispatchEvent(new CompositionEvent('compositionend', {data: '종', bubbles: true})); }""")
    page.wait_for_timeout(700)
    assert len(searched) == 1 and item.is_visible()
    box.fill("아무도 말하지 않은 말")
    page.locator("#no-results", has_text="찾는 대화가 없습니다").wait_for()
    assert item.count() == 0
    box.fill("자기소개")  # only in the first question, not in the title
    item.wait_for()
    box.fill("")
    item.wait_for()
    page.locator("#no-results").wait_for(state="detached")


def _delete_account(page: Any, base: str, email: str, artifacts: Path) -> None:
    """Settings → 계정 삭제: the password and the confirmation box, then the account is gone."""
    page.goto(f"{base}/settings")
    form = page.locator("form[action='/settings/delete-account']")
    form.locator("input[name=password]").fill("틀린 비밀번호")
    form.get_by_label("되돌릴 수 없다는 것을 이해했습니다").check()
    form.get_by_role("button", name="계정 삭제").click()
    page.locator("p.form-error", has_text="현재 비밀번호가 올바르지 않습니다").wait_for()
    form.scroll_into_view_if_needed()
    _shot(page, artifacts, "delete-account")
    form.locator("input[name=password]").fill(PASSWORD)
    form.get_by_label("되돌릴 수 없다는 것을 이해했습니다").check()
    form.get_by_role("button", name="계정 삭제").click()
    page.wait_for_url(f"{base}/signup")
    login = httpx.post(f"{base}/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert login.status_code == 401


def _ask_and_watch(page: Any, question: str) -> list[str]:
    page.evaluate(STEPS_JS)
    box = page.locator("#composer-input")
    box.fill(question)
    box.press("Enter")
    page.locator("article.msg.user").last.wait_for()
    page.locator("article.msg.assistant .content.markdown").last.wait_for(timeout=60_000)
    return [s for s in page.evaluate("window.__steps") if s]


def _saved(page: Any, base: str, conversation_id: str) -> list[dict[str, Any]]:
    response = page.request.get(f"{base}/api/v1/conversations/{conversation_id}/messages")
    return list(response.json()["items"])


def _start_and_wait_for_text(page: Any, question: str) -> None:
    box = page.locator("#composer-input")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function("() => (document.querySelector('.stream-text')?.textContent || '').length >= 4")


def _reload_mid_stream_keeps_the_answer(page: Any, base: str, conversation_id: str) -> None:
    _start_and_wait_for_text(page, QA[1][0])
    page.reload()  # the page comes back mid-answer and re-attaches to the running generation
    page.locator("article.msg.assistant").nth(1).locator(".msg-body > .content.markdown").wait_for(timeout=60_000)
    saved = _saved(page, base, conversation_id)[-1]
    assert saved["status"] == "complete"
    shown = page.locator("article.msg.assistant").nth(1).locator(".msg-body > .content.markdown").inner_text()
    assert _plain(shown) == _plain(saved["content"]) != ""


def _stop_button_keeps_the_partial_answer(page: Any, base: str, conversation_id: str) -> None:
    _start_and_wait_for_text(page, QA[0][0])
    page.get_by_role("button", name="중지").click()
    page.locator("article.msg.assistant .note", has_text="생성을 중지했습니다").wait_for(timeout=30_000)
    saved = _saved(page, base, conversation_id)[-1]
    assert saved["status"] == "stopped" and 0 < len(saved["content"]) < len(QA[0][1])
    assert page.get_by_role("button", name="중지").is_hidden()


def _feedback_and_copy(page: Any) -> None:
    answer = page.locator("article.msg.assistant").last
    answer.get_by_role("button", name="좋아요").click()
    answer.locator("button[aria-pressed=true]", has_text="").first.wait_for()
    assert answer.get_by_role("button", name="좋아요").get_attribute("aria-pressed") == "true"
    answer.get_by_role("button", name="복사").click()
    page.locator("#toast", has_text="복사했습니다").wait_for()


def _paste_and_drop_images(page: Any) -> None:
    """Paste from the clipboard, then drop a file: each PNG lands in the attachments, then is removed."""
    page.locator("#composer-input").evaluate("""async (box) => {
        const canvas = document.createElement('canvas');
        canvas.width = 20; canvas.height = 20;
        canvas.getContext('2d').fillRect(0, 0, 20, 20);
        const blob = await new Promise((done) => canvas.toBlob(done, 'image/png'));
        const data = new DataTransfer();
        data.items.add(new File([blob], 'clip.png', {type: 'image/png'}));
        box.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
    }""")
    pasted = page.locator(".attachment input[name=image_ids]")
    pasted.wait_for(state="attached")
    page.get_by_role("button", name="빼기").click()
    assert page.locator(".attachment").count() == 0
    page.locator("#chat").evaluate("""async (chat) => {  // drag-and-drop onto the chat
        const canvas = document.createElement('canvas');
        canvas.width = 12; canvas.height = 12;
        const blob = await new Promise((done) => canvas.toBlob(done, 'image/png'));
        const data = new DataTransfer();
        data.items.add(new File([blob], 'drop.png', {type: 'image/png'}));
        chat.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    pasted.wait_for(state="attached")
    page.get_by_role("button", name="빼기").click()
    assert page.locator(".attachment").count() == 0


def test_chat_in_the_browser(browser: Any, app_url: str, slow_stream: StreamKnobs, artifacts_dir: Path,
                             tmp_path: Path) -> None:
    slow_stream.delay_s = 0.12  # the answer must visibly grow
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ko-KR")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    email = f"ui-{uuid.uuid4().hex[:8]}@example.com"

    _sign_up(page, app_url, email, artifacts_dir)
    _log_out_and_in(page, app_url, email, artifacts_dir)
    page.get_by_role("heading", name="무엇이든 물어보세요").wait_for()
    _shot(page, artifacts_dir, "empty")
    _ime_enter_does_not_send(page)
    assert not page.locator("#conversation-search").is_visible()  # nothing to search yet

    steps = _ask_and_watch(page, QA[0][0])
    assert len(set(steps)) >= 3, steps  # grew in at least three visible steps before completing
    assert all(b.startswith(a) for a, b in itertools.pairwise(steps))  # only ever appended to
    page.wait_for_url(re.compile(r"/c/[0-9a-f]{24}$"))
    conversation_id = page.url.rsplit("/", 1)[-1]
    answer = page.locator("article.msg.assistant .content.markdown").last.inner_text()
    saved = page.request.get(f"{app_url}/api/v1/conversations/{conversation_id}/messages").json()["items"]
    assert [m["role"] for m in saved] == ["user", "assistant"] and saved[0]["content"] == QA[0][0]
    assert steps[-1] == saved[1]["content"]  # what streamed in is what was saved
    assert _plain(answer) == _plain(saved[1]["content"]) != ""  # and it is what the page shows, rendered
    assert page.locator("#conversation-id").input_value() == conversation_id  # next message: same conversation
    assert page.locator("#export-link").get_attribute("href") == f"/api/v1/conversations/{conversation_id}/export"
    assert page.locator("#conversation-search").is_visible()  # the first conversation brings the search box
    _shot(page, artifacts_dir, "answer")
    _feedback_and_copy(page)

    page.reload()
    item = page.locator(f"#conv-{conversation_id}")
    item.wait_for()
    assert QA[0][0][:10] in item.inner_text()
    assert page.locator("article.msg.assistant .content.markdown").last.inner_text() == answer

    page.get_by_role("button", name="다시 생성").click()
    page.locator("article.msg.assistant .switcher-count", has_text="2 / 2").wait_for(timeout=60_000)
    page.locator("article.msg.assistant .msg-body > .content.markdown").wait_for(timeout=60_000)  # new one done
    assert page.locator("article.msg.assistant").count() == 1

    _reload_mid_stream_keeps_the_answer(page, app_url, conversation_id)
    _stop_button_keeps_the_partial_answer(page, app_url, conversation_id)

    item = page.locator(f"#conv-{conversation_id}")
    item.get_by_role("button", name=re.compile("이름 바꾸기")).click()
    rename = page.locator(f"#conv-{conversation_id} input[name=title]")
    rename.fill("세종대왕 대화")
    rename.press("Enter")
    page.locator(f"#conv-{conversation_id} .conv-link", has_text="세종대왕 대화").wait_for()
    page.locator("#chat-title", has_text="세종대왕 대화").wait_for()
    _search_sidebar(page, conversation_id)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="대화 내보내기 (Markdown)").click()
    download = download_info.value
    assert download.suggested_filename == "세종대왕 대화.md"
    exported = Path(download.path()).read_text(encoding="utf-8")
    assert exported.startswith("# 세종대왕 대화\n") and QA[0][0] in exported

    _paste_and_drop_images(page)
    image = tmp_path / "사진.png"
    Image.new("RGB", (64, 48), "orange").save(image)
    attach_image(page, image)
    _shot(page, artifacts_dir, "attachment")
    send_with_image(page, "이 그림은 무엇인가요?")
    page.locator("article.msg.assistant.has-error").last.wait_for(timeout=60_000)
    assert "이미지" in page.locator("article.msg.assistant .note.error").last.inner_text()
    assert page.locator("article.msg.user img").last.evaluate("img => img.naturalWidth") == 64
    _shot(page, artifacts_dir, "image-turn")

    page.locator(f"#conv-{conversation_id}").get_by_role("button", name=re.compile("삭제")).click()
    page.wait_for_url(f"{app_url}/chat")
    assert page.locator(f"#conv-{conversation_id}").count() == 0

    page.goto(f"{app_url}/settings")
    page.get_by_label("토큰 이름").fill("내 스크립트")
    page.get_by_role("button", name="토큰 만들기").click()
    token = page.locator("#new-token-value").inner_text()
    assert token.startswith("kovr_")
    _shot(page, artifacts_dir, "settings")
    page.get_by_label(re.compile("정확하게")).check()
    page.locator("form[action='/settings/answer-style'] button[type=submit]").click()
    page.locator("p.notice", has_text="저장했습니다").wait_for()
    assert page.get_by_label(re.compile("정확하게")).is_checked()
    with httpx.Client(base_url=app_url, headers={"Authorization": f"Bearer {token}"}) as api:
        assert api.get("/api/v1/users/me").json()["email"] == email

    page.goto(f"{app_url}/lang/en?next=/settings")
    page.get_by_role("heading", name="Settings", exact=True).wait_for()
    page.goto(f"{app_url}/chat")
    page.get_by_role("heading", name="Ask me anything").wait_for()
    _shot(page, artifacts_dir, "english")
    page.goto(f"{app_url}/lang/ko?next=/chat")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state(),
                                locale="ko-KR", is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    mobile.goto(f"{app_url}/chat")
    assert not mobile.locator("#sidebar").is_visible() or mobile.locator("#sidebar").bounding_box()["x"] < 0
    _shot(mobile, artifacts_dir, "phone")
    mobile.get_by_role("button", name="메뉴").click()
    mobile.wait_for_timeout(400)
    assert mobile.locator("#sidebar").bounding_box()["x"] >= 0
    _shot(mobile, artifacts_dir, "phone-sidebar")
    phone.close()
    _delete_account(page, app_url, email, artifacts_dir)
    context.close()
    assert errors == []
