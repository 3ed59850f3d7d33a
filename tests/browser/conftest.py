"""Browser fixtures: the chat stack (tests/chat/fixtures.py) and Debian's Chromium via Playwright."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.support import chromium
from tests.chat.fixtures import (  # noqa: F401
    app_settings,
    app_url,
    model_url,
    slow_stream,
    stream_knobs,
    tiny_chat_model,
    worker_urls,
)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched
