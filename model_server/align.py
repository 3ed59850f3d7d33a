"""The align model: a frozen vision encoder plus a trained projector that turns an image into
prefix embeddings in the language model's embedding space (LLaVA-style).

A checkpoint is one folder (see ``AlignModel.save``):

- ``align_config.json``: :class:`AlignConfig` (vision encoder id and revision, feature layer,
  token selection, projector type, language model, prefix length, preprocessing, prompt template);
- ``projector.safetensors``: the projector weights (and ``prefix_position``, where the config
  asks for a position code);
- ``vision_encoder/`` (optional): a saved vision model, for tiny/random or fine-tuned encoders;
- ``language_model/`` (optional, merged stage-2 LM) or ``lora/`` (optional peft adapter).

This module is independent of training: model_server loads checkpoints through it, and
finetune/vr trains and saves through it. It also owns the one rule for where an image goes in a
prompt (TGI markdown ``![](data:...)``), so that training and serving splice identically.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

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
# Vision towers we know how to read hidden states from; the key is transformers' model_type.
_VISION_CLASSES = {
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
}


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


def build_projector(projector_type: str, vision_hidden: int, lm_hidden: int) -> nn.Module:
    """The projector from vision features to LM embeddings; unknown types are an error."""
    if projector_type == "linear":
        return nn.Linear(vision_hidden, lm_hidden)
    if projector_type == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(vision_hidden, lm_hidden), nn.GELU(), nn.Linear(lm_hidden, lm_hidden))
    raise ValueError(f"Unknown projector type {projector_type!r}; known: {', '.join(PROJECTOR_TYPES)}")


def load_vision_encoder(source: str | Path, revision: str | None = None) -> nn.Module:
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
    return model_class.from_pretrained(str(source), revision=revision)


def _processor_mean_std(source: str, revision: str | None) -> tuple[list[float], list[float]] | None:
    """The encoder's own normalisation from its image processor, when it ships one."""
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(source, revision=revision)
    except (OSError, ValueError):
        return None
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    return (list(map(float, mean)), list(map(float, std))) if mean and std else None


def _has_cls_token(vision: nn.Module) -> bool:
    # SigLIP has no class token: all its positions are patches.
    return "siglip" not in type(vision).__name__.lower()


