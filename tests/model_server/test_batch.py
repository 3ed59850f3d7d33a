"""The running batch's left-padded KV cache gives exactly what each sequence gives alone."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from model_server.batch import BatchCache, prefill


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
