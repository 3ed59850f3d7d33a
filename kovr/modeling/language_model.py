"""The causal language model that goes with an align checkpoint: merged LM > base + LoRA > base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kovr.modeling.align_config import CONFIG_FILE, LM_DIR, LORA_DIR, AlignConfig


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
) -> tuple[Any, Any]:
    """The checkpoint's causal LM (a transformers model, LoRA merged if present) and its tokenizer, ready for eval."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, lora = language_model_source(path)
    model: nn.Module = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    if lora is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, lora).merge_and_unload()
    tokenizer_source = lora if lora and (Path(lora) / "tokenizer_config.json").is_file() else source
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    return model.to(device).eval(), tokenizer
