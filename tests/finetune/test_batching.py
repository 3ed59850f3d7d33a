"""Packing and length grouping: same loss as unpacked batches, no attention across examples."""

from __future__ import annotations

import random
from typing import Any, Literal

import pytest

from finetune.batching import collate, pack_rows, plan_epoch
from finetune.data import Example, make_example
from finetune.objective import every_position_loss, forward_logits, loss_sum


def _examples(n: int, seed: int = 0, vocab: int = 50) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for key in range(n):
        prompt = [rng.randrange(2, vocab) for _ in range(rng.randint(3, 12))]
        response = [rng.randrange(2, vocab) for _ in range(rng.randint(1, 10))] + [0]
        out.append(make_example(prompt, response, "test", key))
    return out


@pytest.fixture(scope="module")
def model() -> Any:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=128, rotary_pct=0.5,
                           attn_implementation="sdpa")
    return GPTNeoXForCausalLM(config).eval()


def test_packing_fills_rows_without_losing_or_repeating_examples() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(5, 60) for _ in range(500)]
    rows = pack_rows(lengths, 64, random.Random(0))
    assert sorted(i for row in rows for i in row) == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) <= sum(lengths) / 64 * 1.1 + 1  # near-perfect fill


def test_plans_depend_only_on_seed_and_epoch() -> None:
    lengths = [random.Random(i).randint(5, 60) for i in range(200)]
    for mode in ("packed", "grouped", "padded"):
        a = plan_epoch(lengths, mode=mode, micro_batch_size=4, max_seq_len=64, seed=7, epoch=0)
        assert a == plan_epoch(lengths, mode=mode, micro_batch_size=4, max_seq_len=64, seed=7, epoch=0)
        assert a != plan_epoch(lengths, mode=mode, micro_batch_size=4, max_seq_len=64, seed=7, epoch=1)


def test_length_grouping_and_packing_cut_padding() -> None:
    rng = random.Random(2)
    examples = [make_example([5] * rng.randint(4, 20), [6] * rng.randint(1, 100) + [0], "t", k) for k in range(400)]
    lengths = [len(e) for e in examples]

    def padded_slots(mode: str) -> int:
        plan = plan_epoch(lengths, mode=mode, micro_batch_size=8, max_seq_len=128, seed=0, epoch=0)
        pad_to = 128 if mode == "padded" else None
        return sum(collate(m, examples, pad_id=1, pad_to=pad_to).input_ids.numel() for m in plan)

    real = sum(lengths)
    padded, grouped, packed = padded_slots("padded"), padded_slots("grouped"), padded_slots("packed")
    assert real / padded < 0.6
    assert real / grouped > 0.9 and real / packed > 0.9


def test_packed_loss_and_gradients_equal_unpacked(model: Any) -> None:
    import torch

    examples = _examples(6)
    unpacked = collate([[i] for i in range(6)], examples, pad_id=1, mask="2d")
    packed = collate([[0, 1, 2], [3, 4, 5]], examples, pad_id=1, mask="4d")
    assert packed.loss_tokens == unpacked.loss_tokens == sum(e.loss_tokens for e in examples)

    def loss_and_grad(batch: Any) -> tuple[float, Any]:
        model.zero_grad()
        loss, n = loss_sum(model, batch)
        (loss / n).backward()
        grad = model.gpt_neox.layers[0].attention.query_key_value.weight.grad.clone()
        return float((loss / n).detach()), grad

    loss_u, grad_u = loss_and_grad(unpacked)
    loss_p, grad_p = loss_and_grad(packed)
    assert loss_p == pytest.approx(loss_u, rel=1e-5)
    torch.testing.assert_close(grad_p, grad_u, rtol=1e-4, atol=1e-6)


