"""A generic, resumable training loop: gradient accumulation, clipping, schedule, logging, eval, saves.

The loop knows nothing about text or images. The caller gives it

- ``batches_for_epoch(epoch) -> Sequence[B]``: the micro-batches of one epoch, in order. It must be
  a pure function of the epoch (and the run's seed), so that a resumed run sees the same order.
  Results are cached per epoch, so return cheap descriptions (index lists) and build tensors in
  ``loss_fn``; epochs may differ in length;
- ``loss_fn(model, batch) -> (loss_sum, n_items)``: the summed loss over the batch's ``n_items``
  (tokens that carry loss). The loop divides by the number of items in the whole accumulated
  step, so accumulation and packing give the same gradient as one big batch;
- ``weight_fn(batch) -> int``: ``n_items`` known before the forward pass (for that division);
- ``tokens_fn(batch) -> int``: real (non-padding) tokens, for tokens/s.

Reuse (e.g. ``finetune/vr``)::

    from finetune.loop import LoopSpec, train_loop
    state = train_loop(LoopSpec(model=..., optimizer=..., scheduler=..., run_dir=run_dir, train=cfg.train,
                                total_steps=n, batches_for_epoch=f, loss_fn=g, weight_fn=w, tokens_fn=t,
                                eval_fn=lambda step: {"heldout_loss": ...}), state=resumed_state)

Checkpoints go through :mod:`finetune.checkpoint`; metrics through :mod:`finetune.metrics`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from finetune.checkpoint import TrainState, checkpoint_dir, save_checkpoint
from finetune.metrics import METRICS_FILE, MetricsLog, Progress
from finetune.yaml_config import TrainSection

B = TypeVar("B")
TRAIN_SECONDS = "train_seconds"  # in TrainState.extra: optimizer-step time over every run of the training


@dataclass
class LoopSpec(Generic[B]):
    model: Any
    optimizer: Any
    scheduler: Any | None
    run_dir: Path
    train: TrainSection
    total_steps: int
    batches_for_epoch: Callable[[int], Sequence[B]]
    loss_fn: Callable[[Any, B], tuple[Any, int]]
    weight_fn: Callable[[B], int]
    tokens_fn: Callable[[B], int]
    eval_fn: Callable[[int], dict[str, Any]] | None = None
    # Called after every optimizer step with the state and the step's log record (tests use it to
    # interrupt a run: a KeyboardInterrupt anywhere saves a checkpoint of the last completed step).
    on_step: Callable[[TrainState, dict[str, Any]], None] | None = None
    # Asked after every optimizer step; True ends the run there without a checkpoint (the demo
    # model trains for a time budget, not a number of steps).
    should_stop: Callable[[TrainState], bool] | None = None
    autocast_dtype: Any | None = None  # torch.bfloat16 on GPU; None: no autocast
    fingerprint_fn: Callable[[B], str] | None = None  # logs which data each step saw


def _autocast(spec: LoopSpec[Any]) -> Any:
    if spec.autocast_dtype is None:
        return nullcontext()
    import torch

    device = next(spec.model.parameters()).device.type
    return torch.autocast(device_type=device, dtype=spec.autocast_dtype)


def _group(spec: LoopSpec[B], micro_step: int, cache: dict[int, Sequence[B]]) -> list[B]:
    """The micro-batches of the optimizer step starting at ``micro_step`` (may span epochs)."""
    out = []
    for m in range(micro_step, micro_step + spec.train.grad_accum_steps):
        epoch, start = 0, 0
        while m >= start + len(_epoch(spec, epoch, cache)):  # epochs may differ in length (packing)
            start += len(_epoch(spec, epoch, cache))
            epoch += 1
        out.append(_epoch(spec, epoch, cache)[m - start])
    return out


def _epoch(spec: LoopSpec[B], epoch: int, cache: dict[int, Sequence[B]]) -> Sequence[B]:
    """Plans are cached; they are cheap index lists, so every epoch seen stays in memory."""
    if epoch not in cache:
        cache[epoch] = spec.batches_for_epoch(epoch)
        if not cache[epoch]:
            raise ValueError("the training data gives no batches (is the data set empty?)")
    return cache[epoch]


def _optimizer_step(spec: LoopSpec[B], group: list[B]) -> tuple[float, int, float]:
    """One optimizer step over the group: (mean loss, items, gradient norm before clipping).

    A step whose loss or gradients are not finite (a bf16 overflow, a bad batch) leaves the weights
    as they were: one NaN gradient would otherwise turn every weight into NaN for the rest of the run.
    The schedule still advances, so learning rates stay a function of the step number.
    """
    import torch

    items = sum(spec.weight_fn(b) for b in group)
    if items <= 0:
        raise ValueError("an optimizer step has no tokens that carry loss")
    total = 0.0
    for batch in group:
        with _autocast(spec):
            loss_sum, _ = spec.loss_fn(spec.model, batch)
        (loss_sum / items).backward()
        total += float(loss_sum.detach())
    params = [p for p in spec.model.parameters() if p.requires_grad]
    limit = spec.train.max_grad_norm if spec.train.max_grad_norm is not None else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, limit))
    if math.isfinite(total) and math.isfinite(grad_norm):
        spec.optimizer.step()
    if spec.scheduler is not None:
        spec.scheduler.step()
    spec.optimizer.zero_grad(set_to_none=True)
    return total / items, items, grad_norm


def _save(spec: LoopSpec[Any], state: TrainState) -> None:
    save_checkpoint(spec.run_dir, state, spec.model, spec.optimizer, spec.scheduler, spec.train.keep_checkpoints)


def _fingerprint(spec: LoopSpec[B], group: list[B]) -> str | None:
    if spec.fingerprint_fn is None:
        return None
    joined = "|".join(spec.fingerprint_fn(b) for b in group)
    return hashlib.sha1(joined.encode()).hexdigest()[:12]


def train_loop(spec: LoopSpec[B], state: TrainState | None = None) -> TrainState:
    """Run optimizer steps from ``state.step`` to ``spec.total_steps``; returns the final state."""
    state = state or TrainState()
    log = MetricsLog(spec.run_dir / METRICS_FILE)
    log.truncate_after(state.step)
    cache: dict[int, Sequence[B]] = {}
    train = spec.train
    spec.model.train()
    spec.optimizer.zero_grad(set_to_none=True)
    with Progress(spec.total_steps, initial=state.step, enabled=train.progress_bar) as bar:
        try:
            _run_steps(spec, state, log, bar, cache)
        except KeyboardInterrupt:
            # Ctrl-C in the middle of a step: the half-accumulated gradients are dropped and the last
            # completed step is saved (dropout randomness of the resumed step may then differ).
            spec.optimizer.zero_grad(set_to_none=True)
            if state.step > 0 and not checkpoint_dir(spec.run_dir, state.step).is_dir():
                _save(spec, state)
            raise
    return state


class TrainingDiverged(RuntimeError):
    """The loss or gradients stayed non-finite for ``train.max_bad_steps`` steps in a row."""


def _run_steps(
    spec: LoopSpec[B], state: TrainState, log: MetricsLog, bar: Progress, cache: dict[int, Sequence[B]]
) -> None:
    train = spec.train
    bad = 0  # skipped (non-finite) steps in a row
    # Training time travels in the checkpoint, so a resumed run reports the whole run's time.
    clock = time.perf_counter() - float(state.extra.get(TRAIN_SECONDS, 0.0))
    while state.step < spec.total_steps:
        group = _group(spec, state.micro_step, cache)
        loss, items, grad_norm = _optimizer_step(spec, group)
        state.step += 1
        state.micro_step += len(group)
        state.extra[TRAIN_SECONDS] = round(time.perf_counter() - clock, 3)
        tokens = sum(spec.tokens_fn(b) for b in group)
        finite = math.isfinite(loss) and math.isfinite(grad_norm)
        shown = bar.update(state.step, loss=loss if finite else None, tokens=tokens)
        record: dict[str, Any] = {
            "kind": "train", "step": state.step, "loss": round(loss, 6), "loss_tokens": items,
            "tokens": tokens, "lr": spec.optimizer.param_groups[0]["lr"], "grad_norm": round(grad_norm, 6), **shown,
        }
        if not finite:  # JSON has no NaN: the log says the step was skipped instead
            record.update(loss=None, grad_norm=None, skipped=True)
        if (fp := _fingerprint(spec, group)) is not None:
            record["data"] = fp
        if not finite or state.step % train.log_every == 0 or state.step in (1, spec.total_steps):
            log.write(record)
        bad = 0 if finite else _skipped(spec, state, bar, bad + 1)
        _maybe_eval_and_save(spec, state, log, bar)
        if spec.on_step is not None:
            spec.on_step(state, record)
        if spec.should_stop is not None and spec.should_stop(state):
            return


def _skipped(spec: LoopSpec[Any], state: TrainState, bar: Progress, bad: int) -> int:
    """Warn about the ``bad``-th skipped step in a row; past ``max_bad_steps``, save and stop."""
    limit = spec.train.max_bad_steps
    bar.write(f"[경고 warning] step {state.step}: 손실이 유한하지 않아 건너뜀 (non-finite loss or gradients; "
              f"step skipped, {bad}/{limit} in a row)")
    if bad >= limit:
        _save(spec, state)  # the weights are those of the last finite step: nothing learned is lost
        raise TrainingDiverged(
            f"학습이 발산했습니다 (training diverged): {bad} steps in a row up to step {state.step} had a "
            f"non-finite loss or gradients. The last good weights are saved in "
            f"{checkpoint_dir(spec.run_dir, state.step)}. Lower train.learning_rate or set train.precision=fp32.")
    return bad


def _maybe_eval_and_save(spec: LoopSpec[Any], state: TrainState, log: MetricsLog, bar: Progress) -> None:
    train, last = spec.train, state.step == spec.total_steps
    if spec.eval_fn is not None and (last or (train.eval_every and state.step % train.eval_every == 0)):
        was_training = spec.model.training
        spec.model.eval()
        result = spec.eval_fn(state.step)
        spec.model.train(was_training)
        log.write({"kind": "eval", "step": state.step, **result})
        shown = ", ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float))
        bar.write(f"[평가 eval] step {state.step}: {shown}")
    if last or (train.save_every and state.step % train.save_every == 0):
        _save(spec, state)
