"""The conversation tree over the API: edit makes a branch (the old one kept), switch, the prompt
is the path root → parent, regenerate makes a sibling, continue appends to a length-ended answer,
delete removes a subtree (409 while it streams), others' ids are not found, export follows the
shown branch. The model server sits behind a recorder, so the tests read the prompts it got."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chat.support import (
    QA,
    Account,
    SseEvent,
    SseReader,
    StreamKnobs,
    backend,
    backend_settings,
    joined_tokens,
    model_settings,
    serve_in_thread,
    sign_up,
    stream_message,
)

GREEDY = {"temperature": 0}


class PromptRecorder:
    """ASGI wrapper in front of the model server: keeps the prompt (`inputs`) of every generation."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.prompts: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in ("/", "/generate", "/generate_stream"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.prompts.append(json.loads(body)["inputs"])
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)


@pytest.fixture(scope="module")
def recorder(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromptRecorder, str]]:
    from model_server.app import create_model_app

    recorder = PromptRecorder(create_model_app(model_settings(tiny_chat_model, tmp_path_factory.mktemp("rec-model"))))
    with serve_in_thread(recorder) as url:
        yield recorder, url


@pytest.fixture(scope="module")
def tree_url(recorder: tuple[PromptRecorder, str], mongo_uri: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backend(backend_settings(mongo_uri, recorder[1], tmp_path_factory.mktemp("tree-app"))) as url:
        yield url


def _stream(account: Account, path: str, body: dict[str, Any] | None = None) -> tuple[list[SseEvent], Any]:
    with account.client.stream("POST", path, json=body or {}) as response:
        assert response.status_code == 200, response.read()
        return list(SseReader(response)), response.headers


def _branch(account: Account, conversation: str) -> list[dict[str, Any]]:
    return account.messages(conversation)


def _contents(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages]


def test_edit_makes_a_branch_and_the_prompt_is_the_path(tree_url: str,
                                                        recorder: tuple[PromptRecorder, str]) -> None:
    prompts = recorder[0].prompts
    account = sign_up(tree_url)
    conversation = account.conversation()
    stream_message(account, conversation, QA[0][0], parameters=GREEDY)
    stream_message(account, conversation, QA[1][0], parameters=GREEDY)
    q0, a0, q1, a1 = _branch(account, conversation)
    assert [m["parent_id"] for m in (q0, a0, q1, a1)] == [None, q0["id"], a0["id"], q1["id"]]
    assert all(m["siblings"] == {"index": 1, "count": 1, "ids": [m["id"]]} for m in (q0, a0, q1, a1))

    events, headers = _stream(account, f"/api/v1/messages/{q1['id']}/edit",
                              {"content": "고친 질문입니다", "parameters": GREEDY})
    assert events[-1].event == "done"
    # The edited question's prompt: the path to its parent (Q0, A0) and the new text, not the old Q1.
    assert QA[0][0] in prompts[-1] and a0["content"] in prompts[-1] and "고친 질문입니다" in prompts[-1]
    assert QA[1][0] not in prompts[-1]
    shown = _branch(account, conversation)
    assert _contents(shown)[:3] == [QA[0][0], a0["content"], "고친 질문입니다"]
    edited = shown[2]
    assert edited["id"] == headers["X-User-Message-Id"] and edited["parent_id"] == a0["id"]
    assert edited["siblings"] == {"index": 2, "count": 2, "ids": [q1["id"], edited["id"]]}
    assert shown[3]["id"] == events[-1].data["message_id"]
    conv = account.client.get(f"/api/v1/conversations/{conversation}").json()
    assert conv["current_leaf_id"] == shown[3]["id"] and conv["message_count"] == 6

    # Back to the first version: its whole continuation is shown again, and remembered.
    switched = account.client.post(f"/api/v1/conversations/{conversation}/branch", json={"message_id": q1["id"]})
    assert switched.status_code == 200 and switched.json()["current_leaf_id"] == a1["id"]
    assert [m["id"] for m in _branch(account, conversation)] == [q0["id"], a0["id"], q1["id"], a1["id"]]
    # A new message continues the shown branch: its history is Q0 A0 Q1 A1, not the edit.
    stream_message(account, conversation, "그다음 질문", parameters=GREEDY)
    assert QA[1][0] in prompts[-1] and a1["content"] in prompts[-1] and "고친 질문입니다" not in prompts[-1]
    assert _branch(account, conversation)[4]["parent_id"] == a1["id"]

    # Switching to a message above both versions follows the newest child at each step: the edit.
    account.client.post(f"/api/v1/conversations/{conversation}/branch", json={"message_id": q0["id"]})
    assert [m["id"] for m in _branch(account, conversation)] == [q0["id"], a0["id"], edited["id"], shown[3]["id"]]


def test_regenerate_a_middle_answer_and_export_follow_the_shown_branch(
    tree_url: str, recorder: tuple[PromptRecorder, str]
) -> None:
    prompts = recorder[0].prompts
    account = sign_up(tree_url)
    conversation = account.conversation()
    stream_message(account, conversation, QA[0][0], parameters=GREEDY)
    stream_message(account, conversation, QA[1][0], parameters=GREEDY)
    q0, a0, _, _ = _branch(account, conversation)
    events, _ = _stream(account, f"/api/v1/messages/{a0['id']}/regenerate",
                        {"parameters": {"temperature": 1.0, "seed": 3}})
    assert events[-1].event == "done"
    # The question had no history before it: the prompt is the first question alone.
    assert QA[0][0] in prompts[-1] and QA[1][0] not in prompts[-1]
    shown = _branch(account, conversation)
    assert [m["id"] for m in shown][:1] == [q0["id"]] and len(shown) == 2
    assert shown[1]["siblings"]["ids"] == [a0["id"], events[-1].data["message_id"]]
    exported = account.client.get(f"/api/v1/conversations/{conversation}/export").text
    assert QA[0][0] in exported and QA[1][0] not in exported and shown[1]["content"].strip()[:10] in exported
    # Back on the first answer, the export has the rest of that branch again.
    account.client.post(f"/api/v1/conversations/{conversation}/branch", json={"message_id": a0["id"]})
    assert QA[1][0] in account.client.get(f"/api/v1/conversations/{conversation}/export").text


def test_continue_appends_to_a_length_ended_answer(tree_url: str, recorder: tuple[PromptRecorder, str]) -> None:
    prompts = recorder[0].prompts
    account = sign_up(tree_url)
    conversation = account.conversation()
    first = stream_message(account, conversation, QA[0][0], parameters={"temperature": 0, "max_new_tokens": 6})
    assert first[-1].data["finish_reason"] == "length"
    answer = _branch(account, conversation)[-1]
    saved = answer["content"]
    assert saved and answer["finish_reason"] == "length"

    events, _ = _stream(account, f"/api/v1/messages/{answer['id']}/continue",
                        {"parameters": {"max_new_tokens": 200}})
    assert events[-1].event == "done" and events[-1].data["message_id"] == answer["id"]
    assert prompts[-1].endswith(saved)  # the model went on from the saved text
    added = joined_tokens(events)
    assert added
    # Event ids go on from the saved text: "<attempt>-<characters>", increasing, past the saved length.
    offsets = [int(e.id.split("-")[1]) for e in events if e.id]
    assert offsets == sorted(offsets) and offsets[0] > len(saved) and offsets[-1] == len(saved + added)
    after = account.client.get(f"/api/v1/messages/{answer['id']}").json()
    assert after["content"] == saved + added
    assert after["generated_tokens"] > first[-1].data["generated_tokens"]
    assert len(_branch(account, conversation)) == 2  # the same message, no new one
    # A client re-attaching with the id it had before the continue gets exactly the new text.
    with account.client.stream("GET", f"/api/v1/messages/{answer['id']}/events",
                               headers={"Last-Event-ID": first[-1].id or ""}) as response:
        assert joined_tokens(list(SseReader(response))) == added
    # Only a length-ended answer that ends its branch continues; a user message is not an answer.
    stream_message(account, conversation, QA[1][0], parameters={"temperature": 0, "max_new_tokens": 6})
    refused = account.client.post(f"/api/v1/messages/{answer['id']}/continue")  # answered since
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_continuable"
    assert "길이 제한" in refused.json()["error"]["message"]
    user_message = _branch(account, conversation)[0]
    assert account.client.post(f"/api/v1/messages/{user_message['id']}/continue").status_code == 404


def test_delete_removes_the_subtree_and_moves_the_shown_branch(tree_url: str) -> None:
    account = sign_up(tree_url)
    conversation = account.conversation()
    stream_message(account, conversation, QA[0][0], parameters=GREEDY)
    stream_message(account, conversation, QA[1][0], parameters=GREEDY)
    q0, a0, q1, a1 = _branch(account, conversation)
    _stream(account, f"/api/v1/messages/{q1['id']}/edit", {"content": "다른 질문", "parameters": GREEDY})
    edited = _branch(account, conversation)[2]
    # Deleting the shown edit: the newest remaining sibling's branch is shown.
    response = account.client.delete(f"/api/v1/messages/{edited['id']}")
    assert response.status_code == 200
    assert response.json()["current_leaf_id"] == a1["id"] and response.json()["message_count"] == 4
    assert [m["id"] for m in _branch(account, conversation)] == [q0["id"], a0["id"], q1["id"], a1["id"]]
    assert account.client.get(f"/api/v1/messages/{edited['id']}").status_code == 404
    # Deleting the last sibling: the parent ends the branch.
    assert account.client.delete(f"/api/v1/messages/{q1['id']}").json()["current_leaf_id"] == a0["id"]
    assert account.client.get(f"/api/v1/messages/{a1['id']}").status_code == 404
    assert [m["id"] for m in _branch(account, conversation)] == [q0["id"], a0["id"]]
    # The whole tree: nothing is left.
    assert account.client.delete(f"/api/v1/messages/{q0['id']}").json()["current_leaf_id"] is None
    assert _branch(account, conversation) == []


def test_delete_is_refused_while_an_answer_in_the_subtree_streams(app_url: str, slow_stream: StreamKnobs) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    with account.client.stream("POST", f"/api/v1/conversations/{conversation}/messages",
                               json={"content": QA[1][0], "parameters": GREEDY}) as response:
        reader = iter(SseReader(response))
        next(reader)  # the answer is under way
        question, answer = _branch(account, conversation)
        refused = account.client.delete(f"/api/v1/messages/{question['id']}")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "message_streaming"
        assert "삭제" in refused.json()["error"]["message"]
        english = account.client.delete(f"/api/v1/messages/{answer['id']}", headers={"Accept-Language": "en"})
        assert english.status_code == 409 and "deleting" in english.json()["error"]["message"]
        account.client.post(f"/api/v1/messages/{answer['id']}/stop")
    assert account.client.delete(f"/api/v1/messages/{question['id']}").status_code == 200
    assert _branch(account, conversation) == []


def test_other_users_ids_are_not_found(tree_url: str) -> None:
    owner, other = sign_up(tree_url), sign_up(tree_url)
    conversation = owner.conversation()
    stream_message(owner, conversation, QA[0][0], parameters=GREEDY)
    question, answer = _branch(owner, conversation)
    mine = other.conversation()
    calls = [
        ("POST", f"/api/v1/messages/{question['id']}/edit", {"content": "가로채기"}),
        ("POST", f"/api/v1/messages/{answer['id']}/regenerate", {}),
        ("POST", f"/api/v1/messages/{answer['id']}/continue", {}),
        ("DELETE", f"/api/v1/messages/{answer['id']}", None),
        ("GET", f"/api/v1/messages/{answer['id']}", None),
        ("POST", f"/api/v1/conversations/{conversation}/branch", {"message_id": answer["id"]}),
        ("POST", f"/api/v1/conversations/{mine}/branch", {"message_id": answer["id"]}),
    ]
    for method, path, body in calls:
        response = other.client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] in ("message_not_found", "conversation_not_found")
    # A message of another conversation of the same user is not part of this one.
    second = owner.conversation()
    wrong = owner.client.post(f"/api/v1/conversations/{second}/branch", json={"message_id": answer["id"]})
    assert wrong.status_code == 404
    assert _contents(_branch(owner, conversation)) == [question["content"], answer["content"]]


