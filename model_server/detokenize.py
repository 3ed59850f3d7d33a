"""Text at the edge: incremental, UTF-8 safe detokenisation and stop-sequence hold-back.

The engine deals only in token ids. Here each generated id becomes the text it adds. A byte-level
BPE can split one Hangul syllable (3 UTF-8 bytes) across tokens; while the decoded text ends in
an incomplete sequence (shown by the tokenizer as U+FFFD) the token's text is "" and the text is
released with the token that completes it; bytes that never form a character are dropped. Stop
sequences are held back the same way, so the
concatenated stream always equals the final generated_text exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REPLACEMENT = "\ufffd"
# Prompt tokens kept as decoding context (TGI keeps 5): some tokenizers render a token differently
# at the start of a text (a leading space), so text is measured as a difference against a prefix.
_PREFIX_CONTEXT = 5


class Decodes(Protocol):
    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class IncrementalDecoder:
    """Turns one token id at a time into released text, never splitting a character."""

    def __init__(self, tokenizer: Decodes, prompt_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(prompt_ids[-_PREFIX_CONTEXT:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)

    def push(self, token_id: int) -> str:
        """The text this token completes ("" while a character is still incomplete)."""
        self._ids.append(token_id)
        return self._release(final=False)

    def flush(self) -> str:
        """At the end: whatever complete text is left; a dangling partial character is dropped."""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        if final:
            full = full.rstrip(REPLACEMENT)
        if len(full) <= len(prefix) or full.endswith(REPLACEMENT) or not full.startswith(prefix):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        # Bytes that can never form a character (a model may emit a stray continuation byte) are
        # dropped rather than streamed as U+FFFD.
        return full[len(prefix) :].replace(REPLACEMENT, "")

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True) if ids else ""


class StopMatcher:
    """Holds back text that could be the start of a stop sequence; cuts the text at a match."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Text that can be released now; sets `stopped` when a stop sequence appeared."""
        if self.stopped:
            return ""
        self._pending += text
        cut = self._first_match()
        if cut is not None:
            released, self._pending, self.stopped = self._pending[:cut], "", True
            return released
        hold = self._held_suffix()
        released = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(released) :]
        return released

    def flush(self) -> str:
        released, self._pending = ("" if self.stopped else self._pending), ""
        return released

    def _first_match(self) -> int | None:
        found = [i for s in self._stops if (i := self._pending.find(s)) >= 0]
        return min(found) if found else None

    def _held_suffix(self) -> int:
        """Length of the longest tail of pending text that begins some stop sequence."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(stop[:n]):
                    best = n
                    break
        return best
