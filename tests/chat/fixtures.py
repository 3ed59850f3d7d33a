"""Chat fixtures (shared with tests/browser): the tiny Korean model served by model_server,
and a KoVR backend talking to it. Import them with `from tests.chat.fixtures import *`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kovr.settings import Settings
from tests.chat.support import (
    SlowStreams,
    StreamKnobs,
    backend,
    backend_settings,
    model_settings,
    serve_in_thread,
    train_tiny_model,
)
from tests.servers import round_robin_proxy


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-chat-model")
    train_tiny_model(folder)
    return folder


@pytest.fixture(scope="session")
def stream_knobs() -> StreamKnobs:
    return StreamKnobs()


@pytest.fixture(scope="session")
def model_url(
    tiny_chat_model: Path, stream_knobs: StreamKnobs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    from model_server.app import create_model_app

    settings = model_settings(tiny_chat_model, tmp_path_factory.mktemp("model-data"))
    with serve_in_thread(SlowStreams(create_model_app(settings), stream_knobs)) as url:
        yield url


@pytest.fixture()
def slow_stream(stream_knobs: StreamKnobs) -> Iterator[StreamKnobs]:
    """The model server's stream slowed down for one test (restored afterwards)."""
    stream_knobs.delay_s = 0.05
    yield stream_knobs
    stream_knobs.delay_s = 0.0


@pytest.fixture(scope="session")
def app_settings(mongo_uri: str, model_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return backend_settings(mongo_uri, model_url, tmp_path_factory.mktemp("app-data"))


@pytest.fixture(scope="session")
def worker_urls(app_settings: Settings) -> Iterator[list[str]]:
    """Two web workers (two apps, each its own event loop and worker id) on one database."""
    with backend(app_settings) as first, backend(app_settings) as second:
        yield [first, second]


@pytest.fixture(scope="session")
def app_url(worker_urls: list[str]) -> Iterator[str]:
    """The chat stack as a deployment runs it: two workers behind a balancer without sticky
    sessions. Clients that open a connection per request (see support.sign_up) alternate."""
    with round_robin_proxy(worker_urls) as url:
        yield url
