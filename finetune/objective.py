"""The language-model loss over response tokens only (prompt and padding labels are IGNORE)."""

from __future__ import annotations

from typing import Any

from finetune.batching import Batch
from finetune.data import IGNORE


def forward_logits(model: Any, batch: Batch) -> Any:
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
    )
    return out.logits


def loss_sum(model: Any, batch: Batch) -> tuple[Any, int]:
    """Summed next-token cross-entropy over the tokens that carry loss, and how many there are."""
    import torch.nn.functional as F

    logits = forward_logits(model, batch)
    targets = batch.labels[:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((targets != IGNORE).sum())
