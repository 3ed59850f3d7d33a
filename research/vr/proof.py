"""The proof that the image matters: the same stage-2 training with and without the image prefix.

Shared by research/vr/bench_vr.py (full size) and the slow test (small size): synthetic set ->
stage 1 (tiny LM pre-trained on the text, projector on captions) -> stage 2 twice (images on /
off, same records, steps and seed) -> accuracy by question type on held-out scenes. With
``relation_steps`` each stage-2 model then trains on the relation questions (and a
``relation_replay`` share of the others) for that many steps (a second stage-2 pass, the same for
both) before it is scored: mixed with the other types, yes/no relations stayed at chance, and a
pass on relations is what moved them (docs/lab/2026-11-30-vr-proof.md, "The reason first"). With
``reasons_in_pass`` stage 2 sees the verdicts alone and the pass adds the reasons; with
``yes_no_in_pass`` stage 2 sees no yes/no relation question at all and the pass brings them in,
reasons first. ``relation_passes`` repeats the pass, each from the last with its learning-rate
schedule begun again: after a second 20,000-step pass the seen yes/no forms were 9-33 points above
the baseline's in seeds 3-5, where one pass had left them 1-18; seed 2 never learned "which one"
and stayed at chance (docs/lab/2026-11-30-vr-proof.md, "A second relation pass").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.vr.config import CONFIGS, VRConfig
from finetune.vr.evaluate import evaluate_checkpoint
from finetune.vr.train import run_finetune_vr
from finetune.yaml_config import load_config
from research.vr.synthetic import generate


@dataclass(frozen=True)
class ProofSize:
    scenes: int = 6000
    pretrain_steps: int = 300
    stage1_steps: int = 300
    stage2_steps: int = 12000
    eval_max: int = 1000
    types: tuple[str, ...] = ()  # only these question types in stage 2 and eval (empty: all)
    train_questions: tuple[tuple[str, int], ...] = ()  # (type, questions per training scene) overrides
    reasoned: bool = False  # yes/no relation answers with their reason first (questions.ask)
    varied_wordings: bool = False  # about 40% of the training questions reworded (questions.reword)
    varied_nouns: bool = False  # another noun for "도형" in half the shape/count ones (questions.renoun)
    # With ``reasoned``: stage 2 trains on the verdicts alone and only the relation pass on the
    # reasons; stage 2 with reasons had them at chance, and a pass from a verdict-only model read
    # them where that model already answered "which one" (docs/lab/2026-11-30-vr-proof.md, "Reasons in the pass only").
    reasons_in_pass: bool = False
    # With ``reasoned``: stage 2 trains without the yes/no relation questions, whose verdicts carry
    # no first-order signal before "which one" is learned, and only the pass has them, with reasons
    # (docs/lab/2026-11-30-vr-proof.md, "Yes/no relations in the pass only").
    yes_no_in_pass: bool = False
    relation_steps: int = 0  # a stage-2 pass on relation questions after stage 2 (0: none)
    relation_learning_rate: float = 1e-3
    relation_passes: int = 1  # the pass this many times, each continuing the last
    relation_replay: float = 0.0  # share of the other types' training questions kept in that pass
    # Also score this many held-out relation questions: the all-type test holds ~40 per relation
    # form, too few to tell a yes/no form (chance 50%) from chance.
    relation_eval: int = 0

    def __post_init__(self) -> None:
        if self.relation_passes < 1 or (self.relation_passes > 1 and not self.relation_steps):
            raise ValueError("relation passes (--relation-passes) are a count from 1, and more than one needs "
                             "a relation pass (--relation-steps)")
        if (self.reasons_in_pass or self.yes_no_in_pass) and not (self.reasoned and self.relation_steps):
            raise ValueError("reasons or yes/no relations in the relation pass only (--reasons-in-pass, "
                             "--yes-no-in-pass) need reasoned answers (--reasoned-relations) and a relation pass "
                             "(--relation-steps)")
        if self.reasons_in_pass and self.yes_no_in_pass:
            raise ValueError("yes/no relations in the pass only (--yes-no-in-pass) already keep their reasons out "
                             "of stage 2: drop --reasons-in-pass")


def run_proof(workdir: Path, size: ProofSize, extra: list[str] | None = None) -> dict[str, Any]:
    stage1 = run_stage1(workdir, size, extra)
    results: dict[str, Any] = {}
    for name, images in (("align", True), ("text_only", False)):
        results[name], table = run_stage2(workdir, size, extra, stage1, images=images)
        print(table, flush=True)
    return results


def make_set(data: Path, size: ProofSize) -> Path:
    """The proof's synthetic set in ``data``, written once (a folder with meta.json is kept)."""
    if not (data / "meta.json").is_file():
        generate(data, size.scenes, seed=0, image_size=64, grid=4, train_questions=dict(size.train_questions),
                 reasoned=size.reasoned, varied=size.varied_wordings, varied_nouns=size.varied_nouns)
    return data


