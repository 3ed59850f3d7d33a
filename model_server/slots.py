"""The running batch in a static KV cache: one preallocated row (slot) per running sequence.

Every layer's keys and values live in buffers [slots, heads, max_total_tokens, head_dim] allocated
once. A sequence that joins takes the lowest free slot and its prefilled cache is copied into that
slot's first columns; one that leaves just frees its slot. No other row's cache is ever copied
(the dynamic :class:`model_server.batch.BatchCache` rebuilds every row's buffers when rows come
and go). Each row keeps its tokens at columns 0..n-1 (right-padded), so the column a decode step
writes is the row's own length, and its position id is the same number.

A decode step runs over slots [0, b) and columns [0, w): b covers the highest busy slot, w the
longest row plus the new token. Free slots inside that range are dummy rows (all columns masked);
the lowest-free-slot rule keeps them few. All of a step's inputs (token ids, positions, the
additive attention mask) are static device buffers updated in place, so the same forward can be
captured in a CUDA graph per (b, w) bucket and replayed (model_server/graphs.py); shapes not
captured run eagerly.
"""

from __future__ import annotations

import bisect
import logging
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, StaticLayer

from model_server.batch import Prefill

log = logging.getLogger(__name__)


def bucket(sizes: list[int], need: int) -> int | None:
    """The smallest of the sorted `sizes` that is at least `need` (None: none is)."""
    i = bisect.bisect_left(sizes, need)
    return sizes[i] if i < len(sizes) else None


def batch_buckets(wanted: list[int], slots: int) -> list[int]:
    """Captured batch sizes: the wanted ones that fit the slots, plus `slots` itself so every batch has one."""
    return sorted({b for b in wanted if 1 <= b < slots} | {slots})


def width_buckets(max_len: int, smallest: int = 256) -> list[int]:
    """Captured key widths: powers of two from `smallest`, then `max_len`.

    Attention reads every column up to the width, so one width of max_len for every step would read
    the whole preallocated cache (for 64 rows of 2,048 tokens of a 1.3B model, 10x its weights).
    """
    widths: list[int] = []
    w = smallest
    while w < max_len:
        widths.append(w)
        w *= 2
    return [*widths, max_len]


