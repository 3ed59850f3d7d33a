"""Bench: does the image matter? Align model vs a text-only baseline trained the same way (CPU).

    python bench/bench_vr.py [--workdir DIR] [--json OUT]

Tiny random CLIP encoder (frozen) + tiny GPT-NeoX pre-trained on the synthetic text, stage 1
(projector on captions), then stage 2 twice with identical records, steps and seed: with the image
prefix and without it. Prints accuracy by question type on held-out scenes for both.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from finetune.vr.proof import ProofSize, run_proof

    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-vr-"))
    started = time.perf_counter()
    results = run_proof(workdir, ProofSize())
    rows = ["| question type | align model | text-only baseline |", "|---|---:|---:|"]
    align, text = results["align"], results["text_only"]
    for key in align["by_type"]:
        rows.append(f"| {key} (n={align['by_type'][key]['n']}) | {align['by_type'][key]['accuracy']:.1%} | "
                    f"{text['by_type'][key]['accuracy']:.1%} |")
    for key in align["by_template"]:
        rows.append(f"| template {key} | {align['by_template'][key]['accuracy']:.1%} | "
                    f"{text['by_template'][key]['accuracy']:.1%} |")
    rows.append(f"| **overall** | {align['overall']['accuracy']:.1%} | {text['overall']['accuracy']:.1%} |")
    print("\n".join(rows))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads 1, "
          f"total {time.perf_counter() - started:.0f} s; stage-2 train s: align {align['train_seconds']}, "
          f"text {text['train_seconds']}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