def run_stage1(workdir: Path, size: ProofSize, extra: list[str] | None = None) -> Path:
    """The set (made once per workdir), the tiny LM and stage 1; returns the stage-1 checkpoint."""
    data = make_set(workdir / "data", size)
    for split in ("train", "test"):  # written here, once, so stage-2 runs in parallel only read them
        _only(data, split, size.types)
    if size.reasons_in_pass:
        _verdicts(_only(data, "train", size.types, write=False))
    if size.yes_no_in_pass:
        _without_yes_no(_only(data, "train", size.types, write=False))
    if size.relation_steps:
        _relation_mix(data, size.relation_replay)
    if size.relation_eval:
        _only(data, "test", ("relation",))
    s1 = load_config(VRConfig, CONFIGS / "tiny_stage1.yaml", [
        *_common(workdir, extra), f"run.output_dir={workdir / 'stage1'}", f"train.max_steps={size.stage1_steps}",
        f"language_model.tiny.pretrain_steps={size.pretrain_steps}"])
    return run_finetune_vr(s1).checkpoint


def run_stage2(workdir: Path, size: ProofSize, extra: list[str] | None, stage1: Path, *,
               images: bool) -> tuple[dict[str, Any], str]:
    """Stage 2 with or without the image prefix, then accuracy on held-out scenes: (result, table)."""
    data = workdir / "data"
    train_vqa, test_vqa = (_only(data, split, size.types, write=False) for split in ("train", "test"))
    if size.reasons_in_pass:
        train_vqa = _verdicts(train_vqa, write=False)
    if size.yes_no_in_pass:
        train_vqa = _without_yes_no(train_vqa, write=False)
    name = "align" if images else "text_only"
    cfg = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml", [
        *_common(workdir, extra), f"init_from={stage1}", f"run.output_dir={workdir / name}",
        f"train.max_steps={size.stage2_steps}", f"data.images={str(images).lower()}", f"data.vqa=[{train_vqa}]"])
    checkpoint = run_finetune_vr(cfg).checkpoint
    seconds = run_seconds(checkpoint)
    if not size.relation_steps:
        result, table = _score(checkpoint, data, test_vqa, size)
        result["train_seconds"] = round(seconds, 1)
        return result, table
    before, _ = _score(checkpoint, data, test_vqa, size)
    _say_score(name, "stage 2", before)
    passed, pass_seconds, earlier = checkpoint, 0.0, []
    for number in range(1, size.relation_passes + 1):
        passed = _relation_pass(workdir, size, extra, passed, name, images, number)
        pass_seconds += run_seconds(passed)
        if number < size.relation_passes:  # each pass's figures, not only the last's
            earlier.append(_score(passed, data, test_vqa, size)[0])
            _say_score(name, f"relation pass {number}", earlier[-1])
    result, table = _score(passed, data, test_vqa, size)
    result["train_seconds"] = round(seconds + pass_seconds, 1)
    result["before_relation_pass"] = before
    result["earlier_relation_passes"] = earlier
    result["relation_pass"] = {"steps": size.relation_steps, "passes": size.relation_passes,
                               "replay": size.relation_replay,
                               "checkpoint": str(passed), "train_seconds": round(pass_seconds, 1)}
    return result, table


def _score(checkpoint: Path, data: Path, test_vqa: Path, size: ProofSize) -> tuple[dict[str, Any], str]:
    """Accuracy on the held-out questions, and on ``size.relation_eval`` relation questions when set."""
    result, table = evaluate_checkpoint(checkpoint, test_vqa, limit=size.eval_max)
    if size.relation_eval:
        relations = _only(data, "test", ("relation",), write=False)
        result["relation_test"], _ = evaluate_checkpoint(checkpoint, relations, limit=size.relation_eval)
    return result, table