def test_varlen_layout_is_one_flat_row_with_the_same_loss(model: Any) -> None:
    """The FlashAttention-2 layout; transformers' SDPA path also splits it at position resets."""
    import torch

    examples = _examples(6, seed=2)
    flat = collate([[0, 1, 2], [3, 4, 5]], examples, pad_id=1, mask="varlen")
    assert flat.attention_mask is None
    assert tuple(flat.input_ids.shape) == (1, sum(len(e) for e in examples)) == (1, flat.real_tokens)
    assert int((flat.position_ids == 0).sum()) == 6
    unpacked = collate([[i] for i in range(6)], examples, pad_id=1, mask="2d")
    with torch.no_grad():
        loss_f, n_f = loss_sum(model, flat)
        loss_u, n_u = loss_sum(model, unpacked)
    assert n_f == n_u
    assert float(loss_f) == pytest.approx(float(loss_u), rel=1e-5)


def test_packed_examples_do_not_see_each_other(model: Any) -> None:
    import torch

    a, b = _examples(2, seed=3)
    changed = make_example([7, 8, 9, 10], [11, 0], "t", 0)
    with torch.no_grad():
        first = forward_logits(model, collate([[0, 1]], [a, b], pad_id=1, mask="4d"))
        second = forward_logits(model, collate([[0, 1]], [changed, b], pad_id=1, mask="4d"))
        alone = forward_logits(model, collate([[0]], [b], pad_id=1, mask="2d"))
    torch.testing.assert_close(first[0, len(a):len(a) + len(b)], second[0, len(changed):len(changed) + len(b)],
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first[0, len(a):len(a) + len(b)], alone[0, : len(b)], rtol=1e-5, atol=1e-5)


def test_prompt_tokens_get_no_gradient(model: Any) -> None:
    examples = _examples(3, seed=5)
    batch = collate([[0, 1, 2]], examples, pad_id=1, mask="4d")
    logits = forward_logits(model, batch)
    logits.retain_grad()
    import torch.nn.functional as F

    from finetune.data import IGNORE

    targets = batch.labels[:, 1:]
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum")
    loss.backward()
    per_position = logits.grad[0, :-1].abs().sum(-1)
    carries = targets[0] != IGNORE
    assert carries.any() and (~carries).any()
    assert float(per_position[~carries].max()) == 0.0
    assert float(per_position[carries].min()) > 0.0


@pytest.mark.parametrize("mask", ["2d", "4d"])
def test_logits_only_where_the_loss_is_give_the_same_loss_and_gradients(
    model: Any, mask: Literal["2d", "4d"]
) -> None:
    import torch

    examples = _examples(6, seed=7)
    rows = [[i] for i in range(6)] if mask == "2d" else [[0, 1, 2], [3, 4, 5]]
    batch = collate(rows, examples, pad_id=1, mask=mask)

    def loss_and_grads(fn: Any) -> tuple[float, int, list[Any]]:
        model.zero_grad()
        loss, n = fn(model, batch)
        (loss / n).backward()
        return float(loss.detach()), n, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    kept_loss, kept_n, kept_grads = loss_and_grads(loss_sum)
    full_loss, full_n, full_grads = loss_and_grads(every_position_loss)
    model.zero_grad()
    assert kept_n == full_n == batch.loss_tokens
    assert kept_loss == pytest.approx(full_loss, rel=1e-5)
    assert len(kept_grads) == len(full_grads)
    for kept, full in zip(kept_grads, full_grads, strict=True):
        torch.testing.assert_close(kept, full, rtol=1e-4, atol=1e-6)


def test_a_model_that_ignores_logits_to_keep_still_gets_the_right_loss(model: Any) -> None:
    import torch

    class EveryPosition(torch.nn.Module):
        """A causal LM whose forward has no logits_to_keep (it swallows the keyword)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, **inputs: Any) -> Any:
            inputs.pop("logits_to_keep")
            return self.inner(**inputs)

    batch = collate([[i] for i in range(4)], _examples(4, seed=9), pad_id=1, mask="2d")
    with torch.no_grad():
        kept, n = loss_sum(EveryPosition(model), batch)
        full, full_n = every_position_loss(model, batch)
    assert n == full_n
    assert float(kept) == pytest.approx(float(full), rel=1e-5)
