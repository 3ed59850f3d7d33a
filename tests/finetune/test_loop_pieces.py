"""The reusable pieces (shared with finetune/vr): schedule, metrics log, loss curve, checkpoints."""

from __future__ import annotations

import itertools
from pathlib import Path

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

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.ones(1, 4)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, TrainState(step=3, micro_step=6, extra={"epoch": 0}), model, opt, None)
    expected = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.zero_()
    state = load_checkpoint(find_latest_checkpoint(tmp_path), model, opt, None)
    assert (state.step, state.micro_step, state.extra) == (3, 6, {"epoch": 0})
    torch.testing.assert_close(model[1].weight, expected)
    other = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_checkpoint(find_latest_checkpoint(tmp_path), other, torch.optim.AdamW(other.parameters()), None)
