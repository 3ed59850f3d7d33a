"""Prompt sets: JSONL in KULLM's fields (``instruction``, ``input``, optional ``reference``, ``category``).

An ``id`` is optional too; without one an item is named by its line. The set KoVR ships
(``kovr/data/ko_chat_eval.jsonl``) was written for this project; any file of the same shape works.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

BUILTIN_SET = "ko_chat_eval.jsonl"
DEFAULT_CATEGORY = "기타"
_FIELDS = {"id", "instruction", "input", "reference", "category", "output"}


class PromptSetError(ValueError):
    """A prompt-set record is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    id: str
    instruction: str
    input: str = ""
    reference: str = ""
    category: str = DEFAULT_CATEGORY

    @property
    def content_hash(self) -> str:
        """What a cached answer depends on: the question itself, not its id or category."""
        raw = json.dumps([self.instruction, self.input], ensure_ascii=False)
        return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _text(record: dict[str, object], key: str, where: str) -> str:
    value = record.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PromptSetError(f"{where}: {key!r} must be a string")
    return unicodedata.normalize("NFC", value).strip()


def parse_prompt_set(text: str, name: str) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise PromptSetError(f"{where}: a record must be a JSON object")
        unknown = set(record) - _FIELDS
        if unknown:
            raise PromptSetError(f"{where}: unknown fields {sorted(unknown)}")
        # KULLM's sets call the reference answer "output"; either name works.
        reference = _text(record, "reference", where) or _text(record, "output", where)
        item = Item(
            id=_text(record, "id", where) or f"line{line_no}",
            instruction=_text(record, "instruction", where),
            input=_text(record, "input", where),
            reference=reference,
            category=_text(record, "category", where) or DEFAULT_CATEGORY,
        )
        if not item.instruction:
            raise PromptSetError(f"{where}: 'instruction' is empty")
        if item.id in seen:
            raise PromptSetError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise PromptSetError(f"{name}: no records")
    return items


def load_prompt_set(path: Path | None = None) -> list[Item]:
    """The file at ``path``, or KoVR's own Korean set when ``path`` is None."""
    if path is None:
        text = resources.files("kovr.data").joinpath(BUILTIN_SET).read_text(encoding="utf-8")
        return parse_prompt_set(text, BUILTIN_SET)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptSetError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_prompt_set(text, str(path))
