"""What a user does with the running stack, from outside the containers: HTTPS through the proxy
only, as a browser or a program would. Each function raises AssertionError with the reason."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from PIL import Image

QUESTION = "한국의 수도는 어디인가요?"
IMAGE_QUESTION = "이 그림을 설명해 주세요."
PASSWORD = "비밀번호-password-1"


@dataclass
class SseEvent:
    event: str
    data: Any
    at: float  # seconds since the request was sent


def sse_events(response: httpx.Response, started: float) -> Iterator[SseEvent]:
    """text/event-stream as the spec reads it: fields per line, an event ends at a blank line."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                raw = "\n".join(data)
                yield SseEvent(event, raw if raw == "[DONE]" else json.loads(raw), time.monotonic() - started)
            event, data = "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            if name == "event":
                event = value.removeprefix(" ")
            elif name == "data":
                data.append(value.removeprefix(" "))


@dataclass
class User:
    """One account, what it made, and what it expects to find again after restarts."""

    base_url: str
    ca_file: Path
    email: str = field(default_factory=lambda: f"docker-{uuid.uuid4().hex[:10]}@example.com")
    api_token: str = ""
    conversation_id: str = ""
    image_conversation_id: str = ""
    messages: list[tuple[str, str]] = field(default_factory=list)  # (role, content) of the text conversation

    def client(self, bearer: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.Client(base_url=self.base_url, verify=str(self.ca_file), timeout=120, headers=headers)

    def sign_in(self) -> str:
        """A fresh access token from the password (a new session, as after a browser restart)."""
        with self.client() as http:
            response = http.post("/api/v1/auth/token", data={"username": self.email, "password": PASSWORD})
        assert response.status_code == 200, f"sign-in: {response.status_code} {response.text}"
        return str(response.json()["access_token"])


def wait_ready(base_url: str, ca_file: Path, timeout_s: float) -> dict[str, Any]:
    """GET /readyz through the proxy until every check (database, model server) says ready."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/readyz", verify=str(ca_file), timeout=10)
            if response.status_code == 200 and response.json().get("status") == "ready":
                return dict(response.json())
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(2)
    raise AssertionError(f"/readyz not ready after {timeout_s:.0f} s: {last}")


def sign_up(user: User) -> None:
    with user.client() as http:
        response = http.post("/api/v1/auth/signup",
                             json={"email": user.email, "password": PASSWORD, "display_name": "도커 사용자"})
        assert response.status_code == 201, f"sign-up: {response.status_code} {response.text}"
        # The session cookie is Secure: KOVR_PUBLIC_URL is the proxy's https address.
        cookies = response.headers.get_list("set-cookie")
    assert user.sign_in()
    assert not cookies or all("secure" in c.lower() for c in cookies), cookies


def create_api_token(user: User) -> None:
    with user.client(user.sign_in()) as http:
        response = http.post("/api/v1/tokens", json={"name": "도커 테스트"})
    assert response.status_code == 201, f"token: {response.status_code} {response.text}"
    user.api_token = str(response.json()["token"])
    assert user.api_token.startswith("kovr_")


def _stream(http: httpx.Client, conversation_id: str, content: str, **body: Any) -> list[SseEvent]:
    started = time.monotonic()
    with http.stream("POST", f"/api/v1/conversations/{conversation_id}/messages",
                     json={"content": content, **body}) as response:
        assert response.status_code == 200, f"message: {response.status_code} {response.read()!r}"
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        return list(sse_events(response, started))


def korean_question_streams(user: User) -> dict[str, object]:
    """A Korean question with the API token; the answer arrives as SSE token events, unbuffered."""
    with user.client(user.api_token) as http:
        created = http.post("/api/v1/conversations", json={"title": "도커 대화"})
        assert created.status_code == 201, created.text
        user.conversation_id = str(created.json()["id"])
        events = _stream(http, user.conversation_id, QUESTION, parameters={"max_new_tokens": 64, "seed": 1})
    tokens = [e for e in events if e.event == "token"]
    assert events and events[-1].event == "done", f"the answer did not finish: {events[-3:]}"
    answer = "".join(e.data["text"] for e in tokens)
    assert tokens and answer.strip(), "no tokens streamed"
    assert any("\uac00" <= ch <= "\ud7a3" for ch in answer), f"no Hangul in the answer: {answer!r}"
    user.messages = [("user", QUESTION), ("assistant", answer)]
    first, last = tokens[0].at, events[-1].at
    # A proxy that buffered the response would deliver every event at the very end.
    if last > 1.0:
        assert first < 0.8 * last, f"tokens arrived all at once (first {first:.2f} s, done {last:.2f} s)"
    return {"first_token_s": round(first, 2), "done_s": round(last, 2), "tokens": len(tokens), "answer": answer[:60]}


def image_is_answered(user: User) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (320, 240), "navy").save(picture, format="PNG")
    with user.client(user.api_token) as http:
        uploaded = http.post("/api/v1/images", files={"file": ("그림.png", picture.getvalue(), "image/png")})
        assert uploaded.status_code == 201, f"upload: {uploaded.status_code} {uploaded.text}"
        image_id = uploaded.json()["id"]
        served = http.get(f"/api/v1/images/{image_id}")
        assert served.status_code == 200 and served.content == picture.getvalue(), "the image did not come back"
        created = http.post("/api/v1/conversations", json={"title": "그림 대화"})
        user.image_conversation_id = str(created.json()["id"])
        events = _stream(http, user.image_conversation_id, IMAGE_QUESTION, image_ids=[image_id],
                         parameters={"max_new_tokens": 24, "seed": 1})
    assert events and events[-1].event == "done", f"the image answer did not finish: {events[-3:]}"
    assert any(e.event == "token" for e in events), "no tokens for the image question"


def openai_compatible_answers(user: User) -> str:
    with httpx.Client(verify=str(user.ca_file), timeout=120) as http:
        client = openai.OpenAI(base_url=f"{user.base_url}/v1", api_key=user.api_token,
                               http_client=http,  # type: ignore[arg-type]  # openai's annotations name its own httpx
                               max_retries=0)
        completion = client.chat.completions.create(
            model="kovr", max_tokens=32, seed=1, messages=[{"role": "user", "content": QUESTION}])
        assert completion.choices[0].message.content, completion
        assert completion.usage is not None and completion.usage.completion_tokens > 0
        chunks = list(client.chat.completions.create(
            model="kovr", max_tokens=32, seed=2, stream=True, messages=[{"role": "user", "content": QUESTION}]))
        assert chunks and any(c.choices and c.choices[0].delta.content for c in chunks), chunks
    return completion.choices[0].message.content


def still_there(user: User) -> None:
    """After a restart: the password signs in, the API token works, the conversation is intact."""
    access = user.sign_in()
    for bearer in (access, user.api_token):
        with user.client(bearer) as http:
            listed = http.get("/api/v1/conversations")
            assert listed.status_code == 200, listed.text
            body = listed.json()
            ids = {c["id"] for c in (body["items"] if isinstance(body, dict) else body)}
            assert {user.conversation_id, user.image_conversation_id} <= ids, ids
            messages = http.get(f"/api/v1/conversations/{user.conversation_id}/messages", params={"limit": 100})
            assert messages.status_code == 200, messages.text
            found = [(m["role"], m["content"]) for m in messages.json()["items"]]
            assert found == user.messages, f"conversation changed: {found} != {user.messages}"


def spoofed_forwarded_for(user: User, fake: str) -> None:
    """A client's own X-Forwarded-For must not become its address (the proxy replaces it)."""
    with user.client(user.api_token) as http:
        response = http.get("/api/v1/conversations", headers={"X-Forwarded-For": fake})
    assert response.status_code == 200, response.text
