"""Hold back streamed text that might be the start of a stop sequence, so it is never shown.

TGI streams the tokens of a stop sequence before it stops (model_server may not); either way the
user must never see "### 명령어:" flash by. Text is released as soon as it can no longer grow into
a stop sequence. Leading whitespace of the answer is dropped too (the template ends in a newline).
"""

from __future__ import annotations


class StopFilter:
    def __init__(self, stop: tuple[str, ...]) -> None:
        self._stop = tuple(s for s in stop if s)
        self._pending = ""
        self._started = False
        self.stopped = False  # a stop sequence was seen: everything after it is dropped

    def feed(self, text: str) -> str:
        """Text that is safe to show now."""
        if self.stopped or not text:
            return ""
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        buffer = self._pending + text
        cut = self._first_stop(buffer)
        if cut is not None:
            self.stopped = True
            self._pending = ""
            return buffer[:cut].rstrip()
        keep = self._longest_stop_prefix_suffix(buffer)
        self._pending = buffer[len(buffer) - keep:] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """At the end of the stream the held-back tail was not a stop sequence after all."""
        rest, self._pending = self._pending, ""
        return "" if self.stopped else rest

    def _first_stop(self, buffer: str) -> int | None:
        found = [i for s in self._stop if (i := buffer.find(s)) >= 0]
        return min(found) if found else None

    def _longest_stop_prefix_suffix(self, buffer: str) -> int:
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:n]):
                    best = n
                    break
        return best
