"""Normalising and filtering instruction records; every drop is counted by reason."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from finetune.sources import RawRow

# Unicode spaces (NBSP, ideographic space, ...) become plain spaces; zero-width marks disappear.
_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Record:
    instruction: str
    input: str
    output: str
    source: str
    where: str


def normalize_text(text: str) -> str:
    """NFC, one newline convention, plain spaces, no control characters, at most one blank line."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ZERO_WIDTH.sub("", _SPACES.sub(" ", text))
    text = _CONTROL.sub("", text)
    text = _TRAILING.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def to_record(row: RawRow) -> tuple[Record | None, str | None]:
    """A clean record, or None and the reason it was dropped ("broken" / "empty")."""
    data = row.data
    fields = {}
    for key, required in (("instruction", True), ("input", False), ("output", True)):
        value = data.get(key)
        if value is None and not required:
            value = ""
        if not isinstance(value, str):
            return None, "broken"
        fields[key] = normalize_text(value)
    if not fields["instruction"] or not fields["output"]:
        return None, "empty"
    return Record(fields["instruction"], fields["input"], fields["output"], row.source, row.where), None


class Deduper:
    """Keeps the first record of each (instruction, input) pair, across all sources."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def is_new(self, record: Record) -> bool:
        key = (" ".join(record.instruction.split()), " ".join(record.input.split()))
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def clean_rows(
    rows: list[RawRow], deduper: Deduper | None, drops: Counter[str], first_broken: dict[str, str]
) -> list[Record]:
    kept = []
    for row in rows:
        record, reason = to_record(row)
        if record is None:
            assert reason is not None
            drops[reason] += 1
            first_broken.setdefault(reason, row.where)
            continue
        if deduper is not None and not deduper.is_new(record):
            drops["duplicate"] += 1
            continue
        kept.append(record)
    return kept
