"""The packaged Korean instruction set and evaluation prompts: well-formed, balanced, held out."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from kovr.data import (
    CATEGORIES,
    INSTRUCTION_FIELDS,
    INSTRUCTIONS_FILE,
    TEST_PROMPTS_FILE,
    DemoDataError,
    _load,
    load_demo_instructions,
    load_test_prompts,
)

DATA_DIR = Path(__file__).resolve().parent.parent / "kovr" / "data"


def _raw_lines(name: str) -> list[str]:
    return (DATA_DIR / name).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", [INSTRUCTIONS_FILE, TEST_PROMPTS_FILE])
def test_every_line_is_one_nfc_json_object(name: str) -> None:
    lines = _raw_lines(name)
    assert lines, name
    for number, line in enumerate(lines, start=1):
        assert line.strip(), f"{name}:{number} is blank"
        assert unicodedata.normalize("NFC", line) == line, f"{name}:{number} is not NFC"
        assert isinstance(json.loads(line), dict), f"{name}:{number}"


def test_instruction_set_is_large_valid_and_unique() -> None:
    records = load_demo_instructions()
    assert len(records) >= 300
    assert all(tuple(r) == INSTRUCTION_FIELDS for r in records)
    assert all(r["instruction"].strip() and r["output"].strip() for r in records)
    instructions = Counter((r["instruction"], r["input"]) for r in records)
    assert max(instructions.values()) == 1
    outputs = Counter(r["output"] for r in records)
    assert max(outputs.values()) == 1, outputs.most_common(1)


def test_categories_are_all_present_and_balanced() -> None:
    counts = Counter(r["category"] for r in load_demo_instructions())
    assert set(counts) == set(CATEGORIES)
    # No category may dominate what the demo model learns: the largest at most 1.5x the smallest.
    assert max(counts.values()) <= 1.5 * min(counts.values()), counts
    assert min(counts.values()) >= 15, counts


def test_writing_tasks_carry_an_input_text() -> None:
    writing = [r for r in load_demo_instructions() if r["category"] == "글쓰기"]
    assert writing and all(r["input"].strip() for r in writing)


def test_answers_are_short_polite_korean() -> None:
    for r in load_demo_instructions():
        prose = r["output"].split("```")[0].rstrip()
        assert len(prose) <= 300, r["instruction"]
        # Polite endings (해요체/합니다체); a closing example in brackets is not the ending.
        # 글쓰기 is excluded: rewriting into 반말 on request is the task there.
        if r["category"] != "글쓰기":
            ending = re.sub(r"\([^()]*\)\.$", ".", prose)
            assert ending.endswith(("요.", "요!", "요?", "다.", "니다!")), r


def test_self_description_names_kovr_and_images() -> None:
    about = [r["output"] for r in load_demo_instructions() if r["category"] == "자기소개"]
    assert sum("KoVR" in text for text in about) >= 5
    assert sum("이미지" in text for text in about) >= 5


def test_test_prompts_are_held_out_and_cover_categories() -> None:
    prompts = load_test_prompts()
    assert 15 <= len(prompts) <= 40
    assert len({p["id"] for p in prompts}) == len(prompts)
    train = {(r["instruction"], r["input"]) for r in load_demo_instructions()}
    assert not [p["id"] for p in prompts if (p["instruction"], p["input"]) in train]
    assert len({p["category"] for p in prompts}) >= 10


def test_loader_returns_fresh_copies() -> None:
    first = load_demo_instructions()
    first[0]["output"] = "changed"
    assert load_demo_instructions()[0]["output"] != "changed"


def test_files_ship_as_package_resources() -> None:
    # The loader reads through importlib.resources, as an installed wheel would.
    root = resources.files("kovr.data")
    assert root.joinpath(INSTRUCTIONS_FILE).is_file()
    assert root.joinpath(TEST_PROMPTS_FILE).is_file()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"instruction": "안녕", "input": "", "output": "안녕하세요", "category": "없음"}', "unknown category"),
        ('{"instruction": "안녕", "input": "", "output": "hello", "category": "감정"}', "no Hangul"),
        ('{"instruction": "안녕", "input": "", "category": "감정"}', "fields must be exactly"),
        ('{"instruction": "\u1100\u1161", "input": "", "output": "가요", "category": "감정"}', "NFC"),
        ('{"instruction": "안녕", "input": 3, "output": "안녕하세요", "category": "감정"}', "must be a string"),
    ],
)
def test_bad_records_are_refused_with_file_and_line(
    line: str, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "fakedata"
    package.mkdir()
    good = '{"instruction": "좋아요", "input": "", "output": "네, 좋아요.", "category": "감정"}'
    (package / INSTRUCTIONS_FILE).write_text(good + "\n" + line + "\n", encoding="utf-8")
    monkeypatch.setattr("kovr.data.resources.files", lambda _package: package)
    _load.cache_clear()
    try:
        with pytest.raises(DemoDataError, match=rf"{INSTRUCTIONS_FILE}:2: .*{message}"):
            load_demo_instructions()
    finally:
        _load.cache_clear()


def test_duplicate_records_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    good = '{"instruction": "좋아요", "input": "", "output": "네, 좋아요.", "category": "감정"}'
    (tmp_path / INSTRUCTIONS_FILE).write_text(f"{good}\n{good}\n", encoding="utf-8")
    monkeypatch.setattr("kovr.data.resources.files", lambda _package: tmp_path)
    _load.cache_clear()
    try:
        with pytest.raises(DemoDataError, match="duplicate"):
            load_demo_instructions()
    finally:
        _load.cache_clear()
