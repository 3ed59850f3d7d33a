"""What an answer's listeners receive: `token` {text}, then one terminal `done` or `error`.

Event ids are "<attempt>-<characters so far>" (attempt: 0 for every answer since the message tree,
where regenerate makes a new message; older answers keep theirs). A continued answer keeps its
attempt and its offsets go on from the saved text, so ids only grow. A listener that
comes back with one (Last-Event-ID or ?after=) gets the text it missed as a single catch-up event,
then the live stream: the same ids from whichever worker serves it, live or from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.core.errors import AppError
from backend.db.models import MessageDoc

TERMINAL = ("done", "error")
MAX_EVENT_ID_CHARS = 40  # "<attempt>-<offset>": two numbers far below this many digits


@dataclass(frozen=True)
class StreamEvent:
    event: str  # token | done | error
    data: dict[str, Any]
    id: str


@dataclass(frozen=True)
class Position:
    attempt: int
    offset: int

    def resume_from(self, attempt: int, text: str) -> int:
        """Characters of `text` the listener already has (0 when it followed another attempt)."""
        return min(self.offset, len(text)) if self.attempt == attempt else 0


def parse_event_id(value: str | None) -> Position | None:
    """A Last-Event-ID we issued; None for none. Anything else is refused (422) before streaming."""
    if value is None or not value.strip():
        return None
    attempt, sep, offset = value.strip().partition("-")
    if len(value) > MAX_EVENT_ID_CHARS or not sep or not attempt.isdecimal() or not offset.isdecimal():
        raise AppError("invalid_event_id")
    if not attempt.isascii() or not offset.isascii():
        raise AppError("invalid_event_id")
    return Position(int(attempt), int(offset))


def token(text: str, attempt: int, length: int) -> StreamEvent:
    return StreamEvent("token", {"text": text}, f"{attempt}-{length}")


def terminal_from(doc: MessageDoc, attempt: int) -> StreamEvent:
    """The terminal event of a finished message, as its own worker sent it."""
    event_id = f"{attempt}-{len(doc['content'])}"
    if doc["status"] in ("error", "interrupted"):
        return StreamEvent("error", AppError(doc.get("error") or "model_error").payload(), event_id)
    finish = doc.get("finish_reason") or ("stopped" if doc["status"] == "stopped" else "length")
    return StreamEvent("done", {
        "message_id": str(doc["_id"]), "finish_reason": finish,
        "generated_tokens": doc.get("generated_tokens", 0),
        "time_to_first_token_ms": doc.get("time_to_first_token_ms"),
    }, event_id)
