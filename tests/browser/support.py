"""Debian's Chromium through Playwright, and the page steps more than one browser test takes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
PASSWORD = "한글비번-password-9"


@contextmanager
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's Chromium is missing: run scripts/bootstrap.sh test (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def fill_sign_up(page: Any, base: str, email: str) -> None:
    """The sign-up form, filled in and not yet sent."""
    page.goto(f"{base}/signup")
    page.get_by_label("이름").fill("김하늘")
    page.get_by_label("이메일").fill(email)
    page.get_by_label("비밀번호").fill(PASSWORD)


def attach_image(page: Any, image: Path) -> None:
    """An image through the file picker, uploaded and waiting in the composer."""
    page.locator("#file-input").set_input_files(str(image))
    page.locator(".attachment input[name=image_ids]").wait_for(state="attached")


def send_with_image(page: Any, text: str) -> None:
    """Send the message with the attached image (Enter); returns once the image shows in the thread."""
    page.locator("#composer-input").fill(text)
    page.locator("#composer-input").press("Enter")
    page.locator("article.msg.user img").last.wait_for()
