"""Save and resume a training run: trainable weights, optimizer, scheduler, RNG, step, data position.

A checkpoint is a folder ``RUN_DIR/checkpoints/step-00000120/`` holding

- ``trainable.safetensors``: only the parameters with ``requires_grad`` (LoRA weights, a projector),
- ``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (python, numpy, torch CPU and CUDA generators),
- ``state.json``: ``{"step", "micro_step", "extra"}``, written last, so a folder without it is an
  interrupted save and is ignored.

Folders are written under a temporary name and renamed, so a crash never leaves a half checkpoint
that looks complete. Data order is not stored as a list: loops derive it from the seed and the
epoch (see :mod:`finetune.loop`), and ``micro_step`` says how far into it the run got.

Reuse::

    from finetune.checkpoint import TrainState, save_checkpoint, find_latest_checkpoint, load_checkpoint

    ckpt = find_latest_checkpoint(run_dir)
    state = load_checkpoint(ckpt, model, optimizer, scheduler) if ckpt else TrainState()
    ...
    save_checkpoint(run_dir, TrainState(step=10, micro_step=40), model, optimizer, scheduler, keep=2)
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used with this model (missing or unexpected weights)."""


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    micro_step: int = 0  # micro-batches consumed (data position)
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def find_latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def trainable_state_dict(model: Any) -> dict[str, Any]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: str | Path, state: TrainState, model: Any, optimizer: Any, scheduler: Any | None, keep: int = 2
) -> Path:
    """Write a complete checkpoint for ``state.step`` and delete all but the newest ``keep``."""
    import torch
    from safetensors.torch import save_file

    final = checkpoint_dir(run_dir, state.step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state_dict(model), str(tmp / WEIGHTS_FILE))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(_rng_state(), tmp / "rng.pt")
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state), ensure_ascii=False, indent=2), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainable(path: str | Path, model: Any) -> None:
    """Load ``trainable.safetensors`` into ``model``; every trainable parameter must be covered."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(path) / WEIGHTS_FILE))
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = expected - weights.keys(), weights.keys() - expected
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: checkpoint does not match the model "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); "
            "was the configuration changed since the run started?"
        )
    params = dict(model.named_parameters())
    import torch

    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def load_checkpoint(path: str | Path, model: Any, optimizer: Any, scheduler: Any | None) -> TrainState:
    """Restore everything saved by :func:`save_checkpoint`; returns the step and data position."""
    import torch

    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path}: not a complete checkpoint (no {STATE_FILE})")
    load_trainable(path, model)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    if scheduler is not None and (path / "scheduler.pt").is_file():
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    _set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    data = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    return TrainState(step=int(data["step"]), micro_step=int(data["micro_step"]), extra=data.get("extra", {}))
