"""Loading a trained align checkpoint with its language model, and evaluating it (`kovr eval-vr`)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from finetune.vr.data import VRRecord, load_vqa
from finetune.vr.evaluate import accuracy_by_type, format_table, predict
from finetune.vr.model import VRModel
from finetune.vr.modeling import read_run_info
from kovr.prompt import PromptTemplate, load_template
from model_server.align import CONFIG_FILE, AlignModel, load_language_model


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


def eval_records(data: Path, split: str, limit: int | None, seed: int = 0) -> list[VRRecord]:
    path = data / f"{split}_vqa.jsonl" if data.is_dir() else data
    records = load_vqa(path)
    if limit is not None and limit < len(records):
        records = random.Random(seed).sample(records, limit)
    return records


def evaluate_checkpoint(checkpoint: Path, data: Path, *, split: str = "test", limit: int | None = None,
                        batch_size: int = 32, images: str = "auto",
                        threads: int | None = None) -> tuple[dict[str, Any], str]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model, tokenizer, template, info = load_vr_model(checkpoint)
    use_images = info.get("images", True) if images == "auto" else images == "on"
    records = eval_records(data, split, limit)
    predictions = predict(model, tokenizer, template, records, use_images=use_images, batch_size=batch_size)
    result = accuracy_by_type(predictions)
    result["checkpoint"] = str(resolve_checkpoint(checkpoint))
    result["images"] = bool(use_images)
    result["examples"] = [
        {"question": p.record.instruction, "answer": p.record.output, "predicted": p.answer, "type": p.record.type}
        for p in predictions[:5]
    ]
    title = f"{result['checkpoint']} (이미지 images: {'on' if use_images else 'off'})"
    return result, format_table(result, title)
