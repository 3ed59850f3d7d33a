"""The configuration of `kovr finetune-vr` (stages 1 and 2), built on finetune.yaml_config.

Sections: ``run`` and ``train`` and ``lora`` (shared with `kovr finetune`), ``vision``, ``language_model``,
``data``. ``stage: 1`` trains only the projector on image-caption pairs; ``stage: 2`` trains the
projector plus LoRA on the language model on image-question-answer records mixed with text-only
instructions. See finetune/vr/configs/*.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from finetune.finetune_config import SourceSpec, TinyModelSection
from finetune.yaml_config import ConfigModel, LoraSection, RunSection, TrainSection
from kovr.prompt import TEMPLATES

# Example configurations (tiny CPU stages, Polyglot-ko 1.3B stages), used by tests and the research recipes.
CONFIGS = Path(__file__).resolve().parent / "configs"


class TinyVisionSection(ConfigModel):
    """A random-init small CLIP vision tower (tests and the CPU proof; no pretrained weights here)."""

    image_size: int = Field(default=64, ge=16)
    patch_size: int = Field(default=8, ge=2)
    hidden_size: int = Field(default=64, ge=8)
    num_layers: int = Field(default=2, ge=1)
    num_heads: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> TinyVisionSection:
        if self.image_size % self.patch_size:
            raise ValueError("vision.tiny.image_size must be a multiple of vision.tiny.patch_size")
        if self.hidden_size % self.num_heads:
            raise ValueError("vision.tiny.hidden_size must be divisible by vision.tiny.num_heads")
        return self


class VisionSection(ConfigModel):
    # Hub id or local folder of a CLIP/SigLIP model; None: the tiny random encoder below.
    encoder: str | None = "openai/clip-vit-large-patch14"
    revision: str | None = None
    feature_layer: int = -2
    token_selection: Literal["patch", "cls_patch", "pooled"] = "patch"
    projector_type: Literal["linear", "mlp2x_gelu"] = "mlp2x_gelu"
    # The pretrained encoder stays frozen. Unfreezing is meant for the tiny random encoder of the
    # CPU proof, whose random features are weaker than a pretrained CLIP's.
    train_encoder: bool = False
    # "data": a fresh projector's first layer starts by standardising the encoder's features
    # (mean/std over training images); helps random encoders, whose features share a large offset.
    projector_init: Literal["default", "data"] = "default"
    # A trainable row/column code on each patch's prefix token (kovr/modeling/projector.py,
    # grid_position_code): for encoders whose features say little about where a patch is.
    prefix_positions: bool = False
    tiny: TinyVisionSection = TinyVisionSection()
    # Frozen encoders: keep each image's features in memory after its first use (at most this many).
    feature_cache: int = Field(default=20000, ge=0)


class TinyLMSection(TinyModelSection):
    """A tiny GPT-NeoX with a BPE trained on the data, pre-trained on text before stage 1."""

    pretrain_steps: int = Field(default=300, ge=1)
    pretrain_learning_rate: float = Field(default=3e-3, gt=0)
    pretrain_batch_size: int = Field(default=32, ge=1)


class LanguageModelSection(ConfigModel):
    # Hub id or folder of the causal LM (the merged Polyglot-ko from `kovr merge`); None: tiny.
    name_or_path: str | None = None
    revision: str | None = None
    tiny: TinyLMSection = TinyLMSection()
    # How stage 2 trains the LM: LoRA (the default), all weights (tiny CPU runs), or not at all.
    stage2_training: Literal["lora", "full", "frozen"] = "lora"
    # Stage 2 output: LoRA merged into language_model/ (what TGI/model_server load) or only lora/.
    save: Literal["merged", "adapter"] = "merged"


class VRDataSection(ConfigModel):
    # A `kovr vr-data` folder: train_captions.jsonl (stage 1), train_vqa.jsonl (stage 2),
    # test_vqa.jsonl (evaluation), unless the lists below name files.
    dir: Path | None = None
    captions: list[Path] = Field(default_factory=list)
    vqa: list[Path] = Field(default_factory=list)
    eval_vqa: Path | None = None
    eval_max: int = Field(default=300, ge=0, description="evaluation questions per eval (0: none)")
    # Text-only instruction data for stage 2 (keeps the LM's Korean chat ability).
    text: list[SourceSpec] = Field(default_factory=list)
    include_demo_instructions: bool = True  # kovr/data/ko_instructions.jsonl when present
    text_ratio: float = Field(default=0.1, ge=0, le=10, description="text-only examples per image example")
    # False trains the text-only baseline: the same records and steps without the image prefix.
    images: bool = True
    template: str = "kullm"
    max_seq_len: int = Field(default=512, ge=16)
    # "grouped": batches of similar length (short image questions apart from long instructions);
    # "padded": a plain shuffle, every batch padded to its longest example.
    batching: Literal["grouped", "padded"] = "grouped"
    max_records: int | None = Field(default=None, ge=1, description="per file, for quick runs")

    @model_validator(mode="after")
    def _check(self) -> VRDataSection:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown prompt template {self.template!r}; known: {', '.join(TEMPLATES)}")
        return self

    def caption_files(self) -> list[Path]:
        return self.captions or ([self.dir / "train_captions.jsonl"] if self.dir else [])

    def vqa_files(self) -> list[Path]:
        return self.vqa or ([self.dir / "train_vqa.jsonl"] if self.dir else [])

    def eval_file(self) -> Path | None:
        if self.eval_vqa is not None:
            return self.eval_vqa
        candidate = self.dir / "test_vqa.jsonl" if self.dir else None
        return candidate if candidate is not None and candidate.is_file() else None


class VRConfig(ConfigModel):
    stage: Literal[1, 2]
    # Stage 2 starts from a stage-1 checkpoint (its projector, encoder and language model).
    init_from: Path | None = None
    run: RunSection = RunSection()
    train: TrainSection = TrainSection()
    vision: VisionSection = VisionSection()
    language_model: LanguageModelSection = LanguageModelSection()
    lora: LoraSection = LoraSection()
    data: VRDataSection = VRDataSection()

    @model_validator(mode="after")
    def _check(self) -> VRConfig:
        if self.stage == 1 and not self.data.caption_files():
            raise ValueError("stage 1 needs image-caption data: data.dir or data.captions")
        if self.stage == 2 and not self.data.vqa_files():
            raise ValueError("stage 2 needs image-question-answer data: data.dir or data.vqa")
        if self.stage == 2 and self.init_from is None and self.language_model.name_or_path is None:
            raise ValueError("stage 2 needs init_from (a stage-1 checkpoint) or language_model.name_or_path")
        if self.train.precision == "fp16":
            raise ValueError("train.precision fp16 is not supported; use bf16 or fp32")
        return self
