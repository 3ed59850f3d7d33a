"""`kovr finetune`: LoRA instruction tuning, from a validated configuration to an adapter in a run folder.

Run folder (``run.output_dir``)::

    config.yaml            resolved configuration        data_summary.json   every record counted
    prompt_template.json   the template trained with     metrics.jsonl       train / eval records
    loss_curve.png         train and held-out loss       eval/answers-*.jsonl  answers to fixed prompts
    checkpoints/step-*/    resumable state               adapter/            peft adapter + tokenizer + template
    base_model/            tiny random base (only when model.name_or_path is unset)
    run.json               final figures
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.batching import MicroBatch, collate, plan_epoch
from finetune.checkpoint import TrainState, find_latest_checkpoint, load_checkpoint
from finetune.data import IGNORE, Example, PreparedData, load_records, prepare_examples
from finetune.evaluate import answer_prompts, heldout_loss, with_chat_metrics, write_answers
from finetune.finetune_config import FinetuneConfig
from finetune.loop import LoopSpec, train_loop
from finetune.metrics import LOSS_CURVE_FILE, METRICS_FILE, plot_loss_curve
from finetune.modeling import (
    Runtime,
    add_lora,
    count_parameters,
    load_base_model,
    load_tokenizer,
    resolve_attn,
    resolve_runtime,
    save_base,
    tiny_model,
    train_tokenizer,
)
from finetune.optim import build_optimizer, build_scheduler
from finetune.yaml_config import ConfigError, config_to_dict, save_config
from kovr.prompt import get_template

ADAPTER_DIR = "adapter"
BASE_DIR = "base_model"
RUN_FILE = "run.json"
SUMMARY_FILE = "data_summary.json"
# Changing these between an interrupted run and its resumption is harmless.
# Settings that may change between an interrupted run and its resumption ("section." frees a section).
RESUME_FREE = frozenset({"run.resume", "run.torch_threads", "train.progress_bar", "train.log_every",
                         "train.eval_every", "train.save_every", "train.keep_checkpoints", "eval."})

@dataclass
class RunResult:
    run_dir: Path
    state: TrainState
    final_eval: dict[str, Any]
    summary: dict[str, Any]


def _say(message: str) -> None:
    print(message, flush=True)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resume_point(cfg: Any, run_dir: Path) -> Path | None:
    """The checkpoint to continue from per ``cfg.run.resume`` (any config with a RunSection ``run``)."""
    resume = cfg.run.resume
    if resume == "never":
        if find_latest_checkpoint(run_dir) is not None:
            raise ConfigError(
                f"{run_dir}: already holds a run; choose another run.output_dir or set run.resume=auto"
            )
        return None
    if resume == "auto":
        return find_latest_checkpoint(run_dir)
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise ConfigError(f"run.resume: {path} is not a checkpoint folder")
    return path




def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_same_run(cfg: Any, run_dir: Path, free: frozenset[str] = RESUME_FREE) -> None:
    """A resumed run must not silently change what it trains on or how (any config shape)."""
    import yaml

    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = _flatten(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {})
    now = _flatten(config_to_dict(cfg))
    changed = sorted(
        key for key in now.keys() | saved.keys()
        if key not in free and not any(key.startswith(f) for f in free if f.endswith("."))
        and now.get(key) != saved.get(key)
    )
    if changed:
        raise ConfigError(
            f"{run_dir}: cannot resume with a changed configuration ({', '.join(changed)}); "
            "use a new run.output_dir or the original settings"
        )

def _build_tokenizer_and_base(
    cfg: FinetuneConfig, run_dir: Path, loaded: Any, template: Any, rt: Runtime, attn: str
) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    base_dir = run_dir / BASE_DIR
    if cfg.model.name_or_path is not None:
        tokenizer = load_tokenizer(cfg.model)
        model = load_base_model(cfg.model.name_or_path, rt, attn, cfg.model.revision, cfg.model.trust_remote_code)
        return tokenizer, model
    if base_dir.is_dir():  # resuming a tiny run: the very same tokenizer and random weights
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        return tokenizer, load_base_model(str(base_dir), rt, attn)
    tokenizer = train_tokenizer(loaded.texts(cfg.model.tiny.tokenizer_records, template), cfg.model.tiny.vocab_size)
    model = tiny_model(cfg.model.tiny, tokenizer, cfg.data.max_seq_len, cfg.run.seed)
    save_base(model, tokenizer, base_dir)
    # Reloaded from the folder so a fresh run and a resumed one start from identical objects.
    return tokenizer, load_base_model(str(base_dir), rt, attn)


def total_steps_for(cfg: FinetuneConfig, micro_batches_per_epoch: int) -> int:
    if cfg.train.max_steps is not None:
        return cfg.train.max_steps
    return max(1, math.ceil(cfg.train.epochs * micro_batches_per_epoch / cfg.train.grad_accum_steps))


def _heldout_batches(data: PreparedData, cfg: FinetuneConfig, pad_id: int) -> list[Any]:
    order = sorted(range(len(data.heldout)), key=lambda i: len(data.heldout[i]))
    size = cfg.train.micro_batch_size
    micro = [[[i] for i in order[s:s + size]] for s in range(0, len(order), size)]
    if cfg.eval.heldout_batches is not None:
        micro = micro[: cfg.eval.heldout_batches]
    return [collate(m, data.heldout, pad_id=pad_id, mask="2d") for m in micro]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def run_finetune(
    cfg: FinetuneConfig, on_step: Callable[[TrainState, dict[str, Any]], None] | None = None
) -> RunResult:
    """Train (or resume) the run described by ``cfg``; returns its final state and evaluation."""
    import torch

    started = time.time()
    run_dir = cfg.run.output_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    ckpt = resume_point(cfg, run_dir)
    if ckpt is not None:
        check_same_run(cfg, run_dir)
    seed_everything(cfg.run.seed)
    template = get_template(cfg.data.template)
    attn = resolve_attn(cfg.model, cfg.run.device if cfg.run.device != "auto" else
                        ("cuda" if torch.cuda.is_available() else "cpu"))
    rt = resolve_runtime(cfg.run.device, cfg.train, attn)

    loaded = load_records(cfg.data)
    tokenizer, base = _build_tokenizer_and_base(cfg, run_dir, loaded, template, rt, attn)
    data = prepare_examples(loaded, cfg.data, tokenizer, template, cfg.run.seed)
    save_config(cfg, run_dir)
    _write_json(run_dir / "data_summary.json", data.summary.to_json())
    template.save(run_dir)
    _say(data.summary.describe())

    seed_everything(cfg.run.seed)  # LoRA init must not depend on how much randomness data prep used
    model = add_lora(base.to(rt.device), cfg.lora, rt)
    trainable, total = count_parameters(model)
    _say(f"모델 model: {trainable:,} trainable / {total:,} parameters, {rt.device}, {rt.dtype}, attention {attn}")
    optimizer = build_optimizer(model, cfg.train)

    lengths = [len(e) for e in data.train]
    loss_items = [sum(1 for label in e.labels[1:] if label != IGNORE) for e in data.train]

    def plan(epoch: int) -> list[MicroBatch]:
        return plan_epoch(lengths, mode=cfg.data.batching, micro_batch_size=cfg.train.micro_batch_size,
                          max_seq_len=cfg.data.max_seq_len, seed=cfg.run.seed, epoch=epoch)

    steps = total_steps_for(cfg, len(plan(0)))
    scheduler = build_scheduler(optimizer, cfg.train, steps)
    state = TrainState()
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer, scheduler)
        _say(f"이어서 학습 resuming from {ckpt} (step {state.step}/{steps})")

    pad_id = tokenizer.pad_token_id
    heldout = _heldout_batches(data, cfg, pad_id)

    def loss_fn(m: Any, micro: MicroBatch) -> tuple[Any, int]:
        from finetune.objective import loss_sum

        batch = _collate_train(micro, data.train, cfg, pad_id, rt)
        return loss_sum(m, batch.to(rt.device))

    def eval_fn(step: int) -> dict[str, Any]:
        result = heldout_loss(model, heldout, rt.device, rt.autocast)
        answers = answer_prompts(model, tokenizer, template, cfg.eval.prompts, cfg.eval.max_new_tokens, rt.device)
        figures: dict[str, float] = {}
        if cfg.eval.chat_metrics:
            answers, figures = with_chat_metrics(answers, cfg.eval.prompts)
        path = write_answers(run_dir, step, answers)
        return {**result, **figures, "answers": str(path.relative_to(run_dir))}

    spec = LoopSpec(
        model=model, optimizer=optimizer, scheduler=scheduler, run_dir=run_dir, train=cfg.train,
        total_steps=steps, batches_for_epoch=plan, loss_fn=loss_fn,
        weight_fn=lambda micro: sum(loss_items[i] for row in micro for i in row),
        tokens_fn=lambda micro: sum(lengths[i] for row in micro for i in row),
        eval_fn=eval_fn, on_step=on_step, autocast_dtype=rt.autocast,
        fingerprint_fn=lambda micro: ",".join(str(data.train[i].key) for row in micro for i in row),
    )
    state = train_loop(spec, state)
    return _finish(cfg, run_dir, model, tokenizer, template, state, data, started)


def _collate_train(micro: MicroBatch, examples: list[Example], cfg: FinetuneConfig, pad_id: int, rt: Runtime) -> Any:
    mode = cfg.data.batching
    if mode == "packed":
        return collate(micro, examples, pad_id=pad_id, mask=rt.mask, mask_dtype=rt.dtype)
    pad_to = cfg.data.max_seq_len if mode == "padded" else None
    return collate(micro, examples, pad_id=pad_id, pad_to=pad_to, mask="2d")


def _finish(cfg: FinetuneConfig, run_dir: Path, model: Any, tokenizer: Any, template: Any,
            state: TrainState, data: PreparedData, started: float) -> RunResult:
    from finetune.metrics import read_metrics

    adapter = run_dir / ADAPTER_DIR
    model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    template.save(adapter)
    evals = [r for r in read_metrics(run_dir / METRICS_FILE) if r.get("kind") == "eval"]
    final = evals[-1] if evals else {}
    if final.get("answers"):
        src = run_dir / final["answers"]
        (run_dir / "eval" / "answers-final.jsonl").write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    plot_loss_curve(run_dir / METRICS_FILE, run_dir / LOSS_CURVE_FILE, title=f"kovr finetune: {run_dir.name}")
    trainable, total = count_parameters(model)
    summary = {
        "status": "completed", "steps": state.step, "base_model": cfg.model.name_or_path or BASE_DIR,
        "base_revision": cfg.model.revision, "template": template.name,
        "heldout_loss": final.get("heldout_loss"), "perplexity": final.get("perplexity"),
        "trainable_parameters": trainable, "parameters": total,
        "train_examples": data.summary.train_examples, "heldout_examples": data.summary.heldout_examples,
        "seconds_this_session": round(time.time() - started, 1),
    }
    _write_json(run_dir / RUN_FILE, summary)
    _say(f"완료 done: {run_dir} (adapter: {adapter}); held-out loss {final.get('heldout_loss')}, "
         f"perplexity {final.get('perplexity')}")
    return RunResult(run_dir, state, final, summary)
