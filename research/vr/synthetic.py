"""`kovr vr-data`: write a seeded synthetic Korean visual-reasoning set (images + JSONL).

Layout of DIR::

    images/{train,test}/NNNNNN.png
    {train,test}_captions.jsonl   {"id", "image", "caption", "scene"}       (stage 1)
    {train,test}_vqa.jsonl        {"id", "image", "question", "answer", "type",
                                   "template", "heldout_template", "scene_id"}  (stage 2, eval)
    meta.json                     seed, counts, image size, held-out templates

Test scenes are drawn from their own random stream and never equal a training scene; training
questions use only training templates; every test scene is asked each question type twice, once
with a training template and once with a held-out one, so eval can report both.
``train_questions`` asks some types more often of each training scene (relations need more
examples than the tiny proof's LM gets from one per scene); the test split never changes with it.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research.vr.questions import QUESTION_TYPES, TEMPLATES, Question, ask, caption, renoun
from research.vr.scenes import Scene, render, sample_scene

SPLITS = ("train", "test")


@dataclass(frozen=True)
class SetSummary:
    output: Path
    scenes: dict[str, int]
    questions: dict[str, int]
    by_type: dict[str, dict[str, int]]


def generate(output: str | Path, count: int, seed: int, *, image_size: int = 64,
             test_fraction: float = 0.2, questions_per_type: int = 1, grid: int = 4,
             train_questions: Mapping[str, int] | None = None, reasoned: bool = False,
             varied: bool = False, varied_nouns: bool = False) -> SetSummary:
    """Write ``count`` scenes (a ``test_fraction`` of them held out) with their questions.

    Each scene gets ``questions_per_type`` questions of every type (per template kind in test);
    ``train_questions`` overrides that count for some types in the training split only.
    ``reasoned`` gives yes/no relation answers their reason first (see ``questions.ask``), in
    both splits, so that a model is scored in the form it was trained on. ``varied`` rewords about
    40% of the training questions (``questions.reword``); the test split is the one the same seed gives
    without it, so runs with and without compare on the same questions. ``varied_nouns`` then puts
    another noun for "도형" in half of the seen shape and count training questions (``renoun_all``,
    its own random numbers: the rest of the set is the one the same seed gives without it).
    """
    if count < 2:
        raise ValueError("count must be at least 2 (one training and one test scene)")
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    if not 16 <= image_size <= 1024:
        raise ValueError("image_size must be between 16 and 1024 pixels")
    if not 0 <= grid <= 8 or 0 < grid < 3:
        raise ValueError("grid must be 0 (free placement) or between 3 and 8")
    counts = dict.fromkeys(QUESTION_TYPES, questions_per_type)
    per_split = {"train": {**counts, **_checked_counts(train_questions or {})}, "test": counts}
    out = Path(output)
    n_test = max(1, round(count * test_fraction))
    n_train = count - n_test
    train_scenes = _scenes(random.Random(f"{seed}:train-scenes"), n_train, set(), grid)
    seen = {s.signature() for s in train_scenes}
    test_scenes = _scenes(random.Random(f"{seed}:test-scenes"), n_test, seen, grid)
    summary = SetSummary(out, {}, {}, {})
    for split, scenes in (("train", train_scenes), ("test", test_scenes)):
        rng = random.Random(f"{seed}:{split}-questions")
        nouns = random.Random(f"{seed}:{split}-nouns") if varied_nouns and split == "train" else None
        questions = _write_split(out, split, scenes, rng, image_size, per_split[split], reasoned,
                                 varied and split == "train", nouns)
        summary.scenes[split] = len(scenes)
        summary.questions[split] = len(questions)
        summary.by_type[split] = dict(Counter(q["type"] for q in questions))
    _write_meta(out, seed, count, image_size, grid, summary, per_split["train"], reasoned, varied, varied_nouns)
    return summary


def _checked_counts(counts: Mapping[str, int]) -> dict[str, int]:
    unknown = sorted(set(counts) - set(QUESTION_TYPES))
    if unknown:
        raise ValueError(f"unknown question type(s) {', '.join(unknown)}; known: {', '.join(QUESTION_TYPES)}")
    bad = [f"{k}={v}" for k, v in counts.items() if not 0 <= v <= 64]
    if bad:
        raise ValueError(f"questions per scene must be between 0 and 64: {', '.join(bad)}")
    return dict(counts)


def _scenes(rng: random.Random, n: int, exclude: set[Any], grid: int) -> list[Scene]:
    scenes: list[Scene] = []
    while len(scenes) < n:
        scene = sample_scene(rng, grid=grid)
        if scene.signature() not in exclude:
            scenes.append(scene)
    return scenes


def _write_split(out: Path, split: str, scenes: list[Scene], rng: random.Random, image_size: int,
                 per_type: Mapping[str, int], reasoned: bool, varied: bool,
                 nouns: random.Random | None = None) -> list[dict[str, Any]]:
    image_dir = out / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    captions: list[dict[str, Any]] = []
    questions: list[dict[str, Any]] = []
    for index, scene in enumerate(scenes):
        scene_id = f"{split}-{index:06d}"
        image_rel = f"images/{split}/{index:06d}.png"
        render(scene, image_size).save(out / image_rel, optimize=True)
        captions.append({"id": scene_id, "image": image_rel, "caption": caption(scene), "scene": scene.to_json()})
        for question in _questions(scene, split, rng, per_type, reasoned, varied):
            questions.append({
                "id": f"{scene_id}-q{len(questions):07d}", "image": image_rel,
                "question": question.question, "answer": question.answer, "type": question.type,
                "template": question.template, "heldout_template": question.heldout_template,
                "scene_id": scene_id,
            })
    if nouns is not None:
        renoun_all(questions, nouns)
    _write_jsonl(out / f"{split}_captions.jsonl", captions)
    _write_jsonl(out / f"{split}_vqa.jsonl", questions)
    return questions


def _questions(scene: Scene, split: str, rng: random.Random, per_type: Mapping[str, int],
               reasoned: bool, varied: bool) -> list[Question]:
    kinds = [False] if split == "train" else [False, True]  # held-out templates only in test
    made: list[Question] = []
    for type_ in QUESTION_TYPES:
        for heldout in kinds:
            for _ in range(per_type[type_]):
                question = ask(scene, type_, rng, heldout, reasoned=reasoned, varied=varied)
                if question is not None:
                    made.append(question)
    return made


def renoun_all(questions: list[dict[str, Any]], rng: random.Random) -> None:
    """Half of the seen-template questions with "도형" get another noun (``questions.renoun``), in order."""
    for record in questions:
        if not record["heldout_template"] and "도형" in record["question"] and rng.random() < 0.5:
            record["question"] = renoun(record["question"], rng)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_meta(out: Path, seed: int, count: int, image_size: int, grid: int, summary: SetSummary,
                train_questions: Mapping[str, int], reasoned: bool, varied: bool, varied_nouns: bool) -> None:
    meta = {
        "kind": "kovr-vr-synthetic", "version": 1, "seed": seed, "count": count, "image_size": image_size,
        "grid": grid, "train_questions_per_scene": dict(train_questions), "reasoned_relations": reasoned,
        "varied_wordings": varied, "varied_nouns": varied_nouns,
        "scenes": summary.scenes, "questions": summary.questions, "by_type": summary.by_type,
        "heldout_templates": [t.id for t in TEMPLATES if t.heldout],
    }
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
