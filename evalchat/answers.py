"""Answers of one target to every item: cached per (target, item, parameters), resumable, measured.

``DIR/answers/NAME.jsonl`` holds one record per answer. The cache key is the target's identity
(kind, location, model: not its label), the question's text and the generation parameters, so a
rerun, a new judge or a renamed target never regenerates, while a changed parameter does.
Failed requests are kept in this run's results but not cached: the next run tries them again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from evalchat.prompts import Item
from evalchat.store import JsonlStore, cache_key
from evalchat.targets import GenParams, Target, TargetError, TargetSpec
from kovr.chat_metrics import answer_metrics

ANSWERS_DIR = "answers"


@dataclass
class GenerationStats:
    generated: int = 0
    cached: int = 0
    failed: int = 0


def answer_key(spec: TargetSpec, item: Item, params: GenParams) -> str:
    return cache_key("answer", spec.identity, item.content_hash, params.to_json())


def answer_store(out_dir: Path, spec: TargetSpec) -> JsonlStore:
    return JsonlStore(out_dir / ANSWERS_DIR / f"{spec.name}.jsonl")


def cached_answers(store: JsonlStore, spec: TargetSpec, items: list[Item], params: GenParams) -> dict[str, Any]:
    """The answers already in the cache, by item id."""
    found = {}
    for item in items:
        record = store.get(answer_key(spec, item, params))
        if record is not None:
            found[item.id] = record
    return found


def generate_answers(
    target: Target, items: list[Item], params: GenParams, store: JsonlStore, progress: bool = True
) -> tuple[dict[str, dict[str, Any]], GenerationStats]:
    """Every item's answer record (cached or new), by item id."""
    from tqdm.auto import tqdm

    spec, stats = target.spec, GenerationStats()
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for item in items:
        cached = store.get(answer_key(spec, item, params))
        if cached is not None:
            results[item.id] = cached
            stats.cached += 1
        else:
            todo.append(item)
    bar = tqdm(todo, desc=f"답변 생성 {spec.name}", unit="item", disable=not progress or not todo, dynamic_ncols=True)
    for item in bar:
        started = time.perf_counter()
        record: dict[str, Any] = {
            "key": answer_key(spec, item, params), "target": spec.name, "identity": spec.identity,
            "item_id": item.id, "params": params.to_json(),
        }
        try:
            answer = target.answer(item, params)
        except (TargetError, httpx.HTTPError) as exc:  # one failed item must not lose the others
            record.update(answer="", error=f"{type(exc).__name__}: {exc}"[:500])
            stats.failed += 1
            results[item.id] = record
            continue
        record.update(answer=answer, seconds=round(time.perf_counter() - started, 3),
                      metrics=answer_metrics(answer, item.reference or None))
        store.put(record)
        results[item.id] = record
        stats.generated += 1
    return results, stats

