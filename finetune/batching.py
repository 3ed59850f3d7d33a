"""Batching that spends little compute on padding: packing and length grouping, plus the padded baseline.

A plan is a list of micro-batches; a micro-batch is a list of rows; a row is a list of example
indices (several when packed). Plans are a pure function of (lengths, seed, epoch), which is what
lets a resumed run see the same data order.

Packed rows hold several examples. Attention never crosses examples: position ids restart at 0
for each example, and the model gets either a block-diagonal causal 4D mask (``mask="4d"``, any
attention implementation, CPU included) or, with FlashAttention-2, one flat row per micro-batch and
no mask at all: its varlen path splits the row at each position reset (``mask="varlen"``).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Any, Literal

from finetune.data import IGNORE, Example

Row = list[int]
MicroBatch = list[Row]


def plan_epoch(
    lengths: list[int], *, mode: str, micro_batch_size: int, max_seq_len: int, seed: int, epoch: int
) -> list[MicroBatch]:
    rng = random.Random(seed * 1_000_003 + epoch)
    if mode == "packed":
        rows = pack_rows(lengths, max_seq_len, rng)
        rng.shuffle(rows)
        return _chunks(rows, micro_batch_size)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if mode == "grouped":
        return _length_grouped(order, lengths, micro_batch_size, rng)
    if mode == "padded":
        return _chunks([[i] for i in order], micro_batch_size)
    raise ValueError(f"unknown batching mode {mode!r}; known: packed, grouped, padded")


def pack_rows(lengths: list[int], capacity: int, rng: random.Random) -> list[Row]:
    """Best-fit decreasing bin packing (ties in random order), O(n log n)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: -lengths[i])  # stable: equal lengths keep the shuffled order
    rows: list[Row] = []
    free: list[tuple[int, int]] = []  # (space left, row index), sorted
    for i in order:
        need = lengths[i]
        if need > capacity:
            raise ValueError(f"example of {need} tokens does not fit max_seq_len={capacity}")
        at = bisect.bisect_left(free, (need, -1))
        if at < len(free):
            space, row = free.pop(at)
        else:
            space, row = capacity, len(rows)
            rows.append([])
        rows[row].append(i)
        if space - need > 0:
            bisect.insort(free, (space - need, row))
    return rows


def _length_grouped(order: list[int], lengths: list[int], size: int, rng: random.Random) -> list[MicroBatch]:
    """Like HF's LengthGroupedSampler: sort inside mega-batches of 50 micro-batches, shuffle batches."""
    mega = size * 50
    batches: list[MicroBatch] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega], key=lambda i: -lengths[i])
        batches.extend(_chunks([[i] for i in chunk], size))
    rng.shuffle(batches)
    return batches


def _chunks(rows: list[Row], size: int) -> list[MicroBatch]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


@dataclass
class Batch:
    input_ids: Any  # LongTensor [B, L]
    labels: Any  # LongTensor [B, L], IGNORE on prompt and padding
    position_ids: Any  # LongTensor [B, L], restarting at each packed example
    attention_mask: Any | None  # [B, L] 0/1, or [B, 1, L, L] additive float, or None (varlen)
    real_tokens: int
    loss_tokens: int
    keys: tuple[int, ...]  # example keys, in order (data-order checks)

    def to(self, device: Any) -> Batch:
        def move(t: Any) -> Any:
            return t.to(device, non_blocking=True) if t is not None else None

        return Batch(move(self.input_ids), move(self.labels), move(self.position_ids),
                     move(self.attention_mask), self.real_tokens, self.loss_tokens, self.keys)


def collate(
    micro: MicroBatch,
    examples: list[Example],
    *,
    pad_id: int,
    pad_to: int | None = None,
    mask: Literal["2d", "4d", "varlen"] = "2d",
    mask_dtype: Any = None,
) -> Batch:
    """Tensors for one micro-batch; ``pad_to`` pads every row to that length (the baseline)."""
    import torch

    rows = [[examples[i] for i in row] for row in micro]
    width = pad_to or max(sum(len(e) for e in row) for row in rows)
    b = len(rows)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    labels = torch.full((b, width), IGNORE, dtype=torch.long)
    pos = torch.zeros((b, width), dtype=torch.long)
    seg = torch.full((b, width), -1, dtype=torch.long)  # example number within the row; -1 = padding
    for r, row in enumerate(rows):
        at = 0
        for s, ex in enumerate(row):
            n = len(ex)
            ids[r, at:at + n] = torch.tensor(ex.input_ids)
            labels[r, at:at + n] = torch.tensor(ex.labels)
            labels[r, at] = IGNORE  # the first token of an example is never predicted from the previous one
            pos[r, at:at + n] = torch.arange(n)
            seg[r, at:at + n] = s
            at += n
        if at < width:  # padding continues the positions so rotary stays in range and well defined
            pos[r, at:] = torch.arange(width - at) + (pos[r, at - 1] + 1 if at else 0)
    real = int((seg >= 0).sum())
    keys = tuple(examples[i].key for row in micro for i in row)
    if mask == "varlen":
        # FlashAttention-2 finds packed examples from position resets only in a single row, so the
        # micro-batch becomes one row of all its examples, with no padding at all.
        keep = seg >= 0
        ids, labels, pos = ids[keep][None], labels[keep][None], pos[keep][None]
        return Batch(ids, labels, pos, None, real, int((labels != IGNORE).sum()), keys)
    attention = _attention(seg, mask, mask_dtype or torch.float32)
    return Batch(ids, labels, pos, attention, real, int((labels != IGNORE).sum()), keys)


def _attention(seg: Any, mask: str, dtype: Any) -> Any:
    import torch

    if mask == "2d":
        return (seg >= 0).long()
    # Block-diagonal causal: query i sees key j when j <= i and both belong to the same example.
    # Padding rows see only themselves so no softmax row is empty (their outputs carry no loss).
    width = seg.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = seg[:, :, None] == seg[:, None, :]
    allowed = causal[None] & same & (seg[:, :, None] >= 0)
    allowed |= torch.eye(width, dtype=torch.bool)[None]
    additive = torch.zeros(allowed.shape, dtype=dtype)
    additive.masked_fill_(~allowed, torch.finfo(dtype).min)
    return additive[:, None]
