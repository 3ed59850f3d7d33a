"""The running batch: one left-padded KV cache for every sequence being decoded.

A new sequence is prefilled alone (so its prompt sees exactly what it would see alone), then its
cache is left-padded to the batch's length and appended as a row. Every decode step runs all rows
in one forward pass, with an attention mask hiding the padding and explicit position ids so each
row's rotary positions count only its own tokens. Finished rows are dropped and padding columns
no row needs any more are trimmed.

The KV tensors live in buffers with spare room: a decode step writes its new column in place
instead of concatenating (and so copying) the whole cache, which on CPU costs as much as the
matrix products. Buffers are rebuilt only when rows join or leave.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    if inputs_embeds is not None:
        out = model(inputs_embeds=inputs_embeds[None], use_cache=True)
        length = inputs_embeds.shape[0]
    else:
        assert input_ids is not None
        out = model(input_ids=input_ids[None], use_cache=True)
        length = input_ids.shape[0]
    logits = out.logits[0]
    return Prefill(
        layers=_layers(out.past_key_values),
        length=length,
        last_logits=logits[-1].float(),
        all_logits=logits.float() if keep_all_logits else None,
    )


class _BufferLayer(DynamicLayer):
    """A cache layer whose keys/values are views into a buffer that grows by doubling."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int = 64) -> None:
        super().__init__()
        batch, heads, length, dim = keys.shape
        self._k = keys.new_empty((batch, heads, length + spare, dim))
        self._v = values.new_empty((batch, heads, length + spare, dim))
        self._k[:, :, :length] = keys
        self._v[:, :, :length] = values
        self._length = length
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._sync()

    def _sync(self) -> None:
        self.keys = self._k[:, :, : self._length]
        self.values = self._v[:, :, : self._length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_kwargs: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        if end > self._k.shape[2]:
            length = self._length
            grown = _BufferLayer(self._k[:, :, :length], self._v[:, :, :length], spare=max(64, self._k.shape[2]))
            self._k, self._v = grown._k, grown._v
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

    def _set(self, layers: KV, mask: torch.Tensor | None) -> None:
        self.mask = mask
        self.cache = Cache(layers=[_BufferLayer(k, v) for k, v in layers]) if layers else None

    def add(self, row: Prefill) -> None:
        """Append one prefilled sequence as the last row."""
        device = row.layers[0][0].device
        row_mask = torch.ones(1, row.length, dtype=torch.long, device=device)
        if self.mask is None:
            self._set(row.layers, row_mask)
            return
        width = max(self.mask.shape[1], row.length)
        layers = [
            (torch.cat([_pad(k, width), _pad(rk, width)]), torch.cat([_pad(v, width), _pad(rv, width)]))
            for (k, v), (rk, rv) in zip(self.layers, row.layers, strict=True)
        ]
        self._set(layers, torch.cat([_pad_mask(self.mask, width), _pad_mask(row_mask, width)]))

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order); trim padding columns nobody needs."""
        if not rows:
            self._set([], None)
            return
        assert self.mask is not None
        index = torch.tensor(rows, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int((mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        layers = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:]) for k, v in self.layers
        ]
        self._set(layers, mask[:, start:])

    def step(self, model: PreTrainedModel, next_ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; returns the logits [B, vocab] for the following token."""
        assert self.mask is not None and self.cache is not None
        positions = self.mask.sum(dim=1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        out = model(
            input_ids=next_ids[:, None],
            attention_mask=_additive_mask(self.mask, model.dtype),
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        return out.logits[:, -1].float()


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


def _pad(t: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - t.shape[2]
    if missing <= 0:
        return t
    shape = (t.shape[0], t.shape[1], missing, t.shape[3])
    return torch.cat([t.new_zeros(shape), t], dim=2)


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - mask.shape[1]
    if missing <= 0:
        return mask
    return torch.cat([mask.new_zeros((mask.shape[0], missing)), mask], dim=1)
