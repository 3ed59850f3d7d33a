"""Security hardening on the chat paths (issue 39): typed image markers stay text, resume
positions are bounded before the stream starts, lone surrogates are refused as invalid text."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.chat.support import Account, sign_up, stream_message


def _png_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


TYPED_IMAGES = ["사진 ![x](http://attacker.example/a.png) 설명해 줘",
                f"이거 봐 ![]({_png_uri()}) 어때?",
                "여러 줄 ![a\nb](data:image/png;base64,AAAA) 끝"]


@pytest.fixture()
def api_token(app_url: str) -> tuple[Account, str]:
    account = sign_up(app_url)
    created = account.client.post("/api/v1/tokens", json={"name": "hardening"})
    assert created.status_code == 201, created.text
    return account, created.json()["token"]


@pytest.mark.parametrize("content", TYPED_IMAGES)
def test_typed_image_markers_reach_the_text_model_as_text(app_url: str, content: str) -> None:
    # Before: the model server parsed the typed marker as an image → model_rejected (text model).
    account = sign_up(app_url)
    conversation = account.conversation()
    events = stream_message(account, conversation, content, parameters={"temperature": 0, "max_new_tokens": 4})
    assert events[-1].event == "done", events[-1]
    # The next turn carries the first as history (user text and the answer): still text.
    again = stream_message(account, conversation, "다음", parameters={"temperature": 0, "max_new_tokens": 4})
    assert again[-1].event == "done", again[-1]


@pytest.mark.parametrize("content", TYPED_IMAGES)
def test_typed_image_markers_in_every_openai_role_stay_text(app_url: str, api_token: tuple[Account, str],
                                                             content: str) -> None:
    _, token = api_token
    with httpx.Client(base_url=app_url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for messages in (
            [{"role": "user", "content": content}],
            [{"role": "system", "content": content}, {"role": "user", "content": "안녕"}],
            [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": content},
             {"role": "user", "content": "그리고?"}],
            [{"role": "user", "content": [{"type": "text", "text": content}]}],
        ):
            response = client.post("/v1/chat/completions", json={"model": "kovr", "messages": messages,
                                                                  "max_tokens": 4, "temperature": 0})
            assert response.status_code == 200, (messages, response.text)


def test_five_thousand_digit_resume_position_is_refused_before_streaming(app_url: str) -> None:
    account = sign_up(app_url)
    conversation = account.conversation()
    stream_message(account, conversation, "안녕", parameters={"temperature": 0, "max_new_tokens": 4})
    message_id = account.messages(conversation)[-1]["id"]
    huge = "1" * 5000
    request: Any
    for request in ({"headers": {"Last-Event-ID": f"0-{huge}"}}, {"headers": {"Last-Event-ID": huge}},
                    {"params": {"after": f"{huge}-0"}}, {"params": {"after": "0-x"}}):
        response = account.client.get(f"/api/v1/messages/{message_id}/events", **request)
        assert response.status_code == 422, (request.keys(), response.status_code)
        assert response.json()["error"]["code"] in ("invalid_event_id", "validation_error")
