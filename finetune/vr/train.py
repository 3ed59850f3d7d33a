"""`kovr finetune-vr`: stage 1 (projector on captions) or stage 2 (projector + LoRA on VQA + text).

Run folder (``run.output_dir``), alongside finetune's config.yaml, metrics.jsonl, loss_curve.png
and checkpoints/::

    base_lm/     tiny language model pre-trained on the data's text (only when none is configured)
    align/       the checkpoint model_server loads: align_config.json, projector.safetensors,
                 vision_encoder/ (tiny or trained encoders), language_model/ or lora/,
                 prompt_template.json, vr_run.json (how it was trained)
    eval.json    accuracy by question type at the end (when evaluation data is configured)
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.checkpoint import TrainState, load_checkpoint
from finetune.loop import TRAIN_SECONDS, LoopSpec, train_loop
from finetune.metrics import LOSS_CURVE_FILE, METRICS_FILE, plot_loss_curve
from finetune.optim import build_optimizer, build_scheduler
from finetune.sources import DataError
from finetune.train import RESUME_FREE, check_same_run, resume_point, seed_everything
from finetune.vr.build import build_align, build_language_model, save_checkpoint_folder, set_trainable
from finetune.vr.config import VRConfig
from finetune.vr.data import (
    Encoded,
    VRRecord,
    encode_many,
    epoch_batches,
    load_captions,
    load_text_instructions,
    load_vqa,
    mix_text,
)
from finetune.vr.evaluate import accuracy_by_type, predict
from finetune.vr.vr_model import VRModel, loss_sum, standardize_projector_input
from finetune.yaml_config import save_config
from kovr.prompt import PromptTemplate, get_template

ALIGN_DIR = "align"
EVAL_FILE = "eval.json"


@dataclass
class VRRunResult:
    run_dir: Path
    checkpoint: Path
    state: TrainState
    final_eval: dict[str, Any]


def _say(message: str) -> None:
    print(message, flush=True)


def stage_records(cfg: VRConfig) -> tuple[list[VRRecord], dict[str, int]]:
    """The stage's training records: captions (1) or VQA mixed with text-only instructions (2)."""
    limit = cfg.data.max_records
    if cfg.stage == 1:
        records = [r for path in cfg.data.caption_files() for r in load_captions(path, limit)]
        return records, {"captions": len(records)}
    vqa = [r for path in cfg.data.vqa_files() for r in load_vqa(path, limit)]
    text, counts = load_text_instructions(cfg.data) if cfg.data.text_ratio > 0 else ([], {})
    mixed = mix_text(vqa, text, cfg.data.text_ratio, cfg.run.seed)
    return mixed, {"vqa": len(vqa), "text_available": len(text), "text_used": len(mixed) - len(vqa), **counts}


def _encode_all(records: list[VRRecord], cfg: VRConfig, tokenizer: Any, template: PromptTemplate,
                prefix_len: int) -> tuple[list[Encoded], int]:
    encoded = encode_many(records, tokenizer, template, cfg.data.images, cfg.data.max_seq_len, prefix_len)
    out = [e for e in encoded if e is not None]
    too_long = len(records) - len(out)
    if not out:
        raise DataError(f"no example fits data.max_seq_len={cfg.data.max_seq_len} (image prefix {prefix_len})")
    return out, too_long


# Settings that may change between an interrupted run and its resumption.
_RESUME_FREE = RESUME_FREE | {"data.eval_max", "data.eval_vqa"}

def _eval_records(cfg: VRConfig) -> list[VRRecord]:
    path = cfg.data.eval_file()
    if path is None or cfg.data.eval_max == 0:
        return []
    records = load_vqa(path)
    random.Random(cfg.run.seed).shuffle(records)
    return records[: cfg.data.eval_max]


def run_finetune_vr(cfg: VRConfig) -> VRRunResult:
    import torch

    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    run_dir = Path(cfg.run.output_dir)
    resume = resume_point(cfg, run_dir)
    if resume is not None:
        check_same_run(cfg, run_dir, _RESUME_FREE)
        _say(f"이어서 학습 resuming from {resume}")
    save_config(cfg, run_dir)
    seed_everything(cfg.run.seed)
    template = get_template(cfg.data.template)
    records, counts = stage_records(cfg)
    lm, tokenizer, lm_source, runtime = build_language_model(cfg, run_dir, template)
    align = build_align(cfg, lm.config.hidden_size)
    lm = set_trainable(cfg, align, lm, runtime)
    model = VRModel(align, lm, cfg.vision.feature_cache).to(runtime.device)
    if cfg.vision.projector_init == "data" and not (cfg.stage == 2 and cfg.init_from) and resume is None:
        standardize_projector_input(model, list(dict.fromkeys(r.image for r in records if r.image))[:256])
    items, too_long = _encode_all(records, cfg, tokenizer, template, align.num_prefix_tokens)
    _say(f"데이터 data: {len(items)} examples ({json.dumps(counts, ensure_ascii=False)}), too long {too_long}; "
         f"trainable {sum(p.numel() for p in model.parameters() if p.requires_grad):,} parameters")
    per_epoch = max(1, len(items) // cfg.train.micro_batch_size)
    total = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * per_epoch / cfg.train.grad_accum_steps))
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, total)
    state = load_checkpoint(resume, model, optimizer, scheduler) if resume else TrainState()
    eval_records = _eval_records(cfg)
    last_eval: dict[str, Any] = {}

    def eval_fn(step: int) -> dict[str, Any]:
        predictions = predict(model, tokenizer, template, eval_records, use_images=cfg.data.images)
        result = accuracy_by_type(predictions)
        last_eval.clear()
        last_eval.update(result)
        flat = {f"accuracy_{k}": v["accuracy"] for k, v in result["by_type"].items()}
        return {"accuracy": float(result["overall"]["accuracy"]), **flat}

    prefix = align.num_prefix_tokens if cfg.data.images else 0
    batches = epoch_batches(items, cfg.train.micro_batch_size, cfg.run.seed, cfg.data.batching)
    earlier = float(state.extra.get(TRAIN_SECONDS, 0.0))  # a resumed run's time before this one
    state = train_loop(LoopSpec(
        model=model, optimizer=optimizer, scheduler=scheduler, run_dir=run_dir, train=cfg.train,
        total_steps=total, batches_for_epoch=batches,
        loss_fn=loss_sum, weight_fn=lambda b: sum(it.loss_tokens for it in b),
        tokens_fn=lambda b: sum(len(it.input_ids) + (prefix if it.image else 0) for it in b),
        eval_fn=eval_fn if eval_records else None, autocast_dtype=runtime.autocast,
    ), state)
    seconds = float(state.extra.get(TRAIN_SECONDS, earlier))
    info = {"stage": cfg.stage, "images": cfg.data.images, "steps": state.step, "train_seconds": round(seconds, 3),
            "train_seconds_this_run": round(seconds - earlier, 3),
            "examples": len(items), "data": counts, "language_model_source": lm_source}
    checkpoint = save_checkpoint_folder(cfg, run_dir / ALIGN_DIR, model, tokenizer, template, lm_source, info)
    if last_eval:
        (run_dir / EVAL_FILE).write_text(json.dumps(last_eval, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    plot_loss_curve(run_dir / METRICS_FILE, run_dir / LOSS_CURVE_FILE, title=f"finetune-vr stage {cfg.stage}")
    _say(f"완료 done: {checkpoint}")
    return VRRunResult(run_dir, checkpoint, state, last_eval)
