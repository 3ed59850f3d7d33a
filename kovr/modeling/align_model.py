"""The align model: a frozen vision encoder plus a trained projector that turns an image into
prefix embeddings in the language model's embedding space (LLaVA-style).

model_server loads checkpoints through it and finetune trains and saves through it; the folder's
layout is in :mod:`kovr.modeling.align_config`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch import nn

from kovr.modeling.align_config import CONFIG_FILE, POSITION_KEY, PROJECTOR_FILE, VISION_DIR, AlignConfig
from kovr.modeling.images import preprocess_images
from kovr.modeling.projector import build_projector, grid_position_code

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Vision towers we know how to read hidden states from; the key is transformers' model_type.
_VISION_CLASSES = {
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
}


def load_vision_encoder(source: str | Path, revision: str | None = None) -> PreTrainedModel:
    """A vision tower by hub id or local folder (CLIP or SigLIP; a full CLIP checkpoint works too)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(source), revision=revision)
    class_name = _VISION_CLASSES.get(config.model_type)
    if class_name is None:
        raise ValueError(
            f"vision encoder {source!s} has model_type {config.model_type!r}; "
            f"supported: {', '.join(sorted(_VISION_CLASSES))}"
        )
    model_class = getattr(transformers, class_name)
    vision: PreTrainedModel = model_class.from_pretrained(str(source), revision=revision)
    return vision


def _processor_mean_std(source: str, revision: str | None) -> tuple[list[float], list[float]] | None:
    """The encoder's own normalisation from its image processor, when it ships one."""
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError):
        return None
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    return (list(map(float, mean)), list(map(float, std))) if mean and std else None


def _has_cls_token(vision: PreTrainedModel) -> bool:
    # SigLIP has no class token: all its positions are patches.
    return "siglip" not in type(vision).__name__.lower()


def _prefix_length(vision: PreTrainedModel, selection: str) -> int:
    cfg: Any = vision.config  # a CLIP or SigLIP vision config: its fields depend on the model type
    patches = int(cfg.image_size // cfg.patch_size) ** 2
    if selection == "pooled":
        return 1
    if selection == "cls_patch" and _has_cls_token(vision):
        return patches + 1
    return patches


class AlignModel(nn.Module):
    """Vision encoder + projector; ``encode`` gives ``[B, num_prefix_tokens, lm_hidden]``."""

    def __init__(self, config: AlignConfig, vision: PreTrainedModel, projector: nn.Module | None = None) -> None:
        super().__init__()
        vcfg: Any = vision.config  # a CLIP or SigLIP vision config: its fields depend on the model type
        config.vision_hidden = int(vcfg.hidden_size)
        config.image_size = int(vcfg.image_size)  # preprocessing must give the encoder its own size
        if config.lm_hidden < 1:
            raise ValueError("AlignConfig.lm_hidden must be the language model's hidden size")
        config.num_prefix_tokens = _prefix_length(vision, config.token_selection)
        if config.prefix_positions and config.token_selection != "patch":
            raise ValueError("prefix_positions needs token_selection 'patch' (a grid of patches)")
        n_layers = int(vcfg.num_hidden_layers)
        if not -(n_layers + 1) <= config.feature_layer <= n_layers:
            raise ValueError(f"feature_layer {config.feature_layer} out of range for {n_layers} layers")
        self.config = config
        self.vision = vision
        self.projector = projector or build_projector(config.projector_type, config.vision_hidden, config.lm_hidden)
        self.prefix_position = (
            nn.Parameter(grid_position_code(config.num_prefix_tokens, config.lm_hidden))
            if config.prefix_positions else None
        )
        self.set_vision_trainable(config.train_vision_encoder)
        # Whether `save` writes the encoder into the folder (tiny/random/fine-tuned encoders).
        self.bundle_vision = config.train_vision_encoder

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: AlignConfig) -> AlignModel:
        """A fresh (untrained) projector on the encoder named in the config."""
        vision = load_vision_encoder(config.vision_encoder, config.vision_revision)
        mean_std = _processor_mean_std(config.vision_encoder, config.vision_revision)
        if mean_std is not None:
            config.image_mean, config.image_std = mean_std
        return cls(config, vision)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> AlignModel:
        from safetensors.torch import load_file

        folder = Path(path)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"not an align-model checkpoint (no {CONFIG_FILE}): {folder}")
        config = AlignConfig.from_json(json.loads(config_path.read_text(encoding="utf-8")))
        bundled = (folder / VISION_DIR).is_dir()
        vision = load_vision_encoder(folder / VISION_DIR if bundled else config.vision_encoder,
                                     None if bundled else config.vision_revision)
        model = cls(config, vision)
        model.bundle_vision = bundled
        state = load_file(str(folder / PROJECTOR_FILE))
        position = state.pop(POSITION_KEY, None)
        if (position is None) != (model.prefix_position is None):
            raise ValueError(f"{folder}: {PROJECTOR_FILE} and {CONFIG_FILE} disagree on prefix_positions")
        model.projector.load_state_dict(state)
        if model.prefix_position is not None and position is not None:
            model.prefix_position.data.copy_(position)
        model.eval()
        return model.to(device=device, dtype=dtype)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.projector.state_dict().items()}
        if self.prefix_position is not None:
            state[POSITION_KEY] = self.prefix_position.detach().contiguous().cpu()
        save_file(state, str(folder / PROJECTOR_FILE))
        if self.bundle_vision:
            self.vision.save_pretrained(folder / VISION_DIR)
        text = json.dumps(self.config.to_json(), ensure_ascii=False, indent=2)
        (folder / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
        return folder

    def projection_parameters(self) -> list[nn.Parameter]:
        """What every stage trains: the projector and, where there is one, the position code."""
        extra = [self.prefix_position] if self.prefix_position is not None else []
        return [*self.projector.parameters(), *extra]

    def set_vision_trainable(self, trainable: bool) -> None:
        for param in self.vision.parameters():
            param.requires_grad_(trainable)
        self.config.train_vision_encoder = trainable

    # --- inference -------------------------------------------------------------------------
    @property
    def num_prefix_tokens(self) -> int:
        return self.config.num_prefix_tokens

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """CLIP-style preprocessing at the encoder's own size and normalisation."""
        return preprocess_images(images, self.config.image_size, self.config.image_mean, self.config.image_std)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.project(self.vision_features(pixel_values))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features ``[B, N, vision_hidden]`` -> prefix embeddings ``[B, N, lm_hidden]``."""
        prefix: torch.Tensor = self.projector(features)
        if self.prefix_position is not None:
            prefix = prefix + self.prefix_position.to(prefix.dtype)
        return prefix

    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Selected encoder features ``[B, num_prefix_tokens, vision_hidden]`` (before the projector).

        Training caches these when the encoder is frozen, so each image is encoded only once.
        """
        param = next(self.projector.parameters())
        pixel_values = pixel_values.to(device=param.device, dtype=param.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.train_vision_encoder):
            return self._select(self.vision(pixel_values=pixel_values, output_hidden_states=True))

    def _select(self, outputs: Any) -> torch.Tensor:
        selection = self.config.token_selection
        if selection == "pooled":
            pooled: torch.Tensor = outputs.pooler_output
            return pooled.unsqueeze(1)
        hidden: torch.Tensor = outputs.hidden_states[self.config.feature_layer]
        if selection == "patch" and _has_cls_token(self.vision):
            return hidden[:, 1:]
        return hidden