class SlotLayer(StaticLayer):
    """transformers' static cache layer, except that row b writes its new column at its own position.

    StaticLayer writes the same `cache_position` columns for every row; here the rows are
    independent sequences of different lengths, so the column of row b is `positions[b]` (the
    owner's positions buffer). It returns the keys and values of the rows run this step, up to the
    owner's current width.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, owner: SlotCache) -> None:
        super().__init__(max_cache_len=keys.shape[2])
        self.keys, self.values, self.owner = keys, values, owner
        self.max_batch_size, self.num_heads, _, self.head_dim = keys.shape
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, w = key_states.shape[0], self.owner.width
        rows, columns = self.owner.arange[:b], self.owner.positions[:b, 0]
        assert self.keys is not None and self.values is not None
        self.keys[rows, :, columns] = key_states[:, :, 0]  # [b, heads, dim]: one new column per row
        self.values[rows, :, columns] = value_states[:, :, 0]
        return self.keys[:b, :, :w], self.values[:b, :, :w]


class SlotCache:
    """The static-cache counterpart of BatchCache: same calls (add, keep, step, clear), rows in join order."""

    def __init__(self, model: PreTrainedModel, slots: int, max_len: int) -> None:
        config = model.config
        # Key/value heads (fewer than query heads in grouped-query models) and their width, as the layers cache them.
        heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        device, dtype = model.device, model.dtype
        shape = (slots, heads, max_len, head_dim)
        # Zeros, not empty(): a masked column gets weight 0, and 0 times a NaN left in memory is NaN.
        self.cache = Cache(layers=[
            SlotLayer(torch.zeros(shape, dtype=dtype, device=device),
                      torch.zeros(shape, dtype=dtype, device=device), self)
            for _ in range(int(config.num_hidden_layers))
        ])
        self.slots, self.max_len, self.device = slots, max_len, device
        self.blocked = torch.finfo(dtype).min
        # The static inputs of a step: token ids and positions [slots, 1], the additive mask [slots, max_len].
        self.ids = torch.zeros(slots, 1, dtype=torch.long, device=device)
        self.positions = torch.zeros(slots, 1, dtype=torch.long, device=device)
        self.mask = torch.full((slots, max_len), self.blocked, dtype=dtype, device=device)
        self.arange = torch.arange(slots, device=device)
        self.cache_position = torch.zeros(1, dtype=torch.long, device=device)  # unused by SlotLayer; skips a sync
        self.width = max_len
        self.graphs: Any = None  # model_server.graphs.DecodeGraphs, when captured
        self._row_slots: list[int] = []  # slot of each row, in row order
        self._length = [0] * slots  # tokens in each slot's cache
        self._dirty = [0] * slots  # columns each slot may hold from earlier sequences
        self._free = list(range(slots))  # sorted: the lowest free slot is taken first

    @property
    def size(self) -> int:
        return len(self._row_slots)

    @property
    def row_slots(self) -> list[int]:
        return list(self._row_slots)

    def lengths(self) -> list[int]:
        return [self._length[s] for s in self._row_slots]

    def add(self, *rows: Prefill) -> None:
        """Each prefilled sequence takes the lowest free slot; only its own columns are written."""
        if len(rows) > len(self._free):
            raise RuntimeError(f"{len(rows)} sequences joining, {len(self._free)} free slots")
        for row in rows:
            n = row.length
            if n >= self.max_len:
                raise ValueError(f"a {n}-token prompt leaves no room in a {self.max_len}-token slot")
            slot = self._free.pop(0)
            for layer, (k, v) in zip(self.cache.layers, row.layers, strict=True):
                assert layer.keys is not None and layer.values is not None
                if k.shape[1] != layer.keys.shape[1] or k.shape[3] != layer.keys.shape[3]:
                    raise ValueError(f"prefill cache {tuple(k.shape)} does not fit slots {tuple(layer.keys.shape)}")
                layer.keys[slot, :, :n] = k[0]
                layer.values[slot, :, :n] = v[0]
                if self._dirty[slot] > n:  # an earlier sequence's columns: zeroed (see __init__)
                    layer.keys[slot, :, n : self._dirty[slot]] = 0
                    layer.values[slot, :, n : self._dirty[slot]] = 0
            self.mask[slot].fill_(self.blocked)
            self.mask[slot, :n] = 0
            self._length[slot] = self._dirty[slot] = n
            self._row_slots.append(slot)

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order); the others' slots are freed, nothing is copied."""
        kept = [self._row_slots[i] for i in rows]
        for slot in set(self._row_slots) - set(kept):
            bisect.insort(self._free, slot)
            self._length[slot] = 0
        self._row_slots = kept

    def clear(self) -> None:
        self.keep([])

    def shape_for(self) -> tuple[int, int]:
        """(b, w) this step needs: slots up to the highest busy one, columns up to the longest row's new token."""
        return max(self._row_slots) + 1, max(self.lengths()) + 1

    def step(self, model: PreTrainedModel, next_ids: torch.Tensor | list[int]) -> torch.Tensor:
        """Feed one token per row; returns the logits [rows, vocab] for the following token."""
        assert self._row_slots, "no rows to decode"
        if isinstance(next_ids, torch.Tensor):
            next_ids = next_ids.tolist()
        b, w = self.shape_for()
        if w > self.max_len:  # validation keeps prompt + new tokens within max_total_tokens; never write past it
            raise RuntimeError(f"a row would pass the cache's {self.max_len} tokens")
        key = self.graphs.pick(b, w) if self.graphs is not None else None
        if key is not None:
            b = key[0]
        ids, positions = [0] * b, [0] * b  # free slots in range: token 0 at column 0, fully masked
        for slot, token in zip(self._row_slots, next_ids, strict=True):
            ids[slot], positions[slot] = token, self._length[slot]
        self._load(ids, positions)
        logits = self.graphs.replay(key) if key is not None else self.forward(model, b, w)
        for slot in self._row_slots:
            self._length[slot] += 1
            self._dirty[slot] = max(self._dirty[slot], self._length[slot])
        for slot in range(b):  # dummy rows wrote column 0
            self._dirty[slot] = max(self._dirty[slot], 1)
        rows = self._row_slots
        picked = logits[:, -1] if rows == list(range(b)) else logits[rows, -1]
        return picked.float()

    def _load(self, ids: list[int], positions: list[int]) -> None:
        """Copy this step's ids and positions into the static buffers, in one host-to-device copy."""
        b = len(ids)
        both = torch.tensor([ids, positions], dtype=torch.long)
        staged = both.to(self.device, non_blocking=True)
        self.ids[:b, 0].copy_(staged[0])
        self.positions[:b, 0].copy_(staged[1])

    def forward(self, model: PreTrainedModel, b: int, w: int) -> torch.Tensor:
        """One decode step over slots [0, b) and columns [0, w), reading only the static buffers.

        This is what a CUDA graph captures: Python values (b, w) are fixed per graph, tensors are
        read at replay. Returns the logits [b, 1, vocab] in the model's dtype.
        """
        self.width = w
        # The new column of each row is unmasked in place (dummy rows unmask column 0: harmless).
        self.mask[:b].scatter_(1, self.positions[:b], 0.0)
        out = model(
            input_ids=self.ids[:b],
            position_ids=self.positions[:b],
            attention_mask=self.mask[:b, None, None, :w],  # 4-D: transformers uses it as is
            past_key_values=self.cache,
            cache_position=self.cache_position,
            use_cache=True,
        )
        logits: torch.Tensor = out.logits
        return logits
