"""Answer accuracy by question type (exact match after normalisation), as a table and as JSON, and
the evaluation of a saved checkpoint (`kovr eval-vr`).

A reasoned answer ("…에 있으므로 아니요") scores by its verdict, the part the question asks for;
whether the reason was right as well is counted apart (``reasoned``).
"""

from __future__ import annotations

import random
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.vr.data import VRRecord, encode_prompts, load_vqa
from finetune.vr.loading import load_vr_model, resolve_checkpoint
from finetune.vr.vr_model import VRModel, generate
from kovr.prompt import PromptTemplate

REASON_JOINER = "있으므로 "  # ends the reason of a reasoned answer; the verdict follows it


@dataclass(frozen=True)
class Prediction:
    record: VRRecord
    answer: str

    @property
    def correct(self) -> bool:
        return normalize_answer(final_answer(self.answer)) == normalize_answer(final_answer(self.record.output))

    @property
    def reasoned(self) -> bool:
        return REASON_JOINER in self.record.output

    @property
    def named(self) -> bool | None:
        """Whether a "which one" answer names one of the two things asked about; None for other questions."""
        pair = which_pair(self.record.instruction)
        return None if pair is None else normalize_answer(final_answer(self.answer)) in pair

    @property
    def exact(self) -> bool:
        """Reason and verdict both right."""
        return normalize_answer(self.answer) == normalize_answer(self.record.output)


def final_answer(answer: str) -> str:
    """The verdict of a reasoned answer ("…에 있으므로 아니요" -> "아니요"); other answers unchanged."""
    return answer.rsplit(REASON_JOINER, 1)[-1]


def which_pair(question: str) -> tuple[str, str] | None:
    """The two names a "which one" question asks between ("A와 B 중 …" -> ("A", "B")), else None."""
    head, found, _ = question.partition(" 중 ")
    words = head.split()
    if not found or len(words) < 4 or words[-3][-1:] not in ("와", "과"):
        return None
    return f"{words[-4]} {words[-3][:-1]}", f"{words[-2]} {words[-1]}"


def normalize_answer(text: str) -> str:
    """NFC, no surrounding space or final punctuation, single spaces (the answers are short words)."""
    text = unicodedata.normalize("NFC", text).strip().rstrip(".!?。").strip()
    return " ".join(text.split())


def answer_budget(records: list[VRRecord], tokenizer: Any, margin: int = 8) -> int:
    """Tokens to generate: the longest reference answer plus a margin.

    A fixed cap cut reasoned answers short with a byte-level tokenizer (a Hangul syllable is two or
    three tokens), scoring "…있으므로 아니" as wrong; an answer longer than this is wrong anyway.
    """
    longest = max((len(tokenizer(r.output, add_special_tokens=False)["input_ids"]) for r in records), default=0)
    return longest + margin


def predict(model: VRModel, tokenizer: Any, template: PromptTemplate, records: list[VRRecord], *,
            use_images: bool, batch_size: int = 32, max_new_tokens: int | None = None) -> list[Prediction]:
    """Greedy answers; ``max_new_tokens`` defaults to ``answer_budget`` of the records."""
    max_new_tokens = max_new_tokens or answer_budget(records, tokenizer)
    was_training = model.training
    model.eval()
    out: list[Prediction] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        prompts = encode_prompts(chunk, tokenizer, template, use_images)
        answers = generate(model, prompts, tokenizer, max_new_tokens)
        out.extend(Prediction(r, a) for r, a in zip(chunk, answers, strict=True))
    model.train(was_training)
    return out


