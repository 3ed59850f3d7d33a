"""The real `openai` client pointed at KoVR's /v1 with a personal API token."""

from __future__ import annotations

import base64
import io
from typing import Any

import openai
import pytest
from PIL import Image

from tests.chat.support import QA, sign_up


@pytest.fixture()
def client(app_url: str) -> openai.OpenAI:
    account = sign_up(app_url)
    created = account.client.post("/api/v1/tokens", json={"name": "openai 테스트"})
    assert created.status_code == 201, created.text
    return openai.OpenAI(base_url=f"{app_url}/v1", api_key=created.json()["token"], max_retries=0, timeout=60)


def test_non_streaming_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="kovr", temperature=0, messages=[{"role": "user", "content": QA[0][0]}],
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and "안녕하세요" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


def test_streaming_completion_matches_non_streaming(client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "친절하게 답하세요."},
        {"role": "user", "content": QA[1][0]},
    ]
    whole = client.chat.completions.create(model="kovr", temperature=0, messages=messages)
    stream = client.chat.completions.create(
        model="kovr", temperature=0, messages=messages, stream=True, stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(pieces) >= 3
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish in ("stop", "length") and usage is not None and usage.total_tokens > 0


def test_multi_turn_and_errors(client: openai.OpenAI) -> None:
    history: list[Any] = [
        {"role": "user", "content": QA[0][0]},
        {"role": "assistant", "content": QA[0][1]},
        {"role": "user", "content": [{"type": "text", "text": QA[1][0]}]},
    ]
    answer = client.chat.completions.create(model="kovr", temperature=0, max_tokens=20, messages=history)
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens <= 20

    png = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(png, format="PNG")
    image_url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    with pytest.raises(openai.UnprocessableEntityError) as caught:  # this test model has no vision part
        client.chat.completions.create(model="kovr", messages=[{"role": "user", "content": [
            {"type": "text", "text": "무엇이 보이나요?"}, {"type": "image_url", "image_url": {"url": image_url}}]}])
    assert "이미지" in str(caught.value)
    with pytest.raises(openai.UnprocessableEntityError):  # never fetches a remote URL
        client.chat.completions.create(model="kovr", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}]}])
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="kovr", messages=[{"role": "assistant", "content": "끝"}])


def test_bad_token_is_refused(app_url: str) -> None:
    bad = openai.OpenAI(base_url=f"{app_url}/v1", api_key="kovr_" + "x" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="kovr", messages=[{"role": "user", "content": "안녕"}])


def test_models_are_listed(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="kovr", max_tokens=2, messages=[{"role": "user", "content": "안녕"}])
    models = client.models.list()
    assert len(models.data) == 1 and models.data[0].owned_by == "kovr" and models.data[0].id
