"""Optimizer and learning-rate schedule (warm-up, then cosine or linear decay) from a TrainSection.

Reuse::

    from finetune.optim import build_optimizer, build_scheduler
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, total_steps)
"""

from __future__ import annotations

import math
from typing import Any

from finetune.yaml_config import TrainSection


def lr_factor(step: int, *, kind: str, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate before optimizer step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {kind!r}; known: cosine, linear, constant")
    return min_ratio + (1.0 - min_ratio) * decay


def build_optimizer(model: Any, train: TrainSection) -> Any:
    """AdamW over the trainable parameters; no weight decay on biases and norms."""
    import torch

    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (check lora.target_modules)")
    groups = [
        {"params": decay, "weight_decay": train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=train.learning_rate, betas=train.betas
    )


def build_scheduler(optimizer: Any, train: TrainSection, total_steps: int) -> Any:
    from torch.optim.lr_scheduler import LambdaLR

    warmup = train.warmup_for(total_steps)

    def factor(step: int) -> float:
        return lr_factor(step, kind=train.schedule, warmup=warmup, total=total_steps, min_ratio=train.min_lr_ratio)

    return LambdaLR(optimizer, factor)
