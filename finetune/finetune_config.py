"""The configuration of `kovr finetune` (LoRA instruction tuning), built on finetune.yaml_config.

Sections: ``run`` and ``train`` (shared with every KoVR trainer), ``model``, ``data``, ``lora``, ``eval``.
See finetune/configs/*.yaml for complete examples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from finetune.eval_prompts import default_eval_prompts
from finetune.yaml_config import ConfigModel, LoraSection, RunSection, TrainSection
from kovr.prompt import TEMPLATES


class TinyModelSection(ConfigModel):
    """A random GPT-NeoX built in-process (tests, CPU demos); its tokenizer is trained on the data."""

    hidden_size: int = Field(default=64, ge=8)
    num_layers: int = Field(default=2, ge=1)
    num_heads: int = Field(default=4, ge=1)
    intermediate_size: int = Field(default=256, ge=8)
    vocab_size: int = Field(default=1024, ge=300, description="target size of the BPE trained on the data")
    rotary_pct: float = Field(default=0.5, gt=0, le=1)
    tokenizer_records: int = Field(default=20000, ge=1, description="records used to train the tokenizer")
    # True as in Polyglot-ko: each layer's MLP reads the layer's input. False puts an MLP after each
    # attention (GPT-2's layout), which a 2-layer model needs to combine what its last attention read.
    parallel_residual: bool = True

    @model_validator(mode="after")
    def _check(self) -> TinyModelSection:
        if self.hidden_size % self.num_heads:
            raise ValueError("model.tiny.hidden_size must be divisible by model.tiny.num_heads")
        return self


class ModelSection(ConfigModel):
    # Hub id (EleutherAI/polyglot-ko-1.3b) or a local folder (e.g. the demo model); None: tiny random model.
    name_or_path: str | None = None
    revision: str | None = None
    tiny: TinyModelSection = TinyModelSection()
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _expand_home(self) -> ModelSection:
        if self.name_or_path is not None and self.name_or_path.startswith("~"):
            self.name_or_path = str(Path(self.name_or_path).expanduser())
        return self


class SourceSpec(ConfigModel):
    """One data source: a hub dataset by name, a local JSON / JSONL / Parquet file (relative paths
    are relative to the working directory), or the Korean set shipped with KoVR (builtin)."""

    name: str | None = Field(default=None, description="hub dataset id, e.g. nlpai-lab/kullm-v2")
    path: Path | None = None
    builtin: Literal["ko_instructions"] | None = Field(default=None, description="kovr/data/ko_instructions.jsonl")
    split: str = "train"
    revision: str | None = None
    weight: float = Field(default=1.0, gt=0, description="1 = every record once; 0.5 = a seeded half; 2 = twice")
    max_records: int | None = Field(default=None, ge=1, description="read at most this many (before cleaning)")
    optional: bool = Field(default=False, description="skip (and say so) when the file is absent")

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        if sum(x is not None for x in (self.name, self.path, self.builtin)) != 1:
            raise ValueError("each data source needs exactly one of name (hub), path (local file) or builtin")
        if self.path is not None and self.path.suffix.lower() not in {".json", ".jsonl", ".parquet"}:
            raise ValueError(f"{self.path}: local data must be .json, .jsonl or .parquet")
        return self

    @property
    def label(self) -> str:
        if self.builtin is not None:
            return f"kovr:{self.builtin}"
        return self.name if self.name is not None else str(self.path)


class DataSection(ConfigModel):
    sources: list[SourceSpec] = Field(min_length=1)
    template: str = "kullm"
    max_seq_len: int = Field(default=512, ge=16)
    min_response_tokens: int = Field(default=1, ge=1)
    dedupe: bool = True
    heldout: float = Field(default=0.02, ge=0, description="<1: fraction of the records; >=1: a count")
    heldout_max: int = Field(default=500, ge=0)
    batching: Literal["packed", "grouped", "padded"] = "packed"

    @model_validator(mode="after")
    def _check(self) -> DataSection:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown prompt template {self.template!r}; known: {', '.join(TEMPLATES)}")
        if self.heldout >= 1 and self.heldout != int(self.heldout):
            raise ValueError("data.heldout must be a fraction below 1 or a whole count")
        return self


class EvalPrompt(ConfigModel):
    instruction: str = Field(min_length=1)
    input: str = ""
    reference: str = Field(default="", description="a good answer; gives the chrF of the eval answers")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        return {"instruction": value} if isinstance(value, str) else value


class EvalSection(ConfigModel):
    # Plain strings or {instruction, input}; default: KoVR's fixed Korean test prompts.
    prompts: list[EvalPrompt] = Field(default_factory=lambda: [EvalPrompt(**p) for p in default_eval_prompts()])
    max_new_tokens: int = Field(default=64, ge=1)
    # Judge-free measures of the answers (Hangul share, repetition, empty, U+FFFD, template leak,
    # chrF against references) logged at each eval step; cheap, no judge (kovr.chat_metrics).
    chat_metrics: bool = True
    heldout_batches: int | None = Field(default=None, ge=1, description="None: the whole held-out set")


class FinetuneConfig(ConfigModel):
    run: RunSection = RunSection()
    model: ModelSection = ModelSection()
    data: DataSection
    lora: LoraSection = LoraSection()
    train: TrainSection = TrainSection()
    eval: EvalSection = EvalSection()

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.train.precision == "fp16":
            raise ValueError("train.precision fp16 is not supported for LoRA here; use bf16 or fp32")
        return self
