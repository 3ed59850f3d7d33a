"""The running batch's left-padded KV cache, and prompts prefilled together, give what each sequence gives alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from model_server.batch import BatchCache, prefill, prefill_batch
from model_server.engine import Job, prefill_groups
from model_server.sampling import SamplingParams


def _model(attn: str) -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=256, attn_implementation=attn,
    )
    return GPTNeoXForCausalLM(config).eval()


def _alone(model: GPTNeoXForCausalLM, ids: list[int], n: int) -> list[int]:
    prompt = torch.tensor([ids])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, do_sample=False,
                         pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_rows_joining_and_leaving_match_generate_alone(attn: str) -> None:
    torch.set_num_threads(1)
    model = _model(attn)
    long_prompt, short_prompt = [5, 6, 7, 8, 9, 10, 11], [100, 50]
    got: list[list[int]] = [[], []]
    batch = BatchCache()
    with torch.inference_mode():
        first = prefill(model, torch.tensor(long_prompt))
        batch.add(first)
        got[0].append(int(first.last_logits.argmax()))
        for _ in range(3):  # the first row runs alone for a while
            got[0].append(int(batch.step(model, torch.tensor([got[0][-1]]))[0].argmax()))
        second = prefill(model, torch.tensor(short_prompt))
        batch.add(second)  # joins shorter: left-padded to the batch's length
        got[1].append(int(second.last_logits.argmax()))
        for _ in range(80):  # past the buffer's spare room: it grows in place
            logits = batch.step(model, torch.tensor([got[0][-1], got[1][-1]]))
            for row in range(2):
                got[row].append(int(logits[row].argmax()))
        batch.keep([1])  # the first row leaves; padding columns nobody needs are trimmed
        assert batch.size == 1 and batch.mask is not None and bool(batch.mask.all())
        for _ in range(3):
            got[1].append(int(batch.step(model, torch.tensor([got[1][-1]]))[0].argmax()))
    assert got[0] == _alone(model, long_prompt, 84)
    assert got[1] == _alone(model, short_prompt, 84)


def test_rows_joining_together_match_generate_alone() -> None:
    """A burst of prompts joins a running row in one rebuild, each row left-padded to the longest."""
    torch.set_num_threads(1)
    model = _model("sdpa")
    prompts = [[5, 6, 7], [100, 50, 40, 30, 20, 10, 9, 8, 7, 6, 5], [42], [7, 7, 7, 7]]
    got: list[list[int]] = [[] for _ in prompts]
    batch = BatchCache()
    with torch.inference_mode():
        first = prefill(model, torch.tensor(prompts[0]))
        batch.add(first)
        got[0].append(int(first.last_logits.argmax()))
        got[0].append(int(batch.step(model, torch.tensor([got[0][-1]]))[0].argmax()))
        joining = [prefill(model, torch.tensor(p)) for p in prompts[1:]]
        batch.add(*joining)
        assert batch.size == 4 and batch.mask is not None
        assert batch.mask.sum(1).tolist() == [len(prompts[0]) + 1, *(len(p) for p in prompts[1:])]
        for row, result in enumerate(joining, start=1):
            got[row].append(int(result.last_logits.argmax()))
        for _ in range(70):  # past the buffer's spare room
            logits = batch.step(model, torch.tensor([g[-1] for g in got]))
            for row in range(len(prompts)):
                got[row].append(int(logits[row].argmax()))
    assert got[0] == _alone(model, prompts[0], 72)
    for row in range(1, len(prompts)):
        assert got[row] == _alone(model, prompts[row], 71)


@pytest.mark.parametrize("keeps_logits", [True, False])
def test_prompts_prefilled_together_match_generate_alone(keeps_logits: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right-padded prompts in one pass: each row's cache and first token are its own."""
    monkeypatch.setattr("model_server.batch._keeps_logits", lambda _: keeps_logits)  # models without logits_to_keep
    torch.set_num_threads(1)
    model = _model("sdpa")
    prompts = [[5, 6, 7], [100, 50, 40, 30, 20, 10, 9, 8], [42], [7, 7, 7, 7]]
    with torch.inference_mode():
        together = prefill_batch(model, [torch.tensor(p) for p in prompts])
        for prompt, result in zip(prompts, together, strict=True):
            alone = prefill(model, torch.tensor(prompt))
            assert result.length == len(prompt)
            assert torch.allclose(result.last_logits, alone.last_logits, atol=1e-5)
            for (k, v), (k1, v1) in zip(result.layers, alone.layers, strict=True):
                assert k.shape == k1.shape and torch.allclose(k, k1, atol=1e-5) and torch.allclose(v, v1, atol=1e-5)
        batch = BatchCache()
        batch.add(*together)
        got = [[int(r.last_logits.argmax())] for r in together]
        for _ in range(30):
            logits = batch.step(model, torch.tensor([g[-1] for g in got]))
            for row in range(len(prompts)):
                got[row].append(int(logits[row].argmax()))
    for prompt, tokens in zip(prompts, got, strict=True):
        assert tokens == _alone(model, prompt, 31)


def test_prefill_groups_bound_padding_and_keep_prompt_logprobs_alone() -> None:
    def job(n: int, **extra: Any) -> Job:
        return Job(prompt_ids=list(range(n)), params=SamplingParams(), max_new_tokens=1, emit=lambda _: None,
                   **extra)

    # An image prompt counts its embeddings (the image prefix included) and groups with text prompts.
    image = Job(prompt_ids=[1, 2], params=SamplingParams(), max_new_tokens=1, emit=lambda _: None,
                prompt_embeds=torch.zeros(10, 4))
    jobs = [job(10), job(11), job(40), job(9), job(12, prefill_logprobs=True), image]
    groups = prefill_groups(jobs)
    assert [[j.length for j in g] for g in groups] == [[9, 10, 10, 11], [40], [12]]
    assert groups[0][1] is image or groups[0][2] is image
    alone = prefill_groups(jobs, batch_images=False)  # the engine before image prompts were grouped
    assert [[j.length for j in g] for g in alone] == [[9, 10, 11], [40], [12], [10]] and alone[-1][0] is image
    for group in groups:
        lengths = [j.length for j in group]
        assert max(lengths) * len(lengths) <= 1.25 * sum(lengths)
