"""The running batch: one left-padded KV cache for every sequence being decoded.

New prompts are prefilled together, right-padded, in one forward pass (under the causal mask a
prompt sees only its own tokens, so each gets what it would get alone), then each cache is
left-padded to the batch's length and appended as a row. Every decode step runs all rows
in one forward pass, with an attention mask hiding the padding and explicit position ids so each
row's rotary positions count only its own tokens. Finished rows are dropped and padding columns
no row needs any more are trimmed.

The KV tensors live in buffers with spare room: a decode step writes its new column in place
instead of concatenating (and so copying) the whole cache, which on CPU costs as much as the
matrix products. Buffers are rebuilt only when rows join or leave.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Prefill:
    """The result of running one prompt: its cache and the logits for the first new token."""

    layers: KV
    length: int
    last_logits: torch.Tensor
    all_logits: torch.Tensor | None = None


def prefill(
    model: PreTrainedModel,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    keep_all_logits: bool = False,
) -> Prefill:
    """Run one prompt (ids [T] or embeddings [T, H]) through the model, keeping its KV cache."""
    # Logits for every position are [T, vocabulary]: only computed when they are asked for.
    last_only = {"logits_to_keep": 1} if not keep_all_logits and _keeps_logits(model) else {}
    if inputs_embeds is not None:
        out = model(inputs_embeds=inputs_embeds[None], use_cache=True, **last_only)
        length = inputs_embeds.shape[0]
    else:
        assert input_ids is not None
        out = model(input_ids=input_ids[None], use_cache=True, **last_only)
        length = input_ids.shape[0]
    logits = out.logits[0]
    return Prefill(
        layers=_layers(out.past_key_values),
        length=length,
        last_logits=logits[-1].float(),
        all_logits=logits.float() if keep_all_logits else None,
    )


def prefill_batch(model: PreTrainedModel, prompts: list[torch.Tensor]) -> list[Prefill]:
    """Run several prompts (ids [T_i], or embeddings [T_i, H] for prompts with images) in one forward pass.

    The prompts are right-padded to the longest. No attention mask is needed: under the causal mask
    a real token only sees the tokens before it, which are its own prompt's, so each row's cache and
    last logits are what it gets alone (up to the float rounding of a wider matrix product). When
    any prompt is embeddings, the others are looked up in the model's embedding table (what the
    model does with ids itself) and the pass runs on embeddings. Only the logits at each prompt's
    last position are computed.
    """
    lengths = [int(p.shape[0]) for p in prompts]
    device = prompts[0].device
    if any(p.dim() == 2 for p in prompts):
        table = model.get_input_embeddings()
        rows = [p if p.dim() == 2 else table(p) for p in prompts]
        embeds = rows[0].new_zeros((len(rows), max(lengths), rows[0].shape[1]))
        for row, part in enumerate(rows):
            embeds[row, : lengths[row]] = part
        inputs: dict[str, torch.Tensor] = {"inputs_embeds": embeds}
    else:
        ids = torch.zeros(len(prompts), max(lengths), dtype=torch.long, device=device)
        for row, prompt in enumerate(prompts):
            ids[row, : lengths[row]] = prompt
        inputs = {"input_ids": ids}
    ends = sorted({n - 1 for n in lengths})
    if _keeps_logits(model):
        out = model(**inputs, use_cache=True, logits_to_keep=torch.tensor(ends, device=device))
        column = {end: i for i, end in enumerate(ends)}
    else:
        out = model(**inputs, use_cache=True)
        column = {end: end for end in ends}
    layers = _layers(out.past_key_values)
    return [
        Prefill(
            layers=[(k[row : row + 1, :, :n], v[row : row + 1, :, :n]) for k, v in layers],
            length=n,
            last_logits=out.logits[row, column[n - 1]].float(),
        )
        for row, n in enumerate(lengths)
    ]


def _keeps_logits(model: PreTrainedModel) -> bool:
    """Whether the model can compute logits for chosen positions only (most transformers LMs can)."""
    return _forward_takes(type(model).forward, "logits_to_keep")


@functools.cache
def _forward_takes(forward: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(forward).parameters


class _BufferLayer(DynamicLayer):
    """A cache layer whose keys/values are views into a buffer [B, heads, capacity, dim] that grows by doubling."""

    def __init__(self, k_buffer: torch.Tensor, v_buffer: torch.Tensor, length: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # transformers' DynamicLayer.__init__ has no annotations
        self._k, self._v, self._length = k_buffer, v_buffer, length
        self.dtype, self.device, self.is_initialized = k_buffer.dtype, k_buffer.device, True
        self._sync()

    @classmethod
    def stacked(cls, keys: list[torch.Tensor], values: list[torch.Tensor], spare: int = 64) -> _BufferLayer:
        """Rows of several caches, each right-aligned (left-padded with zeros) to the longest, in one buffer."""
        return cls(_stack(keys, spare), _stack(values, spare), max(k.shape[2] for k in keys))

    def _sync(self) -> None:
        self.keys = self._k[:, :, : self._length]
        self.values = self._v[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_kwargs: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._k.shape[2]:
            spare = max(64, self._k.shape[2])
            keys, values = self._k[:, :, : self._length], self._v[:, :, : self._length]
            self._k, self._v = _stack([keys], spare), _stack([values], spare)
        self._k[:, :, self._length : end] = key_states
        self._v[:, :, self._length : end] = value_states
        self._length = end
        self._sync()
        return self._k[:, :, :end], self._v[:, :, :end]


class BatchCache:
    """KV per layer [B, heads, L, head_dim] plus an attention mask [B, L] (0 = padding)."""

    def __init__(self) -> None:
        self.cache: Cache | None = None
        self.mask: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[0])

    @property
    def layers(self) -> KV:
        return [] if self.cache is None else _layers(self.cache)

    def _set(self, parts: list[KV], masks: list[torch.Tensor]) -> None:
        """Stack these groups of rows (each group's KV per layer, and its mask) into fresh buffers."""
        if not masks:
            self.cache, self.mask = None, None
            return
        width = max(m.shape[1] for m in masks)
        self.mask = torch.cat([_pad_mask(m, width) for m in masks])
        self.cache = Cache(layers=[
            _BufferLayer.stacked([part[i][0] for part in parts], [part[i][1] for part in parts])
            for i in range(len(parts[0]))
        ])

    def add(self, *rows: Prefill) -> None:
        """Append prefilled sequences as the last rows, in one rebuild of the buffers for all of them.

        Rows that arrive together join together: rebuilding once per row made a burst of N requests
        copy the whole cache N times.
        """
        if not rows:
            return
        device = rows[0].layers[0][0].device
        parts = [self.layers] if self.mask is not None else []
        masks = [self.mask] if self.mask is not None else []
        parts += [row.layers for row in rows]
        masks += [torch.ones(1, row.length, dtype=torch.long, device=device) for row in rows]
        self._set(parts, masks)

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order); trim padding columns nobody needs."""
        if not rows:
            self._set([], [])
            return
        assert self.mask is not None
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int((mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        layers = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:]) for k, v in self.layers
        ]
        self._set([layers], [mask[:, start:]])

    def clear(self) -> None:
        self._set([], [])

    def step(self, model: PreTrainedModel, next_ids: torch.Tensor | list[int]) -> torch.Tensor:
        """Feed one token per row; returns the logits [B, vocab] for the following token."""
        assert self.mask is not None and self.cache is not None
        if not isinstance(next_ids, torch.Tensor):
            next_ids = torch.tensor(next_ids, dtype=torch.long, device=self.mask.device)
        positions = self.mask.sum(dim=1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        out = model(
            input_ids=next_ids[:, None],
            attention_mask=_additive_mask(self.mask, model.dtype),
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        logits: torch.Tensor = out.logits[:, -1].float()
        return logits


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, L] 0/1 → [B, 1, 1, L] additive mask for the one new query per row.

    Given a 2-D mask with padding, transformers builds the 4-D mask with torch.vmap on every
    step, which on CPU costs more than the model itself; for a single query position (decode) the
    causal part is trivial, so the 4-D mask is just the padding, built here in one operation.
    """
    blocked = torch.finfo(dtype).min
    return ((1 - mask) * blocked).to(dtype)[:, None, None, :]


def _layers(cache: Cache) -> KV:
    pairs: KV = []
    for layer in cache.layers:
        assert layer.keys is not None and layer.values is not None
        pairs.append((layer.keys, layer.values))
    return pairs


def _stack(parts: list[torch.Tensor], spare: int) -> torch.Tensor:
    """[B_i, H, L_i, D] tensors -> one zeroed [sum B_i, H, max L_i + spare, D] buffer, each right-aligned.

    Padding must be zeros, not uninitialised memory: a masked position gets attention weight 0,
    and 0 times a NaN left in the buffer would still be NaN.
    """
    width = max(t.shape[2] for t in parts)
    first = parts[0]
    buffer = first.new_zeros((sum(t.shape[0] for t in parts), first.shape[1], width + spare, first.shape[3]))
    row = 0
    for t in parts:
        buffer[row : row + t.shape[0], :, width - t.shape[2] : width] = t
        row += t.shape[0]
    return buffer


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - mask.shape[1]
    if missing <= 0:
        return mask
    return torch.cat([mask.new_zeros((mask.shape[0], missing)), mask], dim=1)
