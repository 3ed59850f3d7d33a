"""Choosing tokens: the batched greedy path gives what the per-row path gives, alone or mixed."""

from __future__ import annotations

import asyncio

import pytest
import torch
from text_generation import AsyncClient

from model_server.sampling import SamplingParams, choose, choose_greedy
from tests.model_server.conftest import PROMPT


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("banned", [[], [3, 0]])
def test_choose_greedy_matches_choose_row_by_row(dtype: torch.dtype, banned: list[int]) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 50, generator=generator) * 4).to(dtype)
    logits[2, 3] = 100.0  # a banned id that would otherwise win
    before = logits.clone()
    got = choose_greedy(logits, banned)
    params = SamplingParams()
    assert params.plain_greedy
    for row, (token, logprob) in enumerate(got):
        masked = logits[row].clone()
        masked[banned] = float("-inf")
        want_token, want_logprob = choose(masked, params, params.generator(), [], [])
        assert token == want_token and token not in banned
        assert logprob == pytest.approx(want_logprob, abs=1e-6)
    assert torch.equal(logits, before)  # the caller's logits are left alone


def test_penalties_and_sampling_are_not_plain_greedy() -> None:
    assert not SamplingParams(repetition_penalty=1.2).plain_greedy
    assert not SamplingParams(frequency_penalty=0.5).plain_greedy
    assert not SamplingParams(sampling=True).plain_greedy


async def test_mixed_batch_rows_equal_each_row_alone(server_url: str) -> None:
    """Greedy rows take the batched path and the others the per-row one, in the same step."""
    client = AsyncClient(server_url, timeout=60)
    requests: list[dict[str, object]] = [
        {"max_new_tokens": 12},
        {"max_new_tokens": 12, "repetition_penalty": 1.3},
        {"max_new_tokens": 12, "do_sample": True, "temperature": 0.8, "seed": 7},
        {"max_new_tokens": 9, "frequency_penalty": 0.4},
    ]

    async def run(params: dict[str, object]) -> tuple[list[int], list[float]]:
        response = await client.generate(PROMPT, decoder_input_details=False, **params)
        tokens = response.details.tokens
        return [t.id for t in tokens], [t.logprob for t in tokens]

    alone = [await run(p) for p in requests]
    together = await asyncio.gather(*(run(p) for p in requests))
    for (ids_alone, lp_alone), (ids_together, lp_together) in zip(alone, together, strict=True):
        assert ids_together == ids_alone
        assert lp_together == pytest.approx(lp_alone, abs=1e-4)
    assert alone[2][1] != pytest.approx(alone[0][1], abs=1e-3)  # the sampled row went the other way


@pytest.mark.parametrize("sampled", [False, True])
def test_nan_scores_give_a_nan_logprob_for_the_engine_to_fail(sampled: bool) -> None:
    import math

    params = SamplingParams(sampling=sampled, temperature=0.7, top_k=5) if sampled else SamplingParams()
    logits = torch.randn(50)
    logits[7] = float("nan")
    _, logprob = choose(logits, params, params.generator(), [], [])
    assert math.isnan(logprob)
    greedy = choose_greedy(torch.full((2, 50), float("nan")))
    assert all(math.isnan(lp) for _, lp in greedy)
