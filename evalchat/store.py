"""Append-only JSONL caches: one record a line, flushed as written, so a killed run loses at most
the line it was writing (a cut last line is skipped on the next start) and a rerun picks up there."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def cache_key(*parts: Any) -> str:
    raw = json.dumps(parts, ensure_ascii=False, sort_keys=True)
    return hashlib.sha1(raw.encode()).hexdigest()


class JsonlStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a crash cut short; that item is simply done again
                if isinstance(record, dict) and "key" in record:
                    self.records[record["key"]] = record
            self._repair_tail()

    def _repair_tail(self) -> None:
        """A cut last line gets its newline back, so the next append starts on a line of its own."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("ab") as fh:
                fh.write(b"\n")

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, record: dict[str, Any]) -> None:
        self.records[record["key"]] = record
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
