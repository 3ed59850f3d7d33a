"""The chat core: both front doors behave the same for each use case; two workers share answers
through the database (stream on one, re-attach and stop on the other); an answer whose worker died
is settled as interrupted with its text, and regenerate works on it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import MongoClient

from kovr.settings import Settings
from tests.chat.support import QA, Account, SseReader, StreamKnobs, joined_tokens, sign_up


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture()
def db(app_settings: Settings) -> Iterator[Any]:
    assert app_settings.mongodb_uri is not None
    client: MongoClient[dict[str, Any]] = MongoClient(app_settings.mongodb_uri.get_secret_value(), tz_aware=True)
    yield client[app_settings.mongodb_db]
    client.close()


class PageDoor:
    """A browser session on the pages (cookie + CSRF), htmx calls like the page makes them."""

    def __init__(self, base_url: str, account: Account) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60)
        assert self.client.get("/login").status_code == 200
        self.csrf = self.client.cookies["kovr_csrf"]
        signed = self.client.post("/login", data={"csrf_token": self.csrf, "email": account.email,
                                                  "password": account.password})
        assert signed.status_code == 303, signed.text
        self.csrf = self.client.cookies["kovr_csrf"]  # a sign-in has its own CSRF token

    def htmx(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


def _start_streaming(account: Account, conversation: str, content: str) -> str:
    """Start an answer, read its first token, leave (the answer goes on); returns its message id."""
    with account.client.stream("POST", f"/api/v1/conversations/{conversation}/messages",
                               json={"content": content, "parameters": {"temperature": 0}}) as response:
        assert response.status_code == 200, response.read()
        for event in SseReader(response):
            if event.event == "token":
                break
    return str(account.messages(conversation)[-1]["id"])


def _wait_status(account: Account, message_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = account.client.get(f"/api/v1/messages/{message_id}").json()
        if message["status"] != "streaming":
            return dict(message)
        time.sleep(0.05)
    raise AssertionError(f"message {message_id} still streaming after {timeout_s}s")


# -- both doors ---------------------------------------------------------------------------------
def _delete_api(account: Account, page: PageDoor, conversation: str) -> int:
    return account.client.delete(f"/api/v1/conversations/{conversation}").status_code


def _delete_page(account: Account, page: PageDoor, conversation: str) -> int:
    return page.htmx("DELETE", f"/c/{conversation}").status_code


DOORS: dict[str, Callable[[Account, PageDoor, str], int]] = {"api": _delete_api, "page": _delete_page}


@pytest.mark.parametrize("door", list(DOORS))
def test_deleting_a_conversation_stops_its_running_answer(
    door: str, app_url: str, slow_stream: StreamKnobs, db: Any
) -> None:
    account = sign_up(app_url)
    page = PageDoor(app_url, account)
    conversation = account.conversation()
    message_id = _start_streaming(account, conversation, QA[1][0])
    assert DOORS[door](account, page, conversation) in (200, 204)
    time.sleep(1.0)  # past a few save intervals: a generation still running would write again
    assert db.messages.count_documents({"conversation_id": ObjectId(conversation)}) == 0
    assert db.messages.find_one({"_id": ObjectId(message_id)}) is None
    assert db.conversations.find_one({"_id": ObjectId(conversation)}) is None


@pytest.mark.parametrize("door", list(DOORS))
def test_someone_elses_conversation_is_not_found_whether_generating_or_not(
    door: str, app_url: str, slow_stream: StreamKnobs
) -> None:
    owner, intruder = sign_up(app_url), sign_up(app_url)
    intruder_page = PageDoor(app_url, intruder)
    idle = owner.conversation()
    busy = owner.conversation()
    message_id = _start_streaming(owner, busy, QA[1][0])
    # The same answer for an idle and a generating conversation: no oracle, no 500.
    assert DOORS[door](intruder, intruder_page, idle) == 404
    assert DOORS[door](intruder, intruder_page, busy) == 404
    assert DOORS[door](intruder, intruder_page, "not-an-id") == 404
    assert _wait_status(owner, message_id)["status"] == "complete"  # untouched


def _first_message_api(account: Account, page: PageDoor) -> int:
    return account.client.post("/api/v1/conversations", json={"message": {"content": "안녕하세요"}}).status_code


def _first_message_page(account: Account, page: PageDoor) -> int:
    return page.htmx("POST", "/chat/send", data={"content": "안녕하세요", "conversation_id": ""}).status_code


@pytest.mark.parametrize("send_first", [_first_message_api, _first_message_page], ids=["api", "page"])
def test_a_refused_first_message_leaves_no_empty_conversation(
    send_first: Callable[[Account, PageDoor], int], worker_urls: list[str], app_settings: Settings, db: Any,
) -> None:
    account = sign_up(worker_urls[0])
    page = PageDoor(worker_urls[0], account)
    # Fill the user's message rate straight in the database: the next message is refused (429).
    now = dt.datetime.now(dt.UTC)
    db.messages.insert_many([{"user_id": ObjectId(account.user_id), "conversation_id": ObjectId(), "role": "user",
                              "content": "x", "status": "complete", "image_ids": [], "created_at": now,
                              "updated_at": now} for _ in range(app_settings.chat_rate_limit)])
    assert send_first(account, page) == 429
    assert db.conversations.count_documents({"user_id": ObjectId(account.user_id)}) == 0


@pytest.mark.parametrize("door", ["api", "page"])
def test_errors_speak_the_language_the_user_chose_by_cookie(door: str, app_url: str) -> None:
    account = sign_up(app_url)
    page = PageDoor(app_url, account)
    page.client.get("/lang/en")
    account.client.cookies.set("kovr_lang", "en")
    if door == "api":
        response = account.client.post(f"/api/v1/conversations/{ObjectId()}/messages", json={"content": "hi"})
        text = response.json()["error"]["message"]
    else:
        response = page.htmx("POST", "/chat/send", data={"content": "hi", "conversation_id": str(ObjectId())})
        text = response.text
    assert response.status_code == 404 and text == "Conversation not found."


def test_each_use_case_answers_the_same_through_both_doors(app_url: str, slow_stream: StreamKnobs) -> None:
    account = sign_up(app_url)
    page = PageDoor(app_url, account)
    conversation = account.conversation()
    message_id = _start_streaming(account, conversation, QA[0][0])
    # A second message while one is generating: refused the same way (409) through both doors.
    api_busy = account.client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "또"})
    page_busy = page.htmx("POST", "/chat/send", data={"content": "또", "conversation_id": conversation})
    assert api_busy.status_code == page_busy.status_code == 409
    assert page_busy.text == api_busy.json()["error"]["message"]
    # Regenerating a running answer: 409 both ways.
    assert account.client.post(f"/api/v1/messages/{message_id}/regenerate").status_code == 409
    assert page.htmx("POST", f"/m/{message_id}/regenerate").status_code == 409
    _wait_status(account, message_id)
    # Feedback with a malformed id: 404 both ways.
    assert account.client.post("/api/v1/messages/zzz/feedback", json={"rating": 1}).status_code == 404
    assert page.htmx("POST", "/m/zzz/feedback", data={"rating": "1"}).status_code == 404


# -- two workers --------------------------------------------------------------------------------
def test_stream_on_one_worker_reattach_and_stop_on_the_other(worker_urls: list[str], slow_stream: StreamKnobs) -> None:
    slow_stream.delay_s = 0.15  # long enough to stop it half way
    first, second = worker_urls
    on_first = sign_up(first)
    on_second = Account(httpx.Client(base_url=second, timeout=60, headers=dict(on_first.client.headers)),
                        on_first.user_id, on_first.email, on_first.password)
    conversation = on_first.conversation()
    seen: list[Any] = []
    with on_first.client.stream("POST", f"/api/v1/conversations/{conversation}/messages",
                                json={"content": QA[1][0], "parameters": {"temperature": 0}}) as response:
        for event in SseReader(response):
            seen.append(event)
            if sum(e.event == "token" for e in seen) >= 2:
                break
    message_id = str(on_first.messages(conversation)[-1]["id"])
    last_id = seen[-1].id
    # Re-attach on the other worker: it follows the answer through the database.
    rest: list[Any] = []
    with on_second.client.stream("GET", f"/api/v1/messages/{message_id}/events",
                                 headers={"Last-Event-ID": last_id}) as response:
        assert response.status_code == 200
        reader = iter(SseReader(response))
        for event in reader:
            rest.append(event)
            if sum(e.event == "token" for e in rest) >= 1:
                break
        # Stop on the other worker too: the owner obeys, the saved text is what was generated.
        stopped = on_second.client.post(f"/api/v1/messages/{message_id}/stop")
        assert stopped.status_code == 200, stopped.text
        tail = list(reader)
    assert stopped.json()["status"] == "stopped"
    saved = on_first.client.get(f"/api/v1/messages/{message_id}").json()
    assert saved["status"] == "stopped" and saved["finish_reason"] == "stopped"
    everything = joined_tokens(seen) + joined_tokens(rest) + joined_tokens(tail)
    assert everything == saved["content"] and saved["content"]
    assert len(saved["content"]) < len(QA[1][1])  # stopped before the end
    assert tail[-1].event == "done" and tail[-1].data["finish_reason"] == "stopped"
    # Regenerate through the other worker; its answer streams there.
    with on_second.client.stream("POST", f"/api/v1/messages/{message_id}/regenerate",
                                 json={"parameters": {"temperature": 0}}) as response:
        again = list(SseReader(response))
    assert again[-1].event == "done"


# -- a worker that died -------------------------------------------------------------------------
def test_an_answer_whose_worker_died_is_settled_with_its_text_and_can_be_regenerated(
    app_url: str, db: Any, app_settings: Settings
) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    user_id, conversation_id = ObjectId(account.user_id), ObjectId(conversation)
    now = dt.datetime.now(dt.UTC)
    question = {"_id": ObjectId(), "conversation_id": conversation_id, "user_id": user_id, "role": "user",
                "content": QA[0][0], "status": "complete", "image_ids": [], "created_at": now, "updated_at": now}
    orphan_id = ObjectId()
    orphan = {"_id": orphan_id, "conversation_id": conversation_id, "user_id": user_id, "role": "assistant",
              "content": "안녕하세요! 저는", "status": "streaming", "image_ids": [],
              "created_at": now + dt.timedelta(milliseconds=1), "updated_at": now, "attempt": 0,
              "parent_id": question["_id"], "worker_id": "gone:1:dead", "lease_until": now + dt.timedelta(seconds=1),
              "stop_requested": False}
    db.messages.insert_many([question, orphan])
    db.conversations.update_one({"_id": conversation_id},
                                {"$set": {"active_message_id": orphan_id, "current_leaf_id": orphan_id}})
    # While the lease runs, it is someone's answer: a new message must wait.
    busy = account.client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "또"})
    assert busy.status_code == 409
    # A listener that arrives gets the saved text, then the end once the lease runs out.
    with account.client.stream("GET", f"/api/v1/messages/{orphan_id}/events") as response:
        events = list(SseReader(response))
    assert joined_tokens(events) == "안녕하세요! 저는"
    assert events[-1].event == "error" and events[-1].data["code"] == "interrupted"
    settled = account.client.get(f"/api/v1/messages/{orphan_id}").json()
    assert settled["status"] == "interrupted" and settled["content"] == "안녕하세요! 저는"
    # Stop says so plainly; regenerate answers its question again (a sibling: the failed one stays).
    assert account.client.post(f"/api/v1/messages/{orphan_id}/stop").status_code == 409
    with account.client.stream("POST", f"/api/v1/messages/{orphan_id}/regenerate",
                               json={"parameters": {"temperature": 0}}) as response:
        again = list(SseReader(response))
    assert again[-1].event == "done"
    assert account.client.get(f"/api/v1/messages/{orphan_id}").json()["status"] == "interrupted"
    shown = account.messages(conversation)
    assert shown[-1]["id"] == again[-1].data["message_id"] and shown[-1]["siblings"]["count"] == 2


def test_the_sweep_settles_a_dead_workers_answer_without_a_listener(app_url: str, db: Any) -> None:
    account = sign_up(app_url)
    conversation = ObjectId(account.conversation())
    now = dt.datetime.now(dt.UTC)
    orphan_id = ObjectId()
    db.messages.insert_one({
        "_id": orphan_id, "conversation_id": conversation, "user_id": ObjectId(account.user_id),
        "role": "assistant", "content": "반쯤", "status": "streaming", "image_ids": [], "created_at": now,
        "updated_at": now, "attempt": 0, "worker_id": "gone:2:dead", "lease_until": now - dt.timedelta(seconds=1),
    })
    deadline = time.monotonic() + 15  # the sweep runs every lease/2 (4 s by default)
    while db.messages.find_one({"_id": orphan_id})["status"] == "streaming":
        assert time.monotonic() < deadline, "no worker settled the orphaned answer"
        time.sleep(0.2)
    assert db.messages.find_one({"_id": orphan_id})["status"] == "interrupted"
