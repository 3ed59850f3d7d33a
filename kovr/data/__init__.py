"""KoVR's own Korean data, shipped inside the package (no download, no ../shared/data needed).

- ``ko_instructions.jsonl``: a small hand-written Korean instruction set, one record a line:
  ``{"instruction", "input", "output", "category"}``. It trains the demo model and keeps the
  fine-tuning tests and CPU runs independent of any external data set.
- ``test_prompts.jsonl``: fixed evaluation prompts, never in the instruction set:
  ``{"id", "category", "instruction", "input", "reference"}``.

Both files are read with :mod:`importlib.resources`, so they work from an installed wheel too,
and every record is validated on load: a broken record is a clear error, not a silent skip.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources

INSTRUCTIONS_FILE = "ko_instructions.jsonl"
TEST_PROMPTS_FILE = "test_prompts.jsonl"

# The categories of both files, in the order they appear in the instruction set.
CATEGORIES = (
    "일상대화", "자기소개", "상식", "과학", "역사", "지리", "요리",
    "건강", "언어", "수학", "프로그래밍", "글쓰기", "추천", "감정",
)
INSTRUCTION_FIELDS = ("instruction", "input", "output", "category")
TEST_PROMPT_FIELDS = ("id", "category", "instruction", "input", "reference")

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_PROMPT_ID = re.compile(r"^[a-z0-9_]{1,64}$")

Record = dict[str, str]


class DemoDataError(ValueError):
    """A packaged data record is malformed; the message names the file and line."""


def load_demo_instructions() -> list[Record]:
    """The Korean instruction set: validated records, a fresh list on every call."""
    return [dict(r) for r in _load(INSTRUCTIONS_FILE, INSTRUCTION_FIELDS, _check_instruction)]


def load_test_prompts() -> list[Record]:
    """The fixed evaluation prompts (finetune evaluation, docs samples), validated."""
    return [dict(r) for r in _load(TEST_PROMPTS_FILE, TEST_PROMPT_FIELDS, _check_test_prompt)]


@cache
def _load(name: str, fields: tuple[str, ...], check: Callable[[Record], None]) -> tuple[Record, ...]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    records: list[Record] = []
    seen: set[tuple[str, str]] = set()
    for line_no, record in _parse_lines(text, name):
        where = f"{name}:{line_no}"
        try:
            _check_shape(record, fields)
            check(record)
        except DemoDataError as exc:
            raise DemoDataError(f"{where}: {exc}") from None
        key = (record["instruction"], record["input"])
        if key in seen:
            raise DemoDataError(f"{where}: duplicate instruction {record['instruction']!r}")
        seen.add(key)
        records.append(record)
    if not records:
        raise DemoDataError(f"{name}: no records")
    return tuple(records)


def _parse_lines(text: str, name: str) -> Iterator[tuple[int, Record]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DemoDataError(f"{name}:{line_no}: not valid JSON ({exc.msg})") from None


def _check_shape(record: object, fields: tuple[str, ...]) -> None:
    if not isinstance(record, dict):
        raise DemoDataError("a record must be a JSON object")
    if set(record) != set(fields):
        raise DemoDataError(f"fields must be exactly {list(fields)}, got {sorted(record)}")
    for key, value in record.items():
        if not isinstance(value, str):
            raise DemoDataError(f"{key!r} must be a string")
        # Hangul can arrive decomposed (NFD) from some editors; the tokenizer sees other ids then.
        if unicodedata.normalize("NFC", value) != value:
            raise DemoDataError(f"{key!r} is not NFC-normalised")
    if record["category"] not in CATEGORIES:
        raise DemoDataError(f"unknown category {record['category']!r}")


def _check_korean(record: Record, key: str) -> None:
    value = record[key]
    if not value.strip() or value != value.strip():
        raise DemoDataError(f"{key!r} must be non-empty without surrounding spaces")
    if not _HANGUL.search(value):
        raise DemoDataError(f"{key!r} has no Hangul")


def _check_instruction(record: Record) -> None:
    _check_korean(record, "instruction")
    _check_korean(record, "output")
    if record["input"] != record["input"].strip():
        raise DemoDataError("'input' has surrounding spaces")


def _check_test_prompt(record: Record) -> None:
    if not _PROMPT_ID.match(record["id"]):
        raise DemoDataError(f"bad id {record['id']!r} (lowercase letters, digits, _)")
    _check_korean(record, "instruction")
    _check_korean(record, "reference")
