"""Rated answers → training records (pure functions; `backend.services.feedback_export` feeds them).

SFT records use the KULLM fields {instruction, input, output} that `kovr finetune` reads;
preference pairs are {prompt, chosen, rejected}, the prompt rendered with the same KULLM template
so a preference trainer sees exactly what the model saw. Every text is NFC and has PII-looking
strings masked before it is written, so nothing personal leaves the database by accident.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kovr.prompt import KULLM

MAX_CONTEXT_TURNS = 4  # earlier exchanges kept as `input`: the most recent ones
MAX_CONTEXT_CHARS = 2000  # older text is cut from the front: the question's neighbourhood matters most
MAX_INSTRUCTION_CHARS = 4000
MAX_OUTPUT_CHARS = 8000

# Order matters: a resident registration number (13 digits) would otherwise half-match a phone.
_PII: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<EMAIL>"),
    ("rrn", re.compile(r"(?<!\d)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?-?\s?[1-8]\d{6}(?!\d)"), "<RRN>"),
    ("phone", re.compile(r"(?<![\d+])(?:\+82[\s-]?(?:\(0\))?\s?|0)(?:1[016789]|2|[3-6][1-5]|70|50\d?)"
                         r"[\s.-]?\d{3,4}[\s.-]?\d{4}(?!\d)"), "<PHONE>"),
)


def mask_pii(text: str, counts: Counter[str] | None = None) -> str:
    """Emails, Korean phone numbers (010-1234-5678, 02-123-4567, +82 10…) and resident
    registration numbers become placeholders; `counts` collects how many of each."""
    for kind, pattern, placeholder in _PII:
        text, found = pattern.subn(placeholder, text)
        if counts is not None and found:
            counts[kind] += found
    return text


class Cleaner:
    """NFC + PII masking, counting what was masked once per distinct text (a question used by an SFT
    record and by a preference pair is one question, not two)."""

    def __init__(self) -> None:
        self.masked: Counter[str] = Counter()
        self._done: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        if text not in self._done:
            self._done[text] = mask_pii(unicodedata.normalize("NFC", text).replace("\r\n", "\n").strip(),
                                        self.masked)
        return self._done[text]


@dataclass(frozen=True)
class Rated:
    """A rated answer with the path that led to it (oldest first, the answer last)."""

    answer: Mapping[str, Any]
    path: Sequence[Mapping[str, Any]]

    @property
    def rating(self) -> int:
        return int((self.answer.get("feedback") or {}).get("rating", 0))


def context_text(earlier: Sequence[Mapping[str, Any]]) -> str:
    """Earlier exchanges as plain dialogue, bounded in turns and characters."""
    lines = [f"{'사용자' if m['role'] == 'user' else 'KoVR'}: {m['content'].strip()}"
             for m in earlier[-2 * MAX_CONTEXT_TURNS:] if m["role"] in ("user", "assistant") and m["content"].strip()]
    text = "\n".join(lines)
    return text[-MAX_CONTEXT_CHARS:].lstrip() if len(text) > MAX_CONTEXT_CHARS else text


def question_and_context(path: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The user message the answer replies to, and the conversation before it."""
    before = list(path[:-1])
    question_at = max((i for i, m in enumerate(before) if m["role"] == "user"), default=-1)
    if question_at < 0:
        return "", ""
    return before[question_at]["content"], context_text(before[:question_at])


class Drops(Counter[str]):
    """Why records were left out: no_consent, incomplete, empty, too_long, duplicate, ..."""


def sft_records(rated: Iterable[Rated], *, min_rating: int, drops: Drops, clean: Cleaner) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in rated:
        if item.rating < min_rating:
            continue  # not a positive example (it may still be half of a preference pair)
        record = _sft_record(item, drops, clean)
        if record is None:
            continue
        key = _digest(record["instruction"], record["input"], record["output"])
        if key in seen:
            drops["duplicate"] += 1
            continue
        seen.add(key)
        records.append(record)
    return records


def _sft_record(item: Rated, drops: Drops, clean: Cleaner) -> dict[str, str] | None:
    if item.answer.get("status") != "complete":
        drops["incomplete"] += 1
        return None
    question, context = question_and_context(item.path)
    record = {"instruction": clean(question), "input": clean(context), "output": clean(item.answer["content"])}
    if not record["instruction"] or not record["output"]:
        drops["empty"] += 1
        return None
    if len(record["instruction"]) > MAX_INSTRUCTION_CHARS or len(record["output"]) > MAX_OUTPUT_CHARS:
        drops["too_long"] += 1
        return None
    return record


def preference_pairs(rated: Iterable[Rated], *, drops: Drops, clean: Cleaner) -> list[dict[str, str]]:
    """Pairs of sibling answers (same conversation, same `parent_id`: answers to the same prompt)
    rated differently: the better-rated one is chosen."""
    groups: dict[tuple[Any, Any], list[Rated]] = {}
    for item in rated:
        parent = item.answer.get("parent_id")
        if parent is not None and item.answer.get("status") == "complete":
            groups.setdefault((item.answer["conversation_id"], parent), []).append(item)
    pairs: list[dict[str, str]] = []
    seen: set[str] = set()
    for siblings in groups.values():
        for better, worse in _ordered_pairs(siblings):
            pair = _pair(better, worse, drops, clean)
            if pair is None:
                continue
            key = _digest(pair["prompt"], pair["chosen"], pair["rejected"])
            if key in seen:
                drops["duplicate"] += 1
                continue
            seen.add(key)
            pairs.append(pair)
    return pairs


def _ordered_pairs(siblings: list[Rated]) -> list[tuple[Rated, Rated]]:
    ordered = sorted(siblings, key=lambda r: (-r.rating, str(r.answer["_id"])))
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:] if a.rating > b.rating]


def _pair(better: Rated, worse: Rated, drops: Drops, clean: Cleaner) -> dict[str, str] | None:
    question, context = question_and_context(better.path)
    prompt = clean(question)
    chosen, rejected = clean(better.answer["content"]), clean(worse.answer["content"])
    if not prompt or not chosen or not rejected or chosen == rejected:
        drops["empty"] += 1
        return None
    if max(len(chosen), len(rejected)) > MAX_OUTPUT_CHARS or len(prompt) > MAX_INSTRUCTION_CHARS:
        drops["too_long"] += 1
        return None
    return {"prompt": KULLM.render(prompt, clean(context)), "chosen": chosen, "rejected": rejected}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
