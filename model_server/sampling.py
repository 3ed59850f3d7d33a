"""Choosing the next token for one sequence: penalties, warpers, greedy or seeded sampling.

Each sequence keeps its own `torch.Generator` seeded from the request, so the same seed gives the
same output whether the sequence runs alone or batched with others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from dataclasses import dataclass

import torch

from model_server.wire import GenerateParameters


@dataclass(frozen=True)
class SamplingParams:
    """Resolved, validated parameters (TGI's `NextTokenChooser` defaults)."""

    sampling: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    seed: int = 0

    @classmethod
    def from_wire(cls, params: GenerateParameters) -> SamplingParams:
        sampling = params.sampling
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        return cls(
            sampling=sampling,
            temperature=params.temperature or 1.0,
            top_k=params.top_k or 0,
            top_p=params.top_p or 1.0,
            typical_p=params.typical_p or 1.0,
            repetition_penalty=params.repetition_penalty or 1.0,
            frequency_penalty=params.frequency_penalty or 0.0,
            seed=seed,
        )

    @property
    def plain_greedy(self) -> bool:
        """Greedy with no penalty: the choice needs nothing but the row's own logits."""
        return not self.sampling and self.repetition_penalty == 1.0 and self.frequency_penalty == 0.0

    def generator(self) -> torch.Generator:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed % 2**63)
        return gen


def choose(
    logits: torch.Tensor,
    params: SamplingParams,
    generator: torch.Generator,
    prompt_ids: list[int],
    generated_ids: list[int],
) -> tuple[int, float]:
    """The next token id and its log-probability under the final distribution.

    NaN scores give log-probability NaN (the engine fails that request) rather than an exception
    from sampling or a meaningless argmax.
    """
    scores = logits.float()
    if bool(torch.isnan(scores).any()):
        return 0, math.nan
    if params.repetition_penalty != 1.0 or params.frequency_penalty != 0.0:
        scores = _penalise(scores.clone(), params, prompt_ids, generated_ids)
    if not params.sampling:
        logprobs = torch.log_softmax(scores, dim=-1)
        token = int(torch.argmax(scores))
        return token, float(logprobs[token])
    scores = _warp(scores, params)
    probs = torch.softmax(scores, dim=-1)
    token = int(torch.multinomial(probs.cpu(), 1, generator=generator))
    return token, float(torch.log(probs[token]))


def choose_greedy(logits: torch.Tensor, banned: Collection[int] = ()) -> list[tuple[int, float]]:
    """`choose` for rows of ``[B, V]`` logits that are all `plain_greedy`, on the logits' device.

    One transfer of B ids and B log-probabilities replaces B rows of logits and B separate
    softmaxes on the CPU (about a quarter of a 64-stream decode step on a GPU). ``banned`` ids
    can never be chosen (EOS when a benchmark ignores it).
    """
    scores = logits.float()
    if banned:
        scores = scores.clone() if scores is logits else scores
        scores[:, list(banned)] = float("-inf")
    tokens = scores.argmax(dim=-1)
    logprobs = torch.log_softmax(scores, dim=-1).gather(1, tokens[:, None]).squeeze(1)
    return list(zip(tokens.tolist(), logprobs.tolist(), strict=True))


def _penalise(
    scores: torch.Tensor, params: SamplingParams, prompt_ids: list[int], generated_ids: list[int]
) -> torch.Tensor:
    """TGI's penalties: repetition over prompt + output (CTRL), frequency over the output."""
    if params.repetition_penalty != 1.0 and (prompt_ids or generated_ids):
        ids = torch.tensor(sorted(set(prompt_ids) | set(generated_ids)), dtype=torch.long)
        picked = scores[ids]
        scores[ids] = torch.where(
            picked < 0, picked * params.repetition_penalty, picked / params.repetition_penalty
        )
    if params.frequency_penalty != 0.0 and generated_ids:
        generated = torch.tensor(generated_ids, dtype=torch.long)
        counts = torch.bincount(generated, minlength=scores.numel())[: scores.numel()]
        scores -= params.frequency_penalty * counts.to(scores.dtype)
    return scores


def _warp(scores: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    if params.temperature != 1.0:
        scores = scores / params.temperature
    if params.top_k > 0:
        k = min(params.top_k, scores.numel())
        threshold = torch.topk(scores, k).values[-1]
        scores = scores.masked_fill(scores < threshold, float("-inf"))
    if params.top_p < 1.0:
        scores = _top_p(scores, params.top_p)
    if params.typical_p < 1.0:
        scores = _typical(scores, params.typical_p)
    return scores


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_scores, order = torch.sort(scores, descending=True)
    cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
    # Drop a token once the mass before it already reaches top_p (the best token always stays).
    drop = (cumulative - torch.softmax(sorted_scores, dim=-1)) >= top_p
    return scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))


def _typical(scores: torch.Tensor, mass: float) -> torch.Tensor:
    logp = torch.log_softmax(scores, dim=-1)
    p = logp.exp()
    entropy = -(torch.nan_to_num(logp * p)).sum()
    deviation = (-logp - entropy).abs()
    order = torch.argsort(deviation)
    cumulative = p[order].cumsum(dim=-1)
    keep_n = int((cumulative < mass).sum()) + 1
    drop_sorted = torch.arange(scores.numel()) >= keep_n
    return scores.masked_fill(torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted), float("-inf"))
