"""The trained pair: align model (encoder + projector) and language model, as one module.

Builds ``inputs_embeds`` with each image's prefix spliced in (``splice_image_embeds``), gives the
summed answer loss for :mod:`finetune.loop`, and answers greedily for evaluation.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from finetune.objective import response_loss
from finetune.vr.data import IGNORE, Encoded
from kovr.modeling.align_model import AlignModel
from kovr.modeling.image_prompt import splice_image_embeds
from kovr.modeling.images import decode_data_uri


def load_image(ref: str) -> Image.Image:
    """An image from a data URI or a local path (records were checked when loaded)."""
    if ref.startswith("data:"):
        return decode_data_uri(ref)
    with Image.open(Path(ref)) as image:
        return image.convert("RGB")


class VRModel(nn.Module):
    def __init__(self, align: AlignModel, lm: Any, feature_cache: int = 0) -> None:
        """``lm``: a transformers causal LM, or its peft wrapper while LoRA trains."""
        super().__init__()
        self.align = align
        self.lm = lm
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = feature_cache

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    def features(self, refs: list[str]) -> torch.Tensor:
        """Encoder features per image; a frozen encoder's are kept so each image is encoded once."""
        if self.align.config.train_vision_encoder or self._cache_size == 0:
            return self.align.vision_features(self.align.preprocess([load_image(r) for r in refs]))
        missing = [r for r in dict.fromkeys(refs) if r not in self._cache]
        if missing:
            with torch.no_grad():
                fresh = self.align.vision_features(self.align.preprocess([load_image(r) for r in missing]))
            for ref, feats in zip(missing, fresh, strict=True):
                self._cache[ref] = feats
        batch = torch.stack([self._cache[r] for r in refs])
        for ref in refs:
            self._cache.move_to_end(ref)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return batch

    def prefixes(self, refs: list[str]) -> torch.Tensor:
        return self.align.project(self.features(refs))

    def build_inputs(
        self, items: list[Encoded], left_pad: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs_embeds [B, L, H], attention_mask [B, L], labels [B, L]) with prefixes spliced in."""
        embed = self.lm.get_input_embeddings()
        refs = [it.image for it in items if it.image is not None]
        prefixes = iter(self.prefixes(refs)) if refs else iter(())
        rows, labels = [], []
        for it in items:
            ids = torch.tensor(it.input_ids, device=self.device)
            row, lab = embed(ids), torch.tensor(it.labels, device=self.device)
            if it.image is not None:
                prefix = next(prefixes).to(row.dtype)
                row = splice_image_embeds(row, [prefix], [it.image_pos])
                pad = torch.full((prefix.shape[0],), IGNORE, device=self.device)
                lab = torch.cat([lab[: it.image_pos], pad, lab[it.image_pos:]])
            rows.append(row)
            labels.append(lab)
        return _pad(rows, labels, left_pad)


def _pad(
    rows: list[torch.Tensor], labels: list[torch.Tensor], left: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(r.shape[0] for r in rows)
    hidden = rows[0].shape[1]
    embeds = rows[0].new_zeros((len(rows), length, hidden))
    mask = torch.zeros((len(rows), length), dtype=torch.long, device=rows[0].device)
    out_labels = torch.full((len(rows), length), IGNORE, dtype=torch.long, device=rows[0].device)
    for i, (row, lab) in enumerate(zip(rows, labels, strict=True)):
        span = slice(length - row.shape[0], length) if left else slice(0, row.shape[0])
        embeds[i, span], mask[i, span], out_labels[i, span] = row, 1, lab
    return embeds, mask, out_labels


def loss_sum(model: VRModel, items: list[Encoded]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over answer tokens (the loop divides by the whole step's count)."""
    embeds, mask, labels = model.build_inputs(items)
    return response_loss(model.lm, labels, inputs_embeds=embeds, attention_mask=mask)


@torch.no_grad()
def generate(model: VRModel, prompts: list[Encoded], tokenizer: Any, max_new_tokens: int = 8) -> list[str]:
    """Greedy answers for prompts (labels all IGNORE), left-padded in one batch."""
    embeds, mask, _ = model.build_inputs(prompts, left_pad=True)
    out = model.lm.generate(
        inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]


@torch.no_grad()
def standardize_projector_input(model: VRModel, refs: list[str]) -> None:
    """Fold per-dimension feature standardisation into the projector's first linear layer."""
    projector = model.align.projector
    first = projector[0] if isinstance(projector, nn.Sequential) else projector
    if not isinstance(first, nn.Linear):
        raise TypeError(f"the projector starts with {type(first).__name__}, not a linear layer")
    feats = torch.cat([model.features(refs[i:i + 64]).reshape(-1, first.in_features)
                       for i in range(0, len(refs), 64)])
    mean, std = feats.mean(0), feats.std(0) + 1e-4
    first.weight.div_(std)
    first.bias.sub_(first.weight @ mean)