def _prefix_length(vision: nn.Module, selection: str) -> int:
    cfg = vision.config
    patches = (cfg.image_size // cfg.patch_size) ** 2
    if selection == "pooled":
        return 1
    if selection == "cls_patch" and _has_cls_token(vision):
        return patches + 1
    return patches


class AlignModel(nn.Module):
    """Vision encoder + projector; ``encode`` gives ``[B, num_prefix_tokens, lm_hidden]``."""

    def __init__(self, config: AlignConfig, vision: nn.Module, projector: nn.Module | None = None) -> None:
        super().__init__()
        vcfg = vision.config
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
        if model.prefix_position is not None:
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
        """CLIP-style: RGB, shortest side to image_size (bicubic), centre crop, normalise."""
        size = self.config.image_size
        mean = torch.tensor(self.config.image_mean).view(3, 1, 1)
        std = torch.tensor(self.config.image_std).view(3, 1, 1)
        batch = []
        for image in images:
            rgb = _resize_center_crop(image.convert("RGB"), size)
            data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
            pixels = data.view(size, size, 3).permute(2, 0, 1).float() / 255.0
            batch.append((pixels - mean) / std)
        return torch.stack(batch)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.project(self.vision_features(pixel_values))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features ``[B, N, vision_hidden]`` -> prefix embeddings ``[B, N, lm_hidden]``."""
        prefix = self.projector(features)
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
            return outputs.pooler_output.unsqueeze(1)
        hidden = outputs.hidden_states[self.config.feature_layer]
        if selection == "patch" and _has_cls_token(self.vision):
            return hidden[:, 1:]
        return hidden


def grid_position_code(tokens: int, hidden: int) -> torch.Tensor:
    """``[tokens, hidden]``: column and row as ramps from -1 to 1 along two fixed random unit
    directions, so that "further left" is one direction for attention to read. The scale keeps the
    code at about a third of a projected token's norm at hidden 64 (docs/BENCHMARKS.md, "A model
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
    return (column[:, None] * directions[0] + row[:, None] * directions[1]) * hidden ** 0.5 / 8


def _resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def splice_image_embeds(
    text_embeds: torch.Tensor, image_embeds: list[torch.Tensor], positions: list[int]
) -> torch.Tensor:
    """Insert each image's prefix ``[n, H]`` before token index ``positions[i]`` of ``[T, H]``."""
    if len(image_embeds) != len(positions):
        raise ValueError(f"{len(image_embeds)} images but {len(positions)} positions")
    length = text_embeds.shape[0]
    pieces: list[torch.Tensor] = []
    start = 0
    for pos, embeds in sorted(zip(positions, image_embeds, strict=True), key=lambda pair: pair[0]):
        if not 0 <= pos <= length:
            raise ValueError(f"image position {pos} outside 0..{length}")
        if embeds.dim() != 2 or embeds.shape[1] != text_embeds.shape[1]:
            raise ValueError(f"image embeds {tuple(embeds.shape)} do not match hidden size {text_embeds.shape[1]}")
        pieces.extend([text_embeds[start:pos], embeds.to(text_embeds.dtype)])
        start = pos
    pieces.append(text_embeds[start:])
    return torch.cat(pieces, dim=0)


# --- where images sit in a prompt (shared by training and serving) ---------------------------
IMAGE_MARKDOWN = re.compile(r"!\[[^\]\n]*\]\(([^)\s]+)\)")


def split_prompt(text: str) -> list[str]:
    """Alternating [text, image_url, text, image_url, ..., text] (odd indices are image URLs)."""
    return IMAGE_MARKDOWN.split(text)


def tokenize_with_images(text: str, tokenizer: Any) -> tuple[list[int], list[str], list[int]]:
    """Token ids of the text around each image, the image URLs, and each image's token position.

    Text segments are tokenized separately (no special tokens), so an image never merges with
    the tokens beside it; training uses this same function, so positions match serving.
    """
    return tokenize_many_with_images([text], tokenizer)[0]


def tokenize_many_with_images(texts: list[str], tokenizer: Any) -> list[tuple[list[int], list[str], list[int]]]:
    """:func:`tokenize_with_images` of each text, tokenising each distinct text segment once."""
    splits = [split_prompt(text) for text in texts]
    ids_of = token_ids(tokenizer, [part for parts in splits for part in parts[::2] if part])
    out = []
    for parts in splits:
        ids: list[int] = []
        urls: list[str] = []
        positions: list[int] = []
        for index, part in enumerate(parts):
            if index % 2:
                urls.append(part)
                positions.append(len(ids))
            elif part:
                ids.extend(ids_of[part])
        out.append((ids, urls, positions))
    return out


def token_ids(tokenizer: Any, texts: list[str]) -> dict[str, list[int]]:
    """Each distinct text's token ids (no special tokens), in one tokenizer call: a training set
    repeats the prompt's header and most questions and answers, and a fast tokenizer encodes a
    batch in Rust, where a call per text spent minutes of a large set in Python."""
    distinct = list(dict.fromkeys(texts))
    encoded = tokenizer(distinct, add_special_tokens=False)["input_ids"] if distinct else []
    return dict(zip(distinct, encoded, strict=True))


def decode_data_uri(uri: str, max_bytes: int = 10 * 1024 * 1024, max_pixels: int = 4096 * 4096) -> Image.Image:
    """An image from ``data:image/...;base64,...``; anything else (including URLs) is refused."""
    match = re.fullmatch(r"data:image/[A-Za-z0-9.+-]+;base64,([A-Za-z0-9+/=\s]*)", uri)
    if match is None:
        raise ValueError("이미지는 data:image/...;base64 형식이어야 합니다 (image must be a base64 data URI)")
    if len(match.group(1)) * 3 // 4 > max_bytes:
        raise ValueError(f"이미지가 너무 큽니다 (image larger than {max_bytes} bytes)")
    try:
        raw = base64.b64decode(match.group(1), validate=False)
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > max_pixels:
            raise ValueError(f"이미지 픽셀 수가 너무 많습니다 (more than {max_pixels} pixels)")
        image.load()
    except (binascii.Error, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"이미지를 읽을 수 없습니다 (cannot decode image: {exc})") from None
    return image


def encode_data_uri(image: Image.Image) -> str:
    """PNG data URI of an image (for prompts written by tests, eval and the demo)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --- the language model that goes with a checkpoint ------------------------------------------
def language_model_source(path: str | Path) -> tuple[str, str | None]:
    """(LM folder or id, LoRA folder or None) for a checkpoint: merged LM > base + LoRA > base."""
    folder = Path(path)
    config = AlignConfig.from_json(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
    if (folder / LM_DIR).is_dir():
        return str(folder / LM_DIR), None
    if not config.language_model:
        raise ValueError(f"{folder}: no {LM_DIR}/ and no language_model in {CONFIG_FILE}")
    lora = folder / LORA_DIR
    return config.language_model, str(lora) if lora.is_dir() else None


def load_language_model(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, Any]:
    """The checkpoint's causal LM (LoRA merged if present) and its tokenizer, ready for eval."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, lora = language_model_source(path)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    if lora is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, lora).merge_and_unload()
    tokenizer_source = lora if lora and (Path(lora) / "tokenizer_config.json").is_file() else source
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    return model.to(device).eval(), tokenizer


# --- tests and CPU proofs ----------------------------------------------------------------------
def make_tiny_align_model(
    lm_hidden: int,
    *,
    image_size: int = 32,
    patch_size: int = 8,
    vision_hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    projector_type: str = "mlp2x_gelu",
    token_selection: TokenSelection = "patch",
    feature_layer: int = -1,
    language_model: str = "",
    train_vision_encoder: bool = False,
    prefix_positions: bool = False,
    seed: int = 0,
) -> AlignModel:
    """A random-init tiny CLIP vision tower + projector (no hub access); bundled when saved."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    vcfg = CLIPVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=vision_hidden,
    )
    config = AlignConfig(
        vision_encoder=VISION_DIR,
        feature_layer=feature_layer,
        token_selection=token_selection,
        projector_type=projector_type,
        language_model=language_model,
        image_size=image_size,
        lm_hidden=lm_hidden,
        train_vision_encoder=train_vision_encoder,
        prefix_positions=prefix_positions,
    )
    model = AlignModel(config, CLIPVisionModel(vcfg))
    model.bundle_vision = True
    return model
