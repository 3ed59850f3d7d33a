"""Run logging shared by every KoVR training loop: JSONL metrics, a progress bar, a loss-curve PNG.

Reuse::

    from finetune.metrics import MetricsLog, Progress, plot_loss_curve

    log = MetricsLog(run_dir / "metrics.jsonl")       # appends; safe across resumes
    with Progress(total=max_steps, initial=start_step, enabled=True) as bar:
        bar.update(step, loss=0.93, tokens=4096)        # shows loss, tokens/s and ETA
        log.write({"kind": "train", "step": step, "loss": 0.93})
    plot_loss_curve(run_dir / "metrics.jsonl", run_dir / "loss_curve.png")

Every record gets a wall-clock ``time`` field. ``kind`` is ``"train"`` or ``"eval"`` by convention;
the plot draws ``train`` loss and ``eval`` ``heldout_loss`` against ``step``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

METRICS_FILE = "metrics.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"


class MetricsLog:
    """Append-only JSONL file; each write is flushed so an interrupted run keeps its history."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **record}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run repeats them from its checkpoint)."""
        if not self.path.is_file():
            return
        kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        self.path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8"
        )


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write; the rest of the history is still good
    return records


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """A tqdm bar over optimizer steps showing loss, tokens/s and ETA (or quiet when disabled).

    Throughput counts only the tokens passed to :meth:`update` since this process started, so a
    resumed run does not report the checkpoint's steps as instantly done.
    """

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "학습") -> None:
        self.total = total
        self.step = initial
        self._start_step = initial
        self._tokens = 0
        self._t0 = time.perf_counter()
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    @property
    def tokens_per_s(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self._tokens / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float:
        done = self.step - self._start_step
        if done <= 0:
            return float("inf")
        return (time.perf_counter() - self._t0) / done * (self.total - self.step)

    def update(self, step: int, loss: float | None = None, tokens: int = 0) -> dict[str, float]:
        """Advance to ``step``; returns the figures shown (for the metrics log)."""
        advance = step - self.step
        self.step = step
        self._tokens += tokens
        shown: dict[str, float] = {"tokens_per_s": round(self.tokens_per_s, 1)}
        if loss is not None:
            shown["loss"] = loss
        if self._bar is not None:
            postfix = {"tok/s": f"{self.tokens_per_s:,.0f}", "ETA": format_duration(self.eta_s)}
            if loss is not None:
                postfix = {"loss": f"{loss:.4f}", **postfix}
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(advance)
        return shown

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path, title: str = "loss") -> Path | None:
    """Training loss (and held-out loss when logged) against the optimizer step; None without data."""
    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train" and r.get("loss") is not None]
    heldout = [(r["step"], r["heldout_loss"]) for r in records if r.get("kind") == "eval" and "heldout_loss" in r]
    if not train and not heldout:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", linewidth=1.2)
    if heldout:
        ax.plot(*zip(*heldout, strict=True), "o-", label="held-out loss", linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path)
    plt.close(fig)
    return png_path
