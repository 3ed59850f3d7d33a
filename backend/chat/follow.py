"""Following an answer that another worker generates, through the database.

One MongoDB change stream per process carries every message update; each listener of a message
owned elsewhere subscribes by message id and reads the text its owner saved. A stop recorded by
another worker reaches this worker's own job through the same stream. Where the server offers no
change streams (a standalone mongod), listeners poll the message instead. Either way a listener
re-reads the message every `recheck_s` seconds, so a missed event can only delay it, and a job
whose owner died is settled (`interrupted`, text kept) by the first listener that sees its lease
expired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

from bson import ObjectId
from pymongo.errors import PyMongoError

from backend.chat.events import Position, StreamEvent, terminal_from, token
from backend.chat.jobs import JobRunner
from backend.core.aio import within
from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import conversations as conversations_repo
from backend.db import messages as messages_repo
from backend.db.client import Db
from backend.db.models import MessageDoc

log = logging.getLogger("kovr.chat.follow")

_CHEAP_FIELDS = {"content", "generated_tokens", "lease_until"}  # applied without re-reading
_WATCH = [{"$match": {"operationType": "update"}}]


class Subscription:
    """What changed in one message since the listener last looked (None: read it again)."""

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._reread = False
        self.closed = False
        self._event = asyncio.Event()

    def push(self, fields: dict[str, Any] | None) -> None:
        if fields is None:
            self._reread = True
        else:
            self._fields.update(fields)
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def next(self, timeout_s: float) -> dict[str, Any] | None:
        try:  # within, not wait_for: a listener is cancelled when its client goes (backend/core/aio.py)
            await within(self._event.wait(), timeout_s)
        except TimeoutError:
            return None
        self._event.clear()
        fields, reread = self._fields, self._reread
        self._fields, self._reread = {}, False
        return None if reread else fields


class Follower:
    def __init__(self, *, db: Db, runner: JobRunner, recheck_s: float, poll_s: float) -> None:
        self.db, self.runner = db, runner
        self.recheck_s, self.poll_s = recheck_s, poll_s
        self._subs: dict[ObjectId, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self.mode = "starting"
        self._closing = False

    async def start(self) -> None:
        """Use a change stream when the server has them, else poll (logged once)."""
        try:
            stream = await self.db.messages.watch(_WATCH)
        except PyMongoError as exc:
            self.mode = "poll"
            log.warning("no change streams (%s): answers on other workers are followed by polling",
                        type(exc).__name__)
            return
        self.mode = "watch"
        self._task = asyncio.create_task(self._watch(stream), name="follow-messages")

    def end_streams(self) -> None:
        """Shutdown: every listener following another worker's answer ends with `server_restarting`."""
        self._closing = True
        for subs in self._subs.values():
            for sub in subs:
                sub.close()

    async def close(self) -> None:
        self.end_streams()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, stream: Any) -> None:
        backoff = 0.5
        while True:
            try:
                async with stream:
                    async for change in stream:
                        self._dispatch(change)
                        backoff = 0.5
            except PyMongoError as exc:
                log.warning("message change stream failed (%s); reopening", type(exc).__name__)
            for subs in self._subs.values():  # something may have been missed: read again
                for sub in subs:
                    sub.push(None)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            try:
                stream = await self.db.messages.watch(_WATCH)
            except PyMongoError:
                continue

    def _dispatch(self, change: dict[str, Any]) -> None:
        message_id = change.get("documentKey", {}).get("_id")
        fields = change.get("updateDescription", {}).get("updatedFields", {})
        if fields.get("stop_requested") is True:
            self.runner.request_stop(message_id)
        for sub in self._subs.get(message_id, ()):
            sub.push(fields)

    def _subscribe(self, message_id: ObjectId) -> Subscription:
        sub = Subscription()
        self._subs.setdefault(message_id, set()).add(sub)
        return sub

    def _unsubscribe(self, message_id: ObjectId, sub: Subscription) -> None:
        subs = self._subs.get(message_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[message_id]

    async def follow(self, doc: MessageDoc, position: Position | None) -> AsyncIterator[StreamEvent]:
        """The rest of the answer from the database: catch-up text, live text, the end."""
        message_id = doc["_id"]
        sub = self._subscribe(message_id)  # before reading again: no update falls in between
        try:
            current = await messages_repo.get_job(db=self.db, message_id=message_id) or doc
            attempt = messages_repo.attempt_of(current)
            sent = position.resume_from(attempt, current["content"]) if position else 0
            while True:
                text = current["content"]
                if len(text) > sent:
                    yield token(text[sent:], attempt, len(text))
                    sent = len(text)
                if current["status"] != "streaming" or messages_repo.attempt_of(current) != attempt:
                    yield terminal_from(current, attempt)
                    return
                if sub.closed or self._closing:
                    yield StreamEvent("error", AppError("server_restarting").payload(), f"{attempt}-{sent}")
                    return
                current = await self._next_state(current, sub)
        finally:
            self._unsubscribe(message_id, sub)

    async def _next_state(self, current: MessageDoc, sub: Subscription) -> MessageDoc:
        lease = current.get("lease_until")
        if lease is None or lease < utcnow():
            await self._settle(current)
        else:
            wait = self.recheck_s if self.mode == "watch" else self.poll_s
            fields = await sub.next(wait)
            if sub.closed:
                return current
            if fields and set(fields) <= _CHEAP_FIELDS:
                return cast(MessageDoc, {**current, **fields})
        fresh = await messages_repo.get_job(db=self.db, message_id=current["_id"])
        if fresh is None:  # deleted with its conversation
            return cast(MessageDoc, {**current, "status": "error", "error": "message_not_found"})
        return fresh

    async def _settle(self, current: MessageDoc) -> None:
        if await messages_repo.settle_if_expired(db=self.db, message_id=current["_id"]):
            log.warning("answer %s: its worker stopped renewing the lease; settled as interrupted", current["_id"])
            await conversations_repo.release(db=self.db, conversation_id=current["conversation_id"],
                                             message_id=current["_id"])