def _say_score(name: str, stage: str, result: dict[str, Any]) -> None:
    """A line as each stage is scored: a run of hours shows its figures long before its table."""
    forms = result.get("relation_test", {}).get("by_template_id", {})
    shown = [f"{form} {score['accuracy']:.1%}" for form, score in sorted(forms.items())]
    shown += [f"{kind} {score['accuracy']:.1%}" for kind, score in result["by_type"].items()]
    print(f"{name}, after {stage}: " + ", ".join(shown) + f", all {result['overall']['accuracy']:.1%}", flush=True)


def _relation_pass(workdir: Path, size: ProofSize, extra: list[str] | None, start: Path, name: str,
                   images: bool, number: int = 1) -> Path:
    """Stage 2 continued from ``start`` on the training relation questions (see ``_relation_mix``);
    pass ``number`` 2 and on write to ``{name}_relations{number}``."""
    relations = _relation_mix(workdir / "data", size.relation_replay, write=False)
    folder = workdir / f"{name}_relations{number if number > 1 else ''}"
    cfg = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml", [
        *_common(workdir, extra), f"init_from={start}", f"run.output_dir={folder}",
        f"train.max_steps={size.relation_steps}", f"train.learning_rate={size.relation_learning_rate}",
        f"data.images={str(images).lower()}", f"data.vqa=[{relations}]"])
    return run_finetune_vr(cfg).checkpoint


def _common(workdir: Path, extra: list[str] | None) -> list[str]:
    return [f"data.dir={workdir / 'data'}", "train.progress_bar=false", "data.eval_max=0", *(extra or [])]


def run_seconds(checkpoint: Path) -> float:
    import json

    return float(json.loads((checkpoint / "vr_run.json").read_text(encoding="utf-8"))["train_seconds"])


def _relation_mix(data: Path, replay: float, *, write: bool = True) -> Path:
    """The training relation questions plus a seeded ``replay`` share of the other questions.

    A pass on relations alone overwrote what stage 2 had learned of the other types; replaying a
    quarter of them kept it (docs/lab/2026-11-30-vr-proof.md, "The relation pass in the bench").
    """
    import json
    import random

    target = data / f"train_vqa.relations-replay{replay:g}.jsonl"
    if not write:
        return target
    lines = (data / "train_vqa.jsonl").read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    _write_lines(target, [line for line in lines if json.loads(line)["type"] == "relation" or rng.random() < replay])
    return target


def _only(data: Path, split: str, types: tuple[str, ...], *, write: bool = True) -> Path:
    """The split's VQA file, or a copy holding only the given question types (made when `write`)."""
    import json

    source = data / f"{split}_vqa.jsonl"
    if not types:
        return source
    target = data / f"{split}_vqa.{'-'.join(types)}.jsonl"
    if not write:
        return target
    _write_lines(target, [line for line in source.read_text(encoding="utf-8").splitlines()
                          if json.loads(line)["type"] in types])
    return target


def _verdicts(source: Path, *, write: bool = True) -> Path:
    """A copy of a VQA file whose reasoned answers keep their verdict alone (made when `write`)."""
    import json

    from finetune.vr.evaluate import final_answer

    target = source.with_name(f"{source.stem}.verdicts.jsonl")
    if not write:
        return target
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    _write_lines(target, [json.dumps({**r, "answer": final_answer(r["answer"])}, ensure_ascii=False) for r in records])
    return target


def _without_yes_no(source: Path, *, write: bool = True) -> Path:
    """A copy of a VQA file without its yes/no relation questions (made when `write`)."""
    import json

    from finetune.vr.evaluate import final_answer
    from research.vr.questions import NO, YES

    target = source.with_name(f"{source.stem}.no-yes-no.jsonl")
    if not write:
        return target

    def kept(line: str) -> bool:
        record = json.loads(line)
        return not (record["type"] == "relation" and final_answer(record["answer"]) in (YES, NO))

    _write_lines(target, [line for line in source.read_text(encoding="utf-8").splitlines() if kept(line)])
    return target


def _write_lines(target: Path, lines: list[str]) -> None:
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}")  # seeds sharing a set may write at once
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(target)
