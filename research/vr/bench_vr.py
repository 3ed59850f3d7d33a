"""Bench: does the image matter? Align model vs a text-only baseline trained the same way.

    python bench/bench_vr.py [--workdir DIR] [--json OUT]                 # one seed, CPU, 1 thread
    python bench/bench_vr.py --seeds 0-3 --parallel 2                     # four seeds, two runs at a time
    python bench/bench_vr.py --seeds 0-5 --parallel 12                    # a 16-core machine
    python bench/bench_vr.py --scenes 60000 --train-questions relation=4 --stage2-steps 36000 \
        --set vision.prefix_positions=true --set vision.feature_cache=60000 --parallel 2  # relations
    ... --reasoned-relations --relation-steps 20000 --relation-replay 0.25 --relation-eval 2000 \
        --set language_model.tiny.parallel_residual=false  # yes/no relations (docs/lab/2026-11-30-vr-proof.md)
    ... --reasons-in-pass  # stage 2 on verdicts alone, reasons only in the pass (one seed of two)
    ... --yes-no-in-pass  # stage 2 without yes/no relations, the pass brings them (clearly in one seed of three)
    ... --yes-no-in-pass --relation-passes 2  # the pass twice: seen yes/no read in three seeds of four
    ... --yes-no-in-pass with relation=12 in place of 4  # "which one" in stage 2 (seeds 2, 5); other types lower
    ... --varied-wordings, relation=12, --relation-passes 2  # held-out wordings of every type
    ... --varied-wordings, relation=12, --relation-passes 3  # and rel_1-rel_4 at 80-86% (one seed)
    ... --varied-wordings --varied-nouns, relation=12, --relation-passes 3  # every relation form above (seeds 5, 2)

Tiny random CLIP encoder (frozen) + tiny GPT-NeoX pre-trained on the synthetic text, stage 1
(projector on captions), then stage 2 twice with identical records, steps and seed: with the image
prefix and without it. Prints accuracy by question type on held-out scenes for both.

Stage 2 of these tiny models learns in a late, sudden drop of the loss that some seeds reach
within the 12,000 steps and some do not, so one seed's table can mislead: ``--seeds`` runs the
whole proof (tiny LM, stage 1, both stage-2 runs) once per training seed on the same synthetic set,
and reports every seed and the mean. Each run has its own process; a seed's two stage-2 runs start
as soon as its stage 1 is done, so ``--parallel 2`` trains the align model and its baseline at once.
These models are too small to keep a GPU busy: processes sharing one ran at half the steps/s of a
CPU core each (docs/lab/2026-11-30-vr-proof.md), so ``--device cuda`` is for larger variants. The seed sets the
models' initial weights, the text mixed in and the batch order; the scenes and questions stay those
of seed 0.

Each model's scores print as each stage ends (stage 2 and every relation pass; the last pass's are
the table's), and every stage saves a checkpoint every 2,000 steps: the same command with the same
``--workdir`` resumes a stopped run where each stage stopped (train seconds count both parts).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_seeds(text: str) -> list[int]:
    """"0-3,7" -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give distinct seeds such as 0-7 or 0,3,5")
    return seeds


def _extra(seed: int, device: str, overrides: list[str]) -> list[str]:
    # fp32 on the GPU too: these models are tiny, and the CPU table is fp32.
    # Checkpoints every 2,000 steps: the bench run again in the same --workdir resumes each stage
    # where it stopped (runs of the full recipe take hours).
    return [f"run.seed={seed}", f"run.device={device}", "train.precision=fp32", "train.gradient_checkpointing=false",
            "train.save_every=2000", *overrides]


def seed_stage1(workdir: Path, seed: int, device: str, size: Any, overrides: list[str]) -> Path:
    """One seed's tiny LM and stage 1 (a worker process: the GPU needs its own context)."""
    import torch

    from research.vr.proof import run_stage1

    torch.set_num_threads(1)
    return run_stage1(workdir, size, _extra(seed, device, overrides))


def seed_stage2(workdir: Path, seed: int, device: str, size: Any, overrides: list[str], stage1: Path,
                images: bool) -> dict[str, Any]:
    """One seed's stage 2 with or without images, and its accuracy (a worker process)."""
    import torch

    from research.vr.proof import run_stage2

    torch.set_num_threads(1)
    result, table = run_stage2(workdir, size, _extra(seed, device, overrides), stage1, images=images)
    print(f"seed {seed}, {'align' if images else 'text_only'}:\n{table}", flush=True)
    return result


