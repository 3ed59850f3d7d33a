"""Reading instruction records from the hub (through `datasets`) or from local JSON / JSONL / Parquet.

Every row comes back with where it came from (file and line, or dataset and row), so that a bad
file gets an error naming the file and line, and dropped rows can be reported precisely.
Shapes accepted: KULLM v2 (id / instruction / input / output) and KoAlpaca (instruction / output,
optional input); other keys are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.finetune_config import SourceSpec


class DataError(ValueError):
    """The data cannot be used; the message names the file (and line) or the dataset."""


@dataclass(frozen=True)
class RawRow:
    source: str
    where: str  # "file.jsonl:12" or "nlpai-lab/kullm-v2[train]#12"
    data: Any


def read_source(spec: SourceSpec) -> Iterator[RawRow]:
    if spec.builtin is not None:
        rows = _read_builtin(spec.builtin)
    elif spec.path is not None:
        rows = _read_local(spec.path)
    else:
        rows = _read_hub(spec)
    for count, row in enumerate(rows):
        if spec.max_records is not None and count >= spec.max_records:
            return
        yield row


def _read_local(path: Path) -> Iterator[RawRow]:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    return _read_parquet(path)


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}:{lineno}: not UTF-8 text") from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(data, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}")
            yield RawRow(str(path), f"{path}:{lineno}", data)


def _read_json(path: Path) -> Iterator[RawRow]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records (or {{\"data\": [...]}})")
    lines = _record_lines(text, len(data))
    for index, item in enumerate(data):
        where = f"{path}:{lines[index]}" if lines else f"{path}[{index}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
        yield RawRow(str(path), where, item)


def _record_lines(text: str, count: int) -> list[int] | None:
    """Line of each top-level record in a JSON list, found with a raw decoder (for error messages)."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start < 0:
        return None
    pos, lines = start + 1, list[int]()
    try:
        while len(lines) < count:
            while text[pos] in " \t\r\n,":
                pos += 1
            lines.append(text.count("\n", 0, pos) + 1)
            _, pos = decoder.raw_decode(text, pos)
    except (json.JSONDecodeError, IndexError):
        return None
    return lines


def _read_parquet(path: Path) -> Iterator[RawRow]:
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc.__class__.__name__}: {exc})") from None
    for index, item in enumerate(table.to_pylist()):
        yield RawRow(str(path), f"{path}#row{index + 1}", item)


def _read_hub(spec: SourceSpec) -> Iterator[RawRow]:
    """The real loading path for KULLM v2 / KoAlpaca v1.1a: `datasets.load_dataset` by name."""
    assert spec.name is not None
    try:
        import datasets

        ds = datasets.load_dataset(spec.name, split=spec.split, revision=spec.revision)
    except Exception as exc:
        raise DataError(
            f"{spec.name}: could not load split {spec.split!r} from the Hugging Face hub "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Offline? Point data.sources[].path at a local JSON/JSONL/Parquet copy instead."
        ) from None
    for index, item in enumerate(ds):
        yield RawRow(spec.name, f"{spec.name}[{spec.split}]#{index + 1}", item)


def _read_builtin(name: str) -> Iterator[RawRow]:
    """KoVR's own Korean set (kovr/data), validated by its loader; works from an installed wheel."""
    from kovr.data import load_demo_instructions

    try:
        records = load_demo_instructions()
    except ValueError as exc:
        raise DataError(f"kovr:{name}: {exc}") from None
    for index, item in enumerate(records):
        yield RawRow(f"kovr:{name}", f"kovr:{name}#{index + 1}", item)
