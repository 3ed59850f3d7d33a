"""Bench: which words in the "which one" slot does a model read? The same held-out relation scenes
asked with each noun, for the align model and its text-only baseline.

    python research/vr/bench_nouns.py --data W/data --align W/seed5/align/align \\
        --text-only W/seed5/text_only/align [--form rel_5] [--questions 300] [--json OUT]

"A와 B 중 더 왼쪽에 있는 것은 무엇인가요?" is trained with 것은 (and 쪽은 / 물체는 on a
``--varied-wordings`` set); the held-out rel_5 asks with 도형은, a word the shape and count questions
use for "a shape of colour X". Asking the same scenes with nouns no template uses (하나는, 대상은,
물건은, 그림은) separates "an unseen word breaks the form" from "this word means something else
here". Each row gives accuracy and, as evaluate's "which one" split, the share of answers that name
one of the two things and how many of those are right (50% is a coin).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

NOUNS: dict[str, str] = {
    "것은": "trained (rel_3)", "쪽은": "trained, reworded sets", "물체는": "trained, reworded sets",
    "도형은": "held out (rel_5); shape/count questions' word", "하나는": "never in a template",
    "대상은": "never in a template", "물건은": "never in a template", "그림은": "never in a template",
}


def probe_records(data: Path, form: str, count: int, out: Path) -> Path:
    """``count`` test questions of ``form`` asked with every noun, in one jsonl beside the images."""
    from finetune.vr.evaluate import which_pair
    from research.vr.questions import with_which_noun

    rows = [json.loads(line) for line in (data / "test_vqa.jsonl").read_text(encoding="utf-8").splitlines()]
    picked = [r for r in rows if r.get("template") == form and which_pair(r["question"])][:count]
    if not picked:
        raise SystemExit(f"{data / 'test_vqa.jsonl'}: no which-one questions of form {form!r} (rel_3 or rel_5)")
    with out.open("w", encoding="utf-8") as f:
        for noun in NOUNS:
            for r in picked:
                asked = dict(r, question=with_which_noun(r["question"], noun), template=noun, id=f"{r['id']}-{noun}",
                             image=str((data / r["image"]).resolve()))
                f.write(json.dumps(asked, ensure_ascii=False) + "\n")
    return out


def score(checkpoint: Path, records: Path) -> dict[str, Any]:
    from finetune.vr.evaluate import evaluate_checkpoint

    result, _ = evaluate_checkpoint(checkpoint, records)  # with images where the model was trained on them
    return {noun: {**result["which_one"][noun], "accuracy": result["by_template_id"][noun]["accuracy"]}
            for noun in NOUNS}


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print("| noun | in training | align: right (names one / right of those) | text-only: right (…) "
          "| align - text-only |")
    print("|---|---|---:|---:|---:|")
    for noun, where in NOUNS.items():
        a, t = results["align"][noun], results["text_only"][noun]
        print(f"| {noun} | {where} | {_cell(a)} | {_cell(t)} | {100 * (a['accuracy'] - t['accuracy']):+.1f} |")


def _cell(s: dict[str, Any]) -> str:
    return f"{s['accuracy']:.1%} ({s['named_share']:.0%} / {s['right_of_named']:.0%})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the synthetic set (its test_vqa.jsonl and images)")
    parser.add_argument("--align", type=Path, required=True, help="the align model's checkpoint")
    parser.add_argument("--text-only", type=Path, required=True, help="its text-only baseline's checkpoint")
    parser.add_argument("--form", default="rel_5", help="which test questions to reword (default %(default)s)")
    parser.add_argument("--questions", type=int, default=300, help="questions per noun (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.questions < 1:
        parser.error("--questions must be at least 1")
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        records = probe_records(args.data, args.form, args.questions, Path(tmp) / "nouns.jsonl")
        results = {"align": score(args.align, records), "text_only": score(args.text_only, records)}
    print_table(results)
    print(f"{args.form}, {results['align']['것은']['n']} questions per noun, {args.threads} torch thread(s), "
          f"{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
