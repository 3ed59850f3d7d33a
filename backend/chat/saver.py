"""Saving a streaming answer: batched content writes while it grows, one final write at the end."""

from __future__ import annotations

import time
from typing import Any

from bson import ObjectId

from backend.db import messages as messages_repo
from backend.db.client import Db


class MessageSaver:
    def __init__(self, *, db: Db, user_id: ObjectId, message_id: ObjectId, interval_s: float) -> None:
        self._db, self._user_id, self._message_id = db, user_id, message_id
        self._interval_s = interval_s
        self._last = time.monotonic()
        self._saved_len = 0

    async def maybe_save(self, content: str, generated_tokens: int) -> None:
        """At most one write per interval, so a fast stream costs few database round trips."""
        now = time.monotonic()
        if now - self._last < self._interval_s or len(content) == self._saved_len:
            return
        self._last, self._saved_len = now, len(content)
        await self._write({"content": content, "generated_tokens": generated_tokens})

    async def final(self, changes: dict[str, Any]) -> None:
        await self._write(changes)

    async def _write(self, changes: dict[str, Any]) -> None:
        await messages_repo.update_message(
            db=self._db, user_id=self._user_id, message_id=self._message_id, changes=changes
        )
