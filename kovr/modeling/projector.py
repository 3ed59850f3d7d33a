"""The projector from vision features to language-model embeddings, and the optional grid position code."""

from __future__ import annotations

import torch
from torch import nn

from kovr.modeling.align_config import PROJECTOR_TYPES


def build_projector(projector_type: str, vision_hidden: int, lm_hidden: int) -> nn.Module:
    """The projector from vision features to LM embeddings; unknown types are an error."""
    if projector_type == "linear":
        return nn.Linear(vision_hidden, lm_hidden)
    if projector_type == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(vision_hidden, lm_hidden), nn.GELU(), nn.Linear(lm_hidden, lm_hidden))
    raise ValueError(f"Unknown projector type {projector_type!r}; known: {', '.join(PROJECTOR_TYPES)}")


def grid_position_code(tokens: int, hidden: int) -> torch.Tensor:
    """``[tokens, hidden]``: column and row as ramps from -1 to 1 along two fixed random unit
    directions, so that "further left" is one direction for attention to read. The scale keeps the
    code at about a third of a projected token's norm at hidden 64 (docs/lab/2026-11-30-vr-proof.md, "A model
    that finds objects, told where they are").
    """
    side = round(tokens ** 0.5)
    if side * side != tokens or side < 2:
        raise ValueError(f"prefix_positions needs a square grid of patches, not {tokens} tokens")
    generator = torch.Generator().manual_seed(1234)
    directions = torch.randn(2, hidden, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True)
    ramp = torch.linspace(-1.0, 1.0, side)
    column, row = ramp.repeat(side), ramp.repeat_interleave(side)
    code: torch.Tensor = (column[:, None] * directions[0] + row[:, None] * directions[1]) * hidden ** 0.5 / 8
    return code
