"""The align model's checkpoint layout and configuration (``align_config.json``).

A checkpoint is one folder (see :meth:`kovr.modeling.align_model.AlignModel.save`):

- ``align_config.json``: :class:`AlignConfig` (vision encoder id and revision, feature layer,
  token selection, projector type, language model, prefix length, preprocessing, prompt template);
- ``projector.safetensors``: the projector weights (and ``prefix_position``, where the config
  asks for a position code);
- ``vision_encoder/`` (optional): a saved vision model, for tiny/random or fine-tuned encoders;
- ``language_model/`` (optional, merged stage-2 LM) or ``lora/`` (optional peft adapter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

CONFIG_FILE = "align_config.json"
PROJECTOR_FILE = "projector.safetensors"
POSITION_KEY = "prefix_position"  # in PROJECTOR_FILE, next to the projector's own weights
VISION_DIR = "vision_encoder"
LM_DIR = "language_model"
LORA_DIR = "lora"

TokenSelection = Literal["patch", "cls_patch", "pooled"]
TOKEN_SELECTIONS: tuple[str, ...] = ("patch", "cls_patch", "pooled")
PROJECTOR_TYPES: tuple[str, ...] = ("linear", "mlp2x_gelu")
# CLIP's own normalisation (openai/clip-vit-*); used when the config does not say otherwise.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class AlignConfig:
    """Everything needed to rebuild the align model from its folder (``align_config.json``)."""

    vision_encoder: str = "openai/clip-vit-large-patch14"
    vision_revision: str | None = None
    feature_layer: int = -2
    token_selection: TokenSelection = "patch"
    projector_type: str = "mlp2x_gelu"
    language_model: str = ""
    language_revision: str | None = None
    num_prefix_tokens: int = 0  # filled in from the encoder's geometry when the model is built
    image_size: int = 224
    image_mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(CLIP_STD))
    prompt_template: str | dict[str, Any] = "kullm"
    vision_hidden: int = 0
    lm_hidden: int = 0
    # Off by default (pretrained encoder stays frozen); the tiny CPU proof may turn it on.
    train_vision_encoder: bool = False
    # A trainable 2-D position code added to each patch's prefix token. Pretrained encoders carry
    # position in their features; a tiny random one does not (its position embeddings are drowned
    # by patch content), and the LM has no absolute position of its own to tell cells apart.
    prefix_positions: bool = False

    def __post_init__(self) -> None:
        if self.token_selection not in TOKEN_SELECTIONS:
            raise ValueError(
                f"Unknown token selection {self.token_selection!r}; known: {', '.join(TOKEN_SELECTIONS)}"
            )
        if self.projector_type not in PROJECTOR_TYPES:
            raise ValueError(
                f"Unknown projector type {self.projector_type!r}; known: {', '.join(PROJECTOR_TYPES)}"
            )
        if self.image_size < 1 or len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError("image_size must be positive and image_mean/image_std have 3 values")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlignConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{CONFIG_FILE}: unknown fields {', '.join(unknown)}")
        return cls(**data)
