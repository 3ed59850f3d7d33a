"""The reusable pieces (shared with finetune/vr): schedule, metrics log, loss curve, checkpoints."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetune.checkpoint import (
    CheckpointError,
    TrainState,
    find_latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from finetune.metrics import MetricsLog, Progress, plot_loss_curve, read_metrics
from finetune.optim import lr_factor


def test_schedules_warm_up_then_decay() -> None:
    cosine = [lr_factor(s, kind="cosine", warmup=4, total=20) for s in range(20)]
    assert cosine[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(cosine[3:]))
    assert cosine[-1] < 0.01
    linear = [lr_factor(s, kind="linear", warmup=0, total=10, min_ratio=0.1) for s in range(10)]
    assert linear[0] == 1.0 and linear[5] == pytest.approx(0.55)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(5, kind="step", warmup=0, total=10)


def test_metrics_log_truncates_on_resume_and_plots(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 6):
        log.write({"kind": "train", "step": step, "loss": 5.0 / step})
    log.write({"kind": "eval", "step": 5, "heldout_loss": 1.5})
    log.truncate_after(3)
    assert [r["step"] for r in read_metrics(log.path)] == [1, 2, 3]
    png = plot_loss_curve(log.path, tmp_path / "loss.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
    assert plot_loss_curve(tmp_path / "none.jsonl", tmp_path / "none.png") is None


def test_progress_reports_tokens_per_second() -> None:
    with Progress(total=10, enabled=False) as bar:
        shown = bar.update(1, loss=2.0, tokens=1000)
    assert shown["loss"] == 2.0 and shown["tokens_per_s"] > 0


def test_checkpoint_round_trip_and_mismatch(tmp_path: Path) -> None:
    import torch

    first, second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    model = torch.nn.Sequential(first, second)
    first.weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.ones(1, 4)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, TrainState(step=3, micro_step=6, extra={"epoch": 0}), model, opt, None)
    expected = second.weight.detach().clone()
    with torch.no_grad():
        second.weight.zero_()
    latest = find_latest_checkpoint(tmp_path)
    assert latest is not None
    state = load_checkpoint(latest, model, opt, None)
    assert (state.step, state.micro_step, state.extra) == (3, 6, {"epoch": 0})
    torch.testing.assert_close(second.weight, expected)
    other = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_checkpoint(latest, other, torch.optim.AdamW(other.parameters()), None)


def _nan_loop(tmp_path: Path, bad_steps: set[int], total: int, max_bad: int = 10) -> tuple[Any, Callable[[], Any]]:
    """A one-weight model trained by train_loop; the loss is NaN on the given (1-based) steps."""
    import torch

    from finetune.loop import LoopSpec, train_loop
    from finetune.yaml_config import TrainSection

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.tensor([[1.0]]), torch.tensor([[3.0]])

    def loss_fn(m: torch.nn.Module, batch: int) -> tuple[torch.Tensor, int]:
        loss = ((m(x) - y) ** 2).sum()
        return (loss * float("nan") if batch + 1 in bad_steps else loss), 1

    train = TrainSection(max_steps=total, learning_rate=0.1, warmup_ratio=0, max_bad_steps=max_bad, progress_bar=False)
    spec = LoopSpec(model=model, optimizer=optimizer, scheduler=None, run_dir=tmp_path, train=train, total_steps=total,
                    batches_for_epoch=lambda epoch: list(range(total)), loss_fn=loss_fn, weight_fn=lambda b: 1,
                    tokens_fn=lambda b: 1)
    return spec, lambda: train_loop(spec)


def test_a_non_finite_step_is_skipped_and_the_weights_stay_finite(tmp_path: Path) -> None:
    import torch

    spec, run = _nan_loop(tmp_path, bad_steps={3}, total=6)
    weights = []
    spec.on_step = lambda state, record: weights.append(spec.model.weight.detach().clone())
    state = run()
    assert state.step == 6
    assert all(torch.isfinite(w).all() for w in weights)
    assert torch.equal(weights[2], weights[1])  # step 3 changed nothing
    assert not torch.equal(weights[3], weights[2])  # step 4 learned again
    records = {r["step"]: r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"}
    assert records[3]["skipped"] is True and records[3]["loss"] is None
    assert isinstance(records[6]["loss"], float) and "skipped" not in records[6]


def test_a_run_that_stays_non_finite_stops_with_a_clear_error_and_keeps_the_last_good_weights(tmp_path: Path) -> None:
    import torch

    from finetune.loop import TrainingDiverged

    spec, run = _nan_loop(tmp_path, bad_steps={3, 4, 5, 6, 7, 8}, total=8, max_bad=3)
    weights = []
    spec.on_step = lambda state, record: weights.append(spec.model.weight.detach().clone())
    with pytest.raises(TrainingDiverged, match=r"diverged.*3 steps in a row up to step 5.*learning_rate"):
        run()
    saved = find_latest_checkpoint(tmp_path)
    assert saved is not None and saved.name.endswith("00000005")
    model = torch.nn.Linear(1, 1)
    load_checkpoint(saved, model, torch.optim.SGD(model.parameters(), lr=0.1), None)
    assert torch.equal(model.weight, weights[1]) and torch.isfinite(model.weight).all()


@pytest.mark.parametrize("head", ["embed_out", "lm_head"])
def test_lora_saves_the_output_layer_under_either_transformers_name(head: str) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from finetune.modeling import Runtime, add_lora
    from finetune.yaml_config import LoraSection

    model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=32))
    runtime = Runtime(torch.device("cpu"), torch.float32, None, False, "4d")
    wrapped = add_lora(model, LoraSection(modules_to_save=[head]), runtime)
    saved = {name for name, _ in wrapped.named_modules() if name.endswith("modules_to_save")}
    assert len(saved) == 1  # the one output layer, whatever this transformers calls it
    with pytest.raises(ValueError, match="no module named"):
        add_lora(GPTNeoXForCausalLM(model.config), LoraSection(modules_to_save=["embed_nowhere"]), runtime)
