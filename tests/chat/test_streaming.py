"""Chat over the API end to end: real model_server with a tiny model, real SSE, real database."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kovr.settings import Settings
from tests.chat.support import (
    QA,
    Account,
    SseEvent,
    SseReader,
    StreamKnobs,
    backend,
    backend_settings,
    joined_tokens,
    sign_up,
    stream_message,
)


def test_answer_streams_and_is_saved(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    events = stream_message(account, conversation, QA[0][0], parameters={"temperature": 0})

    kinds = [e.event for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1 and "error" not in kinds
    tokens = [e for e in events if e.event == "token"]
    assert len(tokens) >= 3
    text = joined_tokens(events)
    assert "\ufffd" not in text and any("가" <= ch <= "힣" for ch in text)
    done = events[-1].data
    assert done["generated_tokens"] >= len(tokens)
    assert done["finish_reason"] in ("eos_token", "length", "stop_sequence")
    assert done["time_to_first_token_ms"] > 0

    messages = account.messages(conversation)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    user, answer = messages
    assert user["content"] == QA[0][0] and user["status"] == "complete"
    assert answer["content"] == text and answer["status"] == "complete"
    assert answer["id"] == done["message_id"]
    for message in messages:
        assert {"id", "role", "content", "status", "image_ids", "created_at"} <= set(message)


def _read_some(account: Account, path: str, json_body: dict[str, Any] | None, count: int,
               headers: dict[str, str] | None = None) -> list[SseEvent]:
    """Read `count` token events, then drop the connection (a closed tab, a lost network)."""
    seen: list[SseEvent] = []
    method = "POST" if json_body is not None else "GET"
    with account.client.stream(method, path, json=json_body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for event in SseReader(response):
            seen.append(event)
            if sum(e.event == "token" for e in seen) >= count:
                break
    return seen


def _wait_final(account: Account, message_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = account.client.get(f"/api/v1/messages/{message_id}").json()
        if message["status"] != "streaming":
            return dict(message)
        time.sleep(0.1)
    raise AssertionError("the answer never finished")


def _message_id(account: Account, conversation: str) -> str:
    return str(account.messages(conversation)[-1]["id"])


def test_reattach_with_last_event_id_gets_the_rest_without_gaps_or_duplicates(
    app_url: str, slow_stream: StreamKnobs
) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    first = _read_some(account, f"/api/v1/conversations/{conversation}/messages",
                       {"content": QA[1][0], "parameters": {"temperature": 0}}, count=3)
    message_id = _message_id(account, conversation)
    last_id = first[-1].id
    assert last_id is not None
    # A second tab at the same time: attaches from the start while the answer is still running.
    with account.client.stream("GET", f"/api/v1/messages/{message_id}/events") as second_tab:
        rest = _read_all(account, f"/api/v1/messages/{message_id}/events", {"Last-Event-ID": last_id})
        second = list(SseReader(second_tab))
    saved = _wait_final(account, message_id)
    assert saved["status"] == "complete"
    assert joined_tokens(first) + joined_tokens(rest) == saved["content"]
    assert joined_tokens(second) == saved["content"]
    assert rest[-1].event == "done" and second[-1].event == "done"
    # After the end, a re-attach replays from the saved message (here: nothing left but `done`).
    after = _read_all(account, f"/api/v1/messages/{message_id}/events", {"Last-Event-ID": rest[-1].id or ""})
    assert [e.event for e in after] == ["done"]


def _read_all(account: Account, path: str, headers: dict[str, str]) -> list[SseEvent]:
    with account.client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["x-accel-buffering"] == "no"
        return list(SseReader(response))


def test_closed_browser_still_gets_the_full_answer_saved(app_url: str, slow_stream: StreamKnobs) -> None:
    account = sign_up(app_url)
    reference = account.conversation()
    full = joined_tokens(stream_message(account, reference, QA[0][0], parameters={"temperature": 0}))

    conversation = account.conversation()
    seen = _read_some(account, f"/api/v1/conversations/{conversation}/messages",
                      {"content": QA[0][0], "parameters": {"temperature": 0}}, count=2)
    message_id = _message_id(account, conversation)
    partial = account.client.get(f"/api/v1/messages/{message_id}").json()
    assert partial["status"] == "streaming"  # saved while streaming, not only at the end
    saved = _wait_final(account, message_id)
    assert saved["status"] == "complete"
    assert saved["content"] == full and len(full) > len(joined_tokens(seen))


def test_stop_keeps_what_was_generated(app_url: str, slow_stream: StreamKnobs) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    collected: list[SseEvent] = []
    with account.client.stream("POST", f"/api/v1/conversations/{conversation}/messages",
                               json={"content": QA[1][0], "parameters": {"temperature": 0}}) as response:
        reader = iter(SseReader(response))
        while sum(e.event == "token" for e in collected) < 2:
            collected.append(next(reader))
        message_id = _message_id(account, conversation)
        stopped = account.client.post(f"/api/v1/messages/{message_id}/stop")
        assert stopped.status_code == 200, stopped.text
        collected.extend(reader)
    assert collected[-1].event == "done" and collected[-1].data["finish_reason"] == "stopped"
    body = stopped.json()
    assert body["status"] == "stopped" and body["content"] == joined_tokens(collected)
    assert 0 < len(body["content"]) < len(QA[1][1])
    again = account.client.post(f"/api/v1/messages/{message_id}/stop")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_streaming"


def test_regenerate_adds_a_sibling_answer_and_keeps_the_previous_one(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    first = joined_tokens(stream_message(account, conversation, QA[0][0], parameters={"temperature": 0}))
    message_id = _message_id(account, conversation)
    with account.client.stream("POST", f"/api/v1/messages/{message_id}/regenerate",
                               json={"parameters": {"temperature": 1.0, "seed": 7}}) as response:
        assert response.status_code == 200
        events = list(SseReader(response))
    assert events[-1].event == "done"
    messages = account.messages(conversation)
    assert len(messages) == 2  # the shown branch: the question and the new answer
    answer = messages[1]
    assert answer["id"] != message_id and answer["content"] == joined_tokens(events)
    assert events[-1].data["message_id"] == answer["id"]
    assert answer["parent_id"] == messages[0]["id"]
    assert answer["siblings"] == {"index": 2, "count": 2, "ids": [message_id, answer["id"]]}
    assert account.client.get(f"/api/v1/messages/{message_id}").json()["content"] == first
    # A user message cannot be regenerated.
    refused = account.client.post(f"/api/v1/messages/{messages[0]['id']}/regenerate")
    assert refused.status_code == 404


def test_feedback_is_stored_and_validated(app_url: str) -> None:
    account = sign_up(app_url)
    other = sign_up(app_url)
    conversation = account.conversation()
    stream_message(account, conversation, QA[1][0], parameters={"max_new_tokens": 5})
    message_id = _message_id(account, conversation)
    good = account.client.post(f"/api/v1/messages/{message_id}/feedback", json={"rating": 1, "comment": "좋아요"})
    assert good.status_code == 200 and good.json()["feedback"] == {"rating": 1, "comment": "좋아요"}
    assert account.client.post(f"/api/v1/messages/{message_id}/feedback", json={"rating": 3}).status_code == 422
    assert other.client.post(f"/api/v1/messages/{message_id}/feedback", json={"rating": -1}).status_code == 404
    assert other.client.get(f"/api/v1/messages/{message_id}/events").status_code == 404
    assert other.client.post(f"/api/v1/messages/{message_id}/stop").status_code == 404


def test_bad_input_gets_clear_errors(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    path = f"/api/v1/conversations/{conversation}/messages"
    empty = account.client.post(path, json={"content": "   "})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_message"
    too_many = account.client.post(path, json={"content": "질문", "parameters": {"max_new_tokens": 100000}})
    assert too_many.status_code == 422
    over = account.client.post(path, json={"content": "질문", "parameters": {"max_new_tokens": 401}})
    assert over.status_code == 422 and over.json()["error"]["code"] == "invalid_parameters"
    unknown = account.client.post("/api/v1/conversations/0123456789abcdef01234567/messages", json={"content": "질문"})
    assert unknown.status_code == 404
    assert account.messages(conversation) == []  # nothing stored for refused requests


def test_json_answer_without_streaming(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    response = account.client.post(f"/api/v1/conversations/{conversation}/messages", params={"stream": "false"},
                                   json={"content": QA[0][0], "parameters": {"temperature": 0}})
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "assistant" and body["status"] == "complete" and body["content"]
    assert body["content"] == account.messages(conversation)[1]["content"]


def test_one_answer_at_a_time_per_conversation(app_url: str, slow_stream: StreamKnobs) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    with account.client.stream("POST", f"/api/v1/conversations/{conversation}/messages",
                               json={"content": QA[0][0]}) as response:
        assert response.status_code == 200
        busy = account.client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "또 질문"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "generation_in_progress"
        events = list(SseReader(response))
    assert events[-1].event == "done"
    assert len(account.messages(conversation)) == 2  # the refused question was not stored


def test_messages_per_minute_are_limited(mongo_uri: str, model_url: str, tmp_path: Path) -> None:
    with backend(backend_settings(mongo_uri, model_url, tmp_path, chat_rate_limit=2)) as url:
        account = sign_up(url)
        conversation = account.conversation()
        for _ in range(2):
            assert stream_message(account, conversation, "짧게", parameters={"max_new_tokens": 2})[-1].event == "done"
        before = account.client.get(f"/api/v1/conversations/{conversation}").json()
        limited = account.client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "세 번째"})
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "chat_rate_limited"
        # What the claim showed (branch, count, list order) is taken back with the refused message.
        assert account.client.get(f"/api/v1/conversations/{conversation}").json() == before
        assert before["message_count"] == 4 and len(account.messages(conversation)) == 4


def test_answer_cut_by_a_restart_is_settled_on_reattach(app_url: str, app_settings: Settings, mongo_uri: str) -> None:
    """A message left "streaming" by an older release (no worker, no lease): re-attaching settles it."""
    import datetime as dt

    from bson import ObjectId
    from pymongo import MongoClient

    account = sign_up(app_url)
    conversation = account.conversation()
    stream_message(account, conversation, QA[0][0], parameters={"max_new_tokens": 3})
    db_name = app_settings.mongodb_db
    with MongoClient[dict[str, Any]](mongo_uri) as mongo:
        now = dt.datetime.now(dt.UTC)
        orphan = mongo[db_name].messages.insert_one({
            "conversation_id": ObjectId(conversation), "user_id": ObjectId(account.user_id), "role": "assistant",
            "content": "반쯤 쓴", "status": "streaming", "image_ids": [], "created_at": now, "updated_at": now,
        }).inserted_id
    with account.client.stream("GET", f"/api/v1/messages/{orphan}/events") as response:
        events = list(SseReader(response))
    assert [e.event for e in events] == ["token", "error"]
    assert events[0].data["text"] == "반쯤 쓴" and events[1].data["code"] == "interrupted"
    saved = account.client.get(f"/api/v1/messages/{orphan}").json()
    assert saved["status"] == "interrupted" and saved["content"] == "반쯤 쓴"


def test_stream_headers_and_keepalive_comments(app_url: str, slow_stream: StreamKnobs) -> None:
    slow_stream.delay_s = 0.1  # a ~3 s answer with keep-alive every second (chat_keepalive_s=1)
    account = sign_up(app_url)
    conversation = account.conversation()
    with account.client.stream("POST", f"/api/v1/conversations/{conversation}/messages",
                               json={"content": QA[0][0], "parameters": {"temperature": 0}}) as response:
        assert response.headers["x-accel-buffering"] == "no"
        assert "no-cache" in response.headers["cache-control"]
        reader = SseReader(response)
        events = list(reader)
    assert events[-1].event == "done" and reader.comments >= 1


def test_decomposed_hangul_is_stored_composed(app_url: str) -> None:
    import unicodedata

    account = sign_up(app_url)
    conversation = account.conversation()
    decomposed = unicodedata.normalize("NFD", "세종대왕")  # what macOS input methods may send
    assert decomposed != "세종대왕"
    stream_message(account, conversation, decomposed, parameters={"max_new_tokens": 2})
    question = account.messages(conversation)[0]
    assert question["content"] == "세종대왕"
    title = account.client.get(f"/api/v1/conversations/{conversation}").json()["title"]
    assert title == "세종대왕"  # the first message names the conversation


def test_new_conversation_with_a_first_message_streams_its_answer(app_url: str) -> None:
    account = sign_up(app_url)
    body = {"message": {"content": QA[0][0], "parameters": {"temperature": 0}}}
    with account.client.stream("POST", "/api/v1/conversations", json=body) as response:
        assert response.status_code == 200, response.read()
        conversation = response.headers["X-Conversation-Id"]
        events = list(SseReader(response))

    assert events[-1].event == "done"
    messages = account.messages(conversation)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == joined_tokens(events)
    listed = account.client.get("/api/v1/conversations").json()["items"]
    assert [c["id"] for c in listed] == [conversation]
