"""Loading a trained align checkpoint with its language model as one :class:`VRModel`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.vr.build import read_run_info
from finetune.vr.vr_model import VRModel
from kovr.modeling.align_config import CONFIG_FILE
from kovr.modeling.align_model import AlignModel
from kovr.modeling.language_model import load_language_model
from kovr.prompt import PromptTemplate, load_template


def resolve_checkpoint(path: Path) -> Path:
    """An align folder, or a finetune-vr run folder holding one in align/."""
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "align" / CONFIG_FILE).is_file():
        return path / "align"
    raise FileNotFoundError(f"{path}: not an align checkpoint (no {CONFIG_FILE}) nor a finetune-vr run folder")


def load_vr_model(path: Path, device: str = "cpu") -> tuple[VRModel, Any, PromptTemplate, dict[str, Any]]:
    folder = resolve_checkpoint(path)
    align = AlignModel.from_checkpoint(folder, device=device)
    lm, tokenizer = load_language_model(folder, device=device)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return VRModel(align, lm, feature_cache=0).eval(), tokenizer, load_template(folder), read_run_info(folder)
