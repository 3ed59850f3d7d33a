"""Loading the served model: any transformers causal LM (hub id or folder), an optional peft adapter.

bf16 on CUDA, fp32 on CPU. The prompt template saved beside the model (or its adapter) is the one
the model was trained with; `kovr_model.json` says whether it is the embedded demo model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from kovr.modeling import META_FILE
from kovr.prompt import PromptTemplate, load_template
from kovr.settings import Settings


class ModelNotFoundError(RuntimeError):
    """The configured model cannot be found; the message says what to do."""


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    template: PromptTemplate
    device: torch.device
    dtype: torch.dtype
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        return bool(self.meta.get("demo", False))

    @property
    def eos_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (self.tokenizer.eos_token_id, configured):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list):
                ids.update(int(v) for v in value)
        return ids

    @property
    def special_ids(self) -> set[int]:
        return set(self.tokenizer.all_special_ids) | self.eos_ids


def pick_device(setting: str) -> torch.device:
    """The device to serve on; choosing CUDA also sets the process's attention backends for serving."""
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        _avoid_cudnn_attention()
        return torch.device("cuda")
    return torch.device("cpu")


def _avoid_cudnn_attention() -> None:
    """Serve attention with the flash / memory-efficient SDPA kernels, not cuDNN's.

    Recent torch prefers cuDNN attention on Hopper, and cuDNN builds an execution plan for every new
    shape. Decoding meets a new key length at every step (and the batch cache's widths change as rows
    come and go), so a plan is hardly ever reused. On an H200, turning it off made one stream decode
    6.7x faster (59.5 against 8.9 tokens/s; docs/lab/2026-11-27-model-server.md).
    """
    torch.backends.cuda.enable_cudnn_sdp(False)


def model_source(settings: Settings) -> str:
    """The model to serve: settings.model, else the demo model folder (which must exist)."""
    if settings.model:
        return settings.model
    folder = settings.demo_model_dir
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"데모 모델이 없습니다 (no demo model at {folder}): run `kovr demo-model` or set KOVR_MODEL"
        )
    return str(folder)


def load_model(settings: Settings, source: str | None = None) -> LoadedModel:
    source = source or model_source(settings)
    device = pick_device(settings.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=settings.model_revision)
        model: Any = AutoModelForCausalLM.from_pretrained(source, revision=settings.model_revision, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot load model {source!r}: {exc}") from exc
    template_folder: str | None = source if Path(source).is_dir() else None
    if settings.adapter:
        model = _apply_adapter(model, settings.adapter, merge=settings.merge_adapter)
        if (Path(settings.adapter) / "prompt_template.json").is_file():
            template_folder = settings.adapter
    model = model.to(device).eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=source,
        template=load_template(template_folder),
        device=device,
        dtype=dtype,
        meta=read_meta(source),
    )


def _apply_adapter(model: PreTrainedModel, adapter: str, *, merge: bool) -> PreTrainedModel:
    from peft import PeftModel  # heavy; only when an adapter is configured

    wrapped = PeftModel.from_pretrained(model, adapter)
    # Ignored [return-value]: unmerged, the peft wrapper stands in for the model (same forward, generate).
    return wrapped.merge_and_unload() if merge else wrapped  # type: ignore[return-value]


def read_meta(source: str) -> dict[str, Any]:
    path = Path(source) / META_FILE
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))