def accuracy_by_type(predictions: list[Prediction]) -> dict[str, Any]:
    """{"overall": {...}, "by_type": {type: {...}}, "by_template": {"seen"/"heldout": {...}},
    "by_template_id": {template id: {...}}, "which_one": {template id: {...}}}.

    The template ids split a type by the form of its question: a relation score can rise merely
    because a model answers a held-out form's "which one" questions with a name at all.
    """
    groups: dict[str, dict[str, list[bool]]] = {
        "by_type": defaultdict(list), "by_template": defaultdict(list), "by_template_id": defaultdict(list)}
    for p in predictions:
        groups["by_type"][p.record.type].append(p.correct)
        groups["by_template"]["heldout" if p.record.heldout_template else "seen"].append(p.correct)
        if p.record.template:
            groups["by_template_id"][p.record.template].append(p.correct)
    result: dict[str, Any] = {"overall": _score([p.correct for p in predictions])}
    for name, group in groups.items():
        result[name] = {key: _score(values) for key, values in sorted(group.items())}
    which: dict[str, list[Prediction]] = defaultdict(list)
    for p in predictions:
        if p.named is not None:
            which[p.record.template or p.record.type].append(p)
    if which:
        result["which_one"] = {key: _which_score(group) for key, group in sorted(which.items())}
    reasoned = [p for p in predictions if p.reasoned]
    if reasoned:
        result["reasoned"] = {"verdict": _score([p.correct for p in reasoned]),
                              "reason_and_verdict": _score([p.exact for p in reasoned])}
    return result


def _which_score(predictions: list[Prediction]) -> dict[str, Any]:
    """How many "which one" answers name one of the two things at all, and how many of those are right:
    a form the model cannot read shows as answers that name neither, not only as a lower score."""
    named = [p for p in predictions if p.named]
    return {"n": len(predictions), "named": len(named), "named_share": _share(len(named), len(predictions)),
            "right_of_named": _share(sum(p.correct for p in named), len(named))}


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _score(values: list[bool]) -> dict[str, Any]:
    accuracy = round(sum(values) / len(values), 4) if values else 0.0
    return {"n": len(values), "correct": sum(values), "accuracy": accuracy}


def format_table(result: dict[str, Any], title: str = "") -> str:
    lines = [title] if title else []
    lines += ["| 유형 type | n | 정확도 accuracy |", "|---|---:|---:|"]
    for key, score in result["by_type"].items():
        lines.append(f"| {key} | {score['n']} | {score['accuracy']:.1%} |")
    for key, score in result["by_template"].items():
        lines.append(f"| template: {key} | {score['n']} | {score['accuracy']:.1%} |")
    for key, score in result.get("reasoned", {}).items():
        lines.append(f"| reasoned answers: {key.replace('_', ' ')} | {score['n']} | {score['accuracy']:.1%} |")
    for key, which in result.get("which_one", {}).items():
        lines.append(f"| which one, {key}: names one of the two / right of those | {which['n']} | "
                     f"{which['named_share']:.1%} / {which['right_of_named']:.1%} |")
    overall = result["overall"]
    lines.append(f"| **전체 overall** | {overall['n']} | {overall['accuracy']:.1%} |")
    return "\n".join(lines)


# --- `kovr eval-vr`: a checkpoint on a VQA set --------------------------------------------------
def eval_records(data: Path, split: str, limit: int | None, seed: int = 0) -> list[VRRecord]:
    path = data / f"{split}_vqa.jsonl" if data.is_dir() else data
    records = load_vqa(path)
    if limit is not None and limit < len(records):
        records = random.Random(seed).sample(records, limit)
    return records


def evaluate_checkpoint(checkpoint: Path, data: Path, *, split: str = "test", limit: int | None = None,
                        batch_size: int = 32, images: str = "auto",
                        threads: int | None = None) -> tuple[dict[str, Any], str]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model, tokenizer, template, info = load_vr_model(checkpoint)
    use_images = info.get("images", True) if images == "auto" else images == "on"
    records = eval_records(data, split, limit)
    predictions = predict(model, tokenizer, template, records, use_images=use_images, batch_size=batch_size)
    result = accuracy_by_type(predictions)
    result["checkpoint"] = str(resolve_checkpoint(checkpoint))
    result["images"] = bool(use_images)
    result["examples"] = [
        {"question": p.record.instruction, "answer": p.record.output, "predicted": p.answer, "type": p.record.type}
        for p in predictions[:5]
    ]
    title = f"{result['checkpoint']} (이미지 images: {'on' if use_images else 'off'})"
    return result, format_table(result, title)
