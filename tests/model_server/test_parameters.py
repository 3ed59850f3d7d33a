"""Every generation parameter does what TGI says it does."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from text_generation import AsyncClient
from text_generation.types import FinishReason

from tests.model_server.conftest import KOREAN_TEXT, PROMPT


@pytest.fixture
def client(server_url: str) -> AsyncClient:
    return AsyncClient(server_url, timeout=60)


async def test_same_seed_same_output_other_seed_other_output(client: AsyncClient) -> None:
    async def sample(seed: int) -> str:
        r = await client.generate(PROMPT, max_new_tokens=20, do_sample=True, temperature=3.0, seed=seed)
        assert r.details.seed == seed
        return r.generated_text

    first, again, other = await sample(42), await sample(42), await sample(7)
    assert first == again
    assert first != other


async def test_sampling_without_seed_reports_the_seed_it_used(client: AsyncClient) -> None:
    r = await client.generate(PROMPT, max_new_tokens=5, do_sample=True)
    assert isinstance(r.details.seed, int)


async def test_warpers_and_penalties_run_and_change_the_output(client: AsyncClient) -> None:
    greedy = (await client.generate(PROMPT, max_new_tokens=30)).generated_text
    penalised = (await client.generate(PROMPT, max_new_tokens=30, repetition_penalty=50.0)).generated_text
    assert penalised != greedy
    for kwargs in ({"top_k": 5}, {"top_p": 0.5}, {"typical_p": 0.5}, {"frequency_penalty": 1.0}):
        r = await client.generate(PROMPT, max_new_tokens=8, seed=1, do_sample=True, **kwargs)
        assert r.details.generated_tokens == 8


async def test_top_k_one_is_greedy(client: AsyncClient) -> None:
    greedy = (await client.generate(PROMPT, max_new_tokens=15)).generated_text
    sampled = (await client.generate(PROMPT, max_new_tokens=15, do_sample=True, top_k=1, seed=3)).generated_text
    assert sampled == greedy


async def test_stop_sequence_ends_generation_and_is_not_included(client: AsyncClient) -> None:
    r = await client.generate(PROMPT, max_new_tokens=60, stop_sequences=["따뜻"])
    assert r.details.finish_reason == FinishReason.StopSequence
    assert r.generated_text == KOREAN_TEXT[: KOREAN_TEXT.index("따뜻")]
    events = [e async for e in client.generate_stream(PROMPT, max_new_tokens=60, stop_sequences=["따뜻"])]
    assert "".join(e.token.text for e in events) == events[-1].generated_text == r.generated_text
    assert events[-1].details is not None and events[-1].details.finish_reason == FinishReason.StopSequence


async def test_return_full_text_prepends_the_prompt(client: AsyncClient) -> None:
    plain = await client.generate(PROMPT, max_new_tokens=5)
    full = await client.generate(PROMPT, max_new_tokens=5, return_full_text=True)
    assert full.generated_text == PROMPT + plain.generated_text


async def test_long_input_is_refused_unless_truncated(server_url: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        long_prompt = PROMPT
        while len((await http.post(f"{server_url}/tokenize", json={"inputs": long_prompt})).json()) <= 200:
            long_prompt = KOREAN_TEXT + long_prompt
        n = len((await http.post(f"{server_url}/tokenize", json={"inputs": long_prompt})).json())
        refused = await http.post(
            f"{server_url}/generate", json={"inputs": long_prompt, "parameters": {"max_new_tokens": 5}}
        )
        assert refused.status_code == 422
        assert refused.json() == {
            "error": f"Input validation error: `inputs` must have less than 200 tokens. Given: {n}",
            "error_type": "validation",
        }
        body = {"inputs": long_prompt, "parameters": {"truncate": 20, "max_new_tokens": 5, "details": True}}
        async with http.stream("POST", f"{server_url}/generate_stream", json=body) as response:
            raw = (await response.aread()).decode()
    assert response.status_code == 200
    assert '"input_length":20' in raw


async def test_max_new_tokens_defaults_to_what_fits(server_url: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{server_url}/generate", json={"inputs": PROMPT, "parameters": {"details": True}})
    assert r.status_code == 200
    details = r.json()["details"]
    assert details["finish_reason"] in ("length", "eos_token")
    assert details["generated_tokens"] <= 150


async def test_decoder_input_details_returns_prompt_logprobs(server_url: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 2, "decoder_input_details": True}}
    async with httpx.AsyncClient(timeout=60) as http:
        tokens = (await http.post(f"{server_url}/tokenize", json={"inputs": PROMPT})).json()
        details = (await http.post(f"{server_url}/generate", json=body)).json()["details"]
    prefill = details["prefill"]
    assert [p["id"] for p in prefill] == [t["id"] for t in tokens]
    assert prefill[0]["logprob"] is None and all(p["logprob"] <= 0 for p in prefill[1:])


async def test_concurrent_requests_batch_to_the_same_answers(client: AsyncClient) -> None:
    prompts = [PROMPT, "질문: 세종대왕은?\n답:\n", "hello world", "오늘은 날씨가"]
    alone = [(await client.generate(p, max_new_tokens=20)).generated_text for p in prompts]
    together = await asyncio.gather(*(client.generate(p, max_new_tokens=20) for p in prompts))
    assert [r.generated_text for r in together] == alone


async def test_seeded_sampling_is_the_same_alone_and_batched(client: AsyncClient) -> None:
    kwargs = {"max_new_tokens": 20, "do_sample": True, "temperature": 2.0, "seed": 11}
    alone = (await client.generate(PROMPT, **kwargs)).generated_text
    others = [client.generate(PROMPT, max_new_tokens=20, do_sample=True, temperature=2.0, seed=s) for s in (1, 2)]
    together = await asyncio.gather(client.generate(PROMPT, **kwargs), *others)
    assert together[0].generated_text == alone