def test_tree_routes_are_documented(tree_url: str) -> None:
    paths = json.loads(sign_up(tree_url).client.get("/openapi.json").text)["paths"]
    for path, method in [("/api/v1/messages/{message_id}/edit", "post"),
                         ("/api/v1/messages/{message_id}/continue", "post"),
                         ("/api/v1/messages/{message_id}", "delete"),
                         ("/api/v1/conversations/{conversation_id}/branch", "post")]:
        operation = paths[path][method]
        assert {"401", "404"} <= set(operation["responses"]), path
        assert operation.get("description") or operation.get("summary")
    schemas = json.loads(sign_up(tree_url).client.get("/openapi.json").text)["components"]["schemas"]
    assert {"parent_id", "siblings"} <= set(schemas["MessagePublic"]["properties"])
    assert "current_leaf_id" in schemas["ConversationPublic"]["properties"]


def test_reattach_after_a_continue_on_either_worker(app_url: str) -> None:
    """Two workers: the one that ran the first part still holds it in memory for a moment; a
    listener there must get the continued text, not the finished first part."""
    account = sign_up(app_url)
    conversation = account.conversation()
    first = stream_message(account, conversation, QA[0][0], parameters={"temperature": 0, "max_new_tokens": 6})
    answer_id = first[-1].data["message_id"]
    events, _ = _stream(account, f"/api/v1/messages/{answer_id}/continue", {"parameters": {"max_new_tokens": 40}})
    added = joined_tokens(events)
    for _ in range(2):  # a connection per request: the balancer alternates the workers
        with account.client.stream("GET", f"/api/v1/messages/{answer_id}/events",
                                   headers={"Last-Event-ID": first[-1].id or ""}) as response:
            again = list(SseReader(response))
        assert joined_tokens(again) == added and again[-1].event == "done"
