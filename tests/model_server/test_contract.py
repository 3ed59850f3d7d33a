"""The TGI contract, driven by the real `text-generation` AsyncClient against uvicorn on loopback."""

from __future__ import annotations

import json

import httpx
import pytest
from text_generation import AsyncClient
from text_generation.errors import ValidationError
from text_generation.types import FinishReason

from tests.model_server.conftest import KOREAN_TEXT, PROMPT


@pytest.fixture
def client(server_url: str) -> AsyncClient:
    return AsyncClient(server_url, timeout=60)


async def test_generate_answers_in_korean(client: AsyncClient) -> None:
    response = await client.generate(PROMPT, max_new_tokens=12)
    details = response.details
    assert response.generated_text and KOREAN_TEXT.startswith(response.generated_text)
    assert details.finish_reason == FinishReason.Length
    assert details.generated_tokens == len(details.tokens) == 12
    assert details.seed is None  # greedy
    assert details.prefill == []
    assert "".join(t.text for t in details.tokens) == response.generated_text


async def test_stream_concatenates_to_generated_text_without_broken_hangul(client: AsyncClient) -> None:
    events = [e async for e in client.generate_stream(PROMPT, max_new_tokens=30)]
    texts = [e.token.text for e in events]
    assert [e.generated_text is None for e in events] == [True] * 29 + [False]
    final = events[-1]
    assert final.details is not None and final.details.generated_tokens == 30
    assert "".join(texts) == final.generated_text
    assert all("\ufffd" not in t for t in texts)
    assert "" in texts  # a syllable was split across tokens and held back
    assert any("\uac00" <= ch <= "\ud7a3" for ch in final.generated_text)


async def test_stream_equals_generate(client: AsyncClient) -> None:
    whole = await client.generate(PROMPT, max_new_tokens=25)
    streamed = [e async for e in client.generate_stream(PROMPT, max_new_tokens=25)]
    assert streamed[-1].generated_text == whole.generated_text


async def test_raw_sse_framing(server_url: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 5, "details": True}}
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("POST", f"{server_url}/generate_stream", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        raw = (await response.aread()).decode()
    frames = [f for f in raw.split("\n\n") if f]
    assert all(f.startswith("data:") for f in frames) and "[DONE]" not in raw
    events = [json.loads(f.removeprefix("data:")) for f in frames]
    assert [e["index"] for e in events] == [1, 2, 3, 4, 5]
    assert set(events[0]) == {"index", "token", "generated_text", "details"}
    assert set(events[0]["token"]) == {"id", "text", "logprob", "special"}
    assert events[-1]["details"] == {
        "finish_reason": "length", "generated_tokens": 5, "seed": None,
        "input_length": events[-1]["details"]["input_length"],
    }
    assert events[-1]["details"]["input_length"] > 0


async def test_generate_route_returns_an_object_and_compat_route_a_list(server_url: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 3}}
    async with httpx.AsyncClient(timeout=60) as http:
        direct = (await http.post(f"{server_url}/generate", json=body)).json()
        compat = (await http.post(f"{server_url}/", json=body)).json()
    assert set(direct) == {"generated_text"}  # details only when asked for
    assert isinstance(compat, list) and compat[0]["generated_text"] == direct["generated_text"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 4000}, "`max_new_tokens` must be <= 150. Given: 4000"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
        ({"truncate": 1000}, "`truncate` must be strictly positive and less than 200. Given: 1000"),
    ],
)
async def test_validation_errors_map_to_the_client_exception(
    client: AsyncClient, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        await client.generate(PROMPT, **kwargs)
    with pytest.raises(ValidationError):
        async for _ in client.generate_stream(PROMPT, **kwargs):
            pass


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"top_p": 1.0}, "`top_p` must be > 0.0 and < 1.0"),
        ({"typical_p": 0.0}, "`typical_p` must be > 0.0 and < 1.0"),
        ({"temperature": 0}, "`temperature` must be strictly positive"),
        ({"top_k": -1}, "`top_k` must be strictly positive"),
        ({"repetition_penalty": 0}, "`repetition_penalty` must be strictly positive"),
        ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
        ({"best_of": 2, "do_sample": True}, "`best_of` != 1"),
        ({"nonsense": 1}, "unknown field `parameters.nonsense`"),
        ({"top_k": "many"}, "`parameters.top_k`"),
    ],
)
async def test_out_of_range_and_unknown_parameters_are_422(
    server_url: str, parameters: dict[str, object], message: str
) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        for path in ("/generate", "/generate_stream"):
            response = await http.post(f"{server_url}{path}", json={"inputs": PROMPT, "parameters": parameters})
            assert response.status_code == 422
            body = response.json()
            assert body["error_type"] == "validation" and message in body["error"]


async def test_empty_input_and_bad_json_are_422(server_url: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        empty = await http.post(f"{server_url}/generate", json={"inputs": ""})
        broken = await http.post(f"{server_url}/generate", content=b"{not json")
    assert empty.status_code == broken.status_code == 422
    assert empty.json() == {"error": "Input validation error: `inputs` cannot be empty", "error_type": "validation"}
    assert broken.json()["error_type"] == "validation"


async def test_prefill_details_are_refused_on_streams(server_url: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"decoder_input_details": True}}
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(f"{server_url}/generate_stream", json=body)
    assert response.status_code == 422
    assert "`decoder_input_details` == true is not supported when streaming tokens" in response.json()["error"]


async def test_oversized_body_is_refused_before_it_is_read(server_url: str) -> None:
    huge = "가" * (20 * 1024 * 1024)  # 60 MB of UTF-8, over the payload limit
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(f"{server_url}/generate", json={"inputs": huge})
    assert response.status_code == 413
    assert response.json()["error_type"] == "validation"