def run_seeds(
    dirs: dict[int, Path], device: str, size: Any, overrides: list[str], parallel: int
) -> list[dict[str, Any]]:
    """Every seed's stage 1, then its two stage-2 runs as soon as it is done: up to `parallel` at once."""
    runs: dict[int, dict[str, Any]] = {s: {"seed": s} for s in dirs}
    with ProcessPoolExecutor(max_workers=max(1, parallel), mp_context=get_context("spawn")) as pool:
        firsts = {pool.submit(seed_stage1, d, s, device, size, overrides): s for s, d in dirs.items()}
        seconds = {}
        for first in as_completed(firsts):
            s = firsts[first]
            for name, images in (("align", True), ("text_only", False)):
                job = pool.submit(seed_stage2, dirs[s], s, device, size, overrides, first.result(), images)
                seconds[job] = (s, name)
        for second in as_completed(seconds):
            s, name = seconds[second]
            runs[s][name] = second.result()
            if "align" in runs[s] and "text_only" in runs[s]:
                text = json.dumps(runs[s], ensure_ascii=False, indent=2)
                (dirs[s] / "result.json").write_text(text, encoding="utf-8")
    return [runs[s] for s in dirs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seeds", default="0", help="training seeds, e.g. 0-7 or 0,3,5 (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at once, one process each (each seed has a stage 1 and two stage-2 runs)")
    parser.add_argument("--scenes", type=int, default=None, help="smaller set for a quick check (default 6000)")
    parser.add_argument("--stage2-steps", type=int, default=None, help="fewer steps for a quick check (default 12000)")
    parser.add_argument("--train-questions", default="", metavar="TYPE=N,...",
                        help="questions of these types per training scene (default 1 each)")
    parser.add_argument("--reasoned-relations", action="store_true",
                        help="yes/no relation answers name the further object first")
    parser.add_argument("--varied-wordings", action="store_true",
                        help="about 40%% of the training questions reworded so that the names move")
    parser.add_argument("--varied-nouns", action="store_true",
                        help="another noun for \"도형\" in half the shape and count training questions "
                             "(python -m research.vr.cli)")
    parser.add_argument("--reasons-in-pass", action="store_true",
                        help="with --reasoned-relations: stage 2 trains on the verdicts alone, the relation "
                             "pass on the reasons")
    parser.add_argument("--yes-no-in-pass", action="store_true",
                        help="with --reasoned-relations: stage 2 trains without the yes/no relation questions, "
                             "the relation pass has them, reasons first")
    parser.add_argument("--relation-steps", type=int, default=0,
                        help="then this many steps on the relation questions, both models (default 0)")
    parser.add_argument("--relation-passes", type=int, default=1, metavar="N",
                        help="run that pass N times, each from the last, its schedule begun again (default 1)")
    parser.add_argument("--relation-replay", type=float, default=0.0, metavar="SHARE",
                        help="keep this share (0-1) of the other types' questions in that pass (default 0)")
    parser.add_argument("--relation-eval", type=int, default=0, metavar="N",
                        help="also score N held-out relation questions, by form (default 0: none)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for both stages of every run, as `kovr finetune-vr --set`")
    args = parser.parse_args()
    if not 0 <= args.relation_replay <= 1:
        parser.error("--relation-replay is a share between 0 and 1")
    if args.relation_eval < 0:
        parser.error("--relation-eval is a number of questions (0: none)")
    from dataclasses import replace

    from research.vr.cli import parse_type_counts
    from research.vr.proof import ProofSize, make_set

    size = ProofSize()
    try:  # ProofSize refuses the flag combinations that make no recipe, naming the flags
        size = replace(size, scenes=args.scenes or size.scenes, stage2_steps=args.stage2_steps or size.stage2_steps,
                       train_questions=tuple(parse_type_counts(args.train_questions).items()),
                       reasoned=args.reasoned_relations, varied_wordings=args.varied_wordings,
                       varied_nouns=args.varied_nouns,
                       reasons_in_pass=args.reasons_in_pass,
                       yes_no_in_pass=args.yes_no_in_pass,
                       relation_steps=args.relation_steps, relation_passes=args.relation_passes,
                       relation_replay=args.relation_replay, relation_eval=args.relation_eval)
    except ValueError as error:
        parser.error(str(error))
    seeds = parse_seeds(args.seeds)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-vr-"))
    started = time.perf_counter()
    data = make_set(workdir / "data", size)  # before the workers start, so that they only read it
    dirs = {s: workdir / f"seed{s}" for s in seeds}
    for folder in dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "data").exists():
            (folder / "data").symlink_to(data.resolve(), target_is_directory=True)
    runs = run_seeds(dirs, args.device, size, args.overrides, args.parallel)
    print_tables(runs)
    if args.overrides:
        print(f"overrides: {' '.join(args.overrides)}")
    print(f"machine: {platform.processor() or platform.machine()}, device {args.device}, torch threads 1 per seed, "
          f"{args.parallel} run(s) at once, total {time.perf_counter() - started:.0f} s; stage-2 train s per seed: "
          + ", ".join(f"{r['seed']}: align {r['align']['train_seconds']} / text {r['text_only']['train_seconds']}"
                      for r in runs))
    if args.json:
        args.json.write_text(json.dumps(runs if len(runs) > 1 else runs[0], ensure_ascii=False, indent=2),
                             encoding="utf-8")
    return 0


def print_tables(runs: list[dict[str, Any]]) -> None:
    from research.vr.questions import TEMPLATES

    first = runs[0]["align"]
    # Relations by the form of the question: yes/no forms have chance 50%, "which one" forms also
    # test whether the answer is written as a name at all (docs/lab/2026-11-30-vr-proof.md).
    relation_forms = {t.id for t in TEMPLATES if t.type == "relation"}
    forms = sorted(relation_forms & first.get("by_template_id", {}).keys())
    rel_forms = sorted(relation_forms & first.get("relation_test", {}).get("by_template_id", {}).keys())
    rows: list[tuple[tuple[str, ...], str]] = (
        [(("by_type", k), k) for k in first["by_type"]]
        + [(("by_template_id", k), f"&nbsp;&nbsp;relation form {k}") for k in forms]
        + [(("by_template", k), f"template {k}") for k in first["by_template"]]
        + [(("relation_test", "by_template_id", k), f"relation test, form {k}") for k in rel_forms])
    for r in runs:
        print(f"\nseed {r['seed']}")
        lines = ["| question type | align model | text-only baseline |", "|---|---:|---:|"]
        for path, label in rows:
            n = _node(r["align"], path)["n"]
            lines.append(f"| {label} (n={n}) | {_acc(r, 'align', path):.1%} | {_acc(r, 'text_only', path):.1%} |")
        lines.append(f"| **overall** | {r['align']['overall']['accuracy']:.1%} | "
                     f"{r['text_only']['overall']['accuracy']:.1%} |")
        print("\n".join(lines))
        _print_which_one(r)
        if "before_relation_pass" in r["align"]:
            before = {m: r[m]["before_relation_pass"] for m in ("align", "text_only")}
            scores = [("relation", ("by_type", "relation")), ("overall", ("overall",))]
            scores += [(k, ("relation_test", "by_template_id", k)) for k in rel_forms]
            done = r["align"]["relation_pass"]
            passes = f" x {done['passes']}" if done["passes"] > 1 else ""
            print(f"before the {done['steps']}-step relation pass{passes}: " + _versus(before, scores))
            earlier = (r[m].get("earlier_relation_passes", []) for m in ("align", "text_only"))
            for number, (a, t) in enumerate(zip(*earlier, strict=True), start=1):
                versus = _versus({"align": a, "text_only": t}, scores)
                print(f"after relation pass {number} of {done['passes']}: " + versus)
    if len(runs) > 1:
        print(f"\nmean over {len(runs)} seeds (min-max)")
        print("| question type | align model | text-only baseline | align above baseline (seeds) |")
        print("|---|---:|---:|---:|")
        for path, label in [*rows, (("overall",), "**overall**")]:
            print(f"| {label} | {_spread(runs, 'align', path)} | {_spread(runs, 'text_only', path)} | "
                  f"{sum(_acc(r, 'align', path) > _acc(r, 'text_only', path) for r in runs)}/{len(runs)} |")


def _versus(results: dict[str, dict[str, Any]], scores: list[tuple[str, tuple[str, ...]]]) -> str:
    """"name align / text-only" for each score."""
    return ", ".join(f"{name} {_node(results['align'], path)['accuracy']:.1%} / "
                     f"{_node(results['text_only'], path)['accuracy']:.1%}" for name, path in scores)


def _print_which_one(run: dict[str, Any]) -> None:
    """A "which one" form's score mixes two failures: not naming either thing (the form is not read at
    all) and naming the wrong one; this line splits them."""
    which = {m: run[m].get("relation_test", {}).get("which_one", {}) for m in ("align", "text_only")}
    if which["align"]:
        print("which one, relation test (names one of the two / right of those, align vs text-only): " + ", ".join(
            f"{k} {_which(which['align'][k])} vs {_which(which['text_only'].get(k))}" for k in which["align"]))


def _which(score: dict[str, Any] | None) -> str:
    return f"{score['named_share']:.1%} / {score['right_of_named']:.1%}" if score else "-"


def _node(result: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for part in path:
        result = result[part]
    return result


def _acc(run: dict[str, Any], model: str, path: tuple[str, ...]) -> float:
    return float(_node(run[model], path)["accuracy"])


def _spread(runs: list[dict[str, Any]], model: str, path: tuple[str, ...]) -> str:
    values = [_acc(r, model, path) for r in runs]
    return f"{mean(values):.1%} ({min(values):.1%}-{max(values):.1%})"


if __name__ == "__main__":
    sys.exit(main())
