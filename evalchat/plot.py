"""report.png: per-criterion means with 95 % intervals per target, and pairwise win/tie/loss bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalchat.rubric import CRITERIA

FREE_METRICS = (("hangul_share", "Hangul share", 1.0), ("distinct_2", "distinct-2", 1.0), ("chrf", "chrF/100", 100.0))


def _bars(report: dict[str, Any]) -> tuple[list[str], dict[str, list[tuple[float, float, float] | None]], str]:
    """Group labels, per-target (mean, low, high) on 0-1, and the axis label."""
    targets = report["targets"]
    if report["judge"] is not None and report["judge"]["any_judged"]:
        labels = [c.english for c in CRITERIA]
        values = {}
        for name, t in targets.items():
            row: list[tuple[float, float, float] | None] = []
            for c in CRITERIA:
                ci = t.get("scores", {}).get(c.key)
                span = c.high - c.low
                row.append(None if not ci else tuple((ci[k] - c.low) / span for k in ("mean", "low", "high")))
            values[name] = row
        return labels, values, "judge score, normalised to its scale (0 = lowest, 1 = highest)"
    labels = [label for _, label, _ in FREE_METRICS]
    values = {name: [None if (ci := t["metrics_ci"].get(key)) is None else
                     (ci["mean"] / scale, ci["low"] / scale, ci["high"] / scale) for key, _, scale in FREE_METRICS]
              for name, t in targets.items()}
    return labels, values, "judge-free metric (nothing judged)"


def plot_report(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    pairs = report["pairwise"]
    fig, axes = plt.subplots(1, 2 if pairs else 1, figsize=(13 if pairs else 8, 4.5), dpi=100, squeeze=False)
    labels, values, ylabel = _bars(report)
    ax = axes[0][0]
    width = 0.8 / max(len(values), 1)
    for t_index, (name, row) in enumerate(values.items()):
        xs = [i + (t_index - (len(values) - 1) / 2) * width for i in range(len(labels))]
        means = [v[0] if v else 0.0 for v in row]
        errors = [[v[0] - v[1] if v else 0.0 for v in row], [v[2] - v[0] if v else 0.0 for v in row]]
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=name)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel, fontsize=8)
    judged = report["judge"] is not None and report["judge"]["any_judged"]
    ax.set_title(("per criterion" if judged else "judge-free metrics") + ", mean with 95% bootstrap CI")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if pairs:
        _plot_pairs(axes[0][1], pairs)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_pairs(ax: Any, pairs: list[dict[str, Any]]) -> None:
    names = [f"{p['x']} vs {p['y']}" for p in pairs]
    parts = (("x_wins", "first wins", "tab:green"), ("ties", "tie", "tab:gray"), ("y_wins", "second wins", "tab:red"),
             ("unjudged", "unjudged", "white"))
    left = [0.0] * len(pairs)
    for key, label, color in parts:
        widths = [float(p[key]) for p in pairs]
        ax.barh(names, widths, left=left, height=0.5, label=label, color=color, edgecolor="black", linewidth=0.5)
        left = [a + b for a, b in zip(left, widths, strict=False)]
    ax.set_xlabel("items")
    ax.set_title("pairwise (both orders): win / tie / loss")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4)
