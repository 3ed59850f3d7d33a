"""One evaluation: answers of every target (cached), judge-free metrics, judging (cached), report."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from evalchat.answers import GenerationStats, answer_store, cached_answers, generate_answers
from evalchat.judge import Judge, JudgeSpec, judge_absolute, judge_pair
from evalchat.local import open_target
from evalchat.prompts import Item
from evalchat.report import build_report, write_report
from evalchat.store import JsonlStore
from evalchat.targets import GenParams, TargetSpec
from kovr.settings import Settings

JUDGE_DIR = "judge"


@dataclass
class EvalRun:
    out_dir: Path
    items: list[Item]
    targets: list[TargetSpec]
    params: GenParams = field(default_factory=GenParams)
    judge: JudgeSpec | None = None
    judge_max_tokens: int = 256
    absolute: bool = True
    pairwise: bool = True
    progress: bool = True
    seed: int = 0
    prompt_set: str = "builtin"


@dataclass
class RunResult:
    report: dict[str, Any]
    files: list[Path]
    generation: dict[str, GenerationStats] = field(default_factory=dict)
    judge_asked: int = 0
    judge_cached: int = 0


def _answers_of(run: EvalRun, spec: TargetSpec, settings: Settings, keys: dict[str, str]
                ) -> tuple[dict[str, dict[str, Any]], GenerationStats]:
    store = answer_store(run.out_dir, spec)
    found = cached_answers(store, spec, run.items, run.params)
    if len(found) == len(run.items):  # nothing to do: a local folder is not even loaded
        return found, GenerationStats(cached=len(found))
    target = open_target(spec, settings, keys.get(spec.name))
    try:
        return generate_answers(target, run.items, run.params, store, run.progress)
    finally:
        target.close()


def _judge_all(run: EvalRun, judge: Judge, answers: dict[str, dict[str, dict[str, Any]]]
               ) -> tuple[dict[str, dict[str, dict[str, Any]]], list[dict[str, Any]], int, int]:
    """Absolute records by target and item id, pairwise outcomes, asks made and answered from cache."""
    from tqdm.auto import tqdm

    folder = run.out_dir / JUDGE_DIR
    absolute_store, pair_store = JsonlStore(folder / "absolute.jsonl"), JsonlStore(folder / "pairwise.jsonl")
    usable = {name: {i: a for i, a in by_item.items() if "error" not in a} for name, by_item in answers.items()}
    tasks: list[tuple[str, Any]] = []
    if run.absolute:
        tasks += [("absolute", (item, name)) for name in usable for item in run.items if item.id in usable[name]]
    if run.pairwise:
        tasks += [("pair", (item, x, y)) for x, y in combinations(list(usable), 2) for item in run.items
                  if item.id in usable[x] and item.id in usable[y]]
    scores: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in usable}
    pairs: list[dict[str, Any]] = []
    asked = cached = 0
    for kind, task in tqdm(tasks, desc="심사 judging", unit="q", disable=not run.progress or not tasks,
                           dynamic_ncols=True):
        if kind == "absolute":
            item, name = task
            record, new = judge_absolute(judge, absolute_store, item, usable[name][item.id])
            scores[name][item.id] = record
            asked, cached = asked + int(new), cached + int(not new)
        else:
            item, x, y = task
            outcome, new_asks = judge_pair(judge, pair_store, item, usable[x][item.id], usable[y][item.id])
            pairs.append(outcome)
            asked, cached = asked + new_asks, cached + 2 - new_asks
    return scores, pairs, asked, cached


def run_eval(run: EvalRun, settings: Settings, keys: dict[str, str] | None = None,
             judge_key: str | None = None) -> RunResult:
    """Generate (or reuse), judge (or reuse) and write DIR/report.md, report.json, report.png.

    ``keys``: API keys of openai targets by target name; ``judge_key``: the judge's.
    """
    keys = keys or {}
    run.out_dir.mkdir(parents=True, exist_ok=True)
    answers: dict[str, dict[str, dict[str, Any]]] = {}
    generation: dict[str, GenerationStats] = {}
    for spec in run.targets:
        answers[spec.name], generation[spec.name] = _answers_of(run, spec, settings, keys)
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    pairs: list[dict[str, Any]] = []
    asked = cached = 0
    if run.judge is not None:
        judge = Judge(run.judge, judge_key, run.judge_max_tokens)
        try:
            scores, pairs, asked, cached = _judge_all(run, judge, answers)
        finally:
            judge.close()
        # The report names the model that judged, also when the server chose it (/models).
        run = replace(run, judge=replace(run.judge, model=judge.chat.model or run.judge.model))
    report = build_report(run, answers, scores, pairs)
    files = write_report(run.out_dir, report)
    return RunResult(report, files, generation, asked, cached)
