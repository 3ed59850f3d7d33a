"""The language-model loss over response tokens only (prompt and padding labels are IGNORE).

The LM head runs only at the positions that predict a response token (``logits_to_keep``): the
prompt's logits were computed and thrown away, and at a small vocabulary or a long prompt they are
a large share of a step (docs/lab/2026-11-30-finetune-throughput.md, "Logits only where the loss is").
"""

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
    return response_loss(model, batch.labels, input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=batch.position_ids, use_cache=False)


def response_loss(model: Any, labels: Any, **inputs: Any) -> tuple[Any, int]:
    """``loss_sum`` for any causal LM call (``input_ids`` or ``inputs_embeds``), logits only where needed.

    A position is kept when its next token carries loss in any row of the batch, so the kept logits
    are the same tensor of positions for every row, as ``logits_to_keep`` takes them.
    """
    import torch.nn.functional as F

    targets = labels[:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    logits = model(**inputs, logits_to_keep=keep).logits
    if logits.shape[1] != keep.numel():  # a model that ignores logits_to_keep returns every position
        logits = logits[:, keep]
    kept = targets[:, keep]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), kept.flatten(), ignore_index=IGNORE, reduction="sum")
    return loss, int((kept != IGNORE).sum())


def every_position_loss(model: Any, batch: Batch) -> tuple[Any, int]:
    """``loss_sum`` with the logits of every position: the reference the tests and the bench compare with."""
    import torch.nn.functional as F

    logits = forward_logits(model, batch)[:, :-1]
    targets = batch.labels[:, 1:]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum")
    return loss, int((targets != IGNORE).sum())
