"""Chat fixtures: see tests/chat/fixtures.py."""

from tests.chat.fixtures import (  # noqa: F401
    app_settings,
    app_url,
    model_url,
    slow_stream,
    stream_knobs,
    tiny_chat_model,
    worker_urls,
)
