"""The model server down, overloaded, slow, or the question too long: a Korean error event, an
error-status answer, and the user's message kept. Never a hung stream or a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chat.support import (
    QA,
    SlowStreams,
    SseReader,
    StreamKnobs,
    backend,
    backend_settings,
    free_port,
    model_settings,
    serve_in_thread,
    sign_up,
    stream_message,
    untrained_model,
)

HANGUL = ("가", "힣")


def _assert_error_turn(account, conversation: str, code: str, events) -> None:
    assert events[-1].event == "error", events
    error = events[-1].data
    assert error["code"] == code
    assert any(HANGUL[0] <= ch <= HANGUL[1] for ch in error["message"])
    messages = account.messages(conversation)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["status"] == "complete" and messages[0]["content"]
    assert messages[1]["status"] == "error" and messages[1]["error"] == code


def account_free_readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=30)


def test_ready_only_with_the_model(app_url: str) -> None:
    ready = account_free_readyz(app_url)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "model": True}


@pytest.mark.slow
def test_model_server_down(mongo_uri: str, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with backend(backend_settings(mongo_uri, dead, tmp_path)) as url:
        ready = account_free_readyz(url)
        assert ready.status_code == 503 and ready.json()["checks"] == {"database": True, "model": False}
        account = sign_up(url)
        conversation = account.conversation()
        started = time.monotonic()
        events = stream_message(account, conversation, "안녕하세요?")
        assert time.monotonic() - started < 15
        _assert_error_turn(account, conversation, "model_unavailable", events)
        english = account.client.stream(
            "POST", f"/api/v1/conversations/{conversation}/messages",
            json={"content": "hello"}, headers={"Accept-Language": "en"},
        )
        with english as response:
            last = list(SseReader(response))[-1]
        assert last.event == "error" and last.data["message"].startswith("The model server cannot be reached")


@pytest.fixture(scope="module")
def busy_model(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, StreamKnobs]]:
    """A model server that takes one request at a time with no queue, its stream slowed down."""
    from model_server.app import create_model_app

    knobs = StreamKnobs()
    folder = tmp_path_factory.mktemp("busy")
    untrained_model(tiny_chat_model, folder / "model")
    settings = model_settings(folder / "model", folder, max_concurrent_requests=1, max_queue=0)
    with serve_in_thread(SlowStreams(create_model_app(settings), knobs)) as url:
        yield url, knobs


@pytest.mark.slow
def test_model_server_overloaded(busy_model: tuple[str, StreamKnobs], mongo_uri: str, tmp_path: Path) -> None:
    url_model, _ = busy_model
    with backend(backend_settings(mongo_uri, url_model, tmp_path)) as url:
        account = sign_up(url)
        first, second = account.conversation(), account.conversation()
        generating = threading.Event()

        def hold() -> None:  # a long answer that keeps the only slot busy
            path = f"/api/v1/conversations/{first}/messages"
            body = {"content": QA[0][0], "parameters": {"temperature": 0, "max_new_tokens": 400}}
            with account.client.stream("POST", path, json=body) as response:
                for event in SseReader(response):
                    if event.event == "token":
                        generating.set()

        holder = threading.Thread(target=hold)
        holder.start()
        assert generating.wait(timeout=60)
        events = stream_message(account, second, QA[1][0])
        _assert_error_turn(account, second, "model_overloaded", events)
        holder.join(timeout=60)


@pytest.mark.slow
def test_model_server_too_slow(busy_model: tuple[str, StreamKnobs], mongo_uri: str, tmp_path: Path) -> None:
    url_model, knobs = busy_model
    knobs.delay_s = 1.5
    try:
        with backend(backend_settings(mongo_uri, url_model, tmp_path, chat_stall_timeout_s=0.5)) as url:
            account = sign_up(url)
            conversation = account.conversation()
            started = time.monotonic()
            events = stream_message(account, conversation, QA[0][0])
            assert time.monotonic() - started < 10
            _assert_error_turn(account, conversation, "model_timeout", events)
    finally:
        knobs.delay_s = 0.0
        time.sleep(2)  # let the model server notice the dropped request and free its slot


def test_question_too_long_for_the_model(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    events = stream_message(account, conversation, "가나다라 " * 700)  # > max_input_tokens (600)
    assert [e.event for e in events] == ["error"]
    _assert_error_turn(account, conversation, "prompt_too_long", events)


def test_long_history_is_trimmed_to_the_model(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    for _ in range(6):  # each exchange ~150+ tokens: together far over max_input_tokens (600)
        events = stream_message(account, conversation, "세종대왕 이야기를 길게 " * 12,
                                parameters={"max_new_tokens": 40, "temperature": 0})
        assert events[-1].event == "done", events[-1]
    answers = [m for m in account.messages(conversation) if m["role"] == "assistant"]
    assert all(m["status"] == "complete" for m in answers)
    assert all(m["prompt_tokens"] <= 600 for m in answers)
    assert answers[-1]["prompt_tokens"] > 300  # history was used, not dropped wholesale
