"""The answers this worker generates: one background task each, their text in memory for the
worker's own listeners, the durable copy in the database.

The database is the source of truth across workers: the owner appends the text in coalesced
writes (at most one in flight per answer, at most `chat_save_interval_s` apart, never on the
token path) which also renew its lease; any worker follows the message there
(`backend.chat.follow`). A crash loses at most one save interval of text plus one write. A stop
recorded in the database by another worker reaches the owner through the follower (or, without
change streams, through its next save, which the stop makes fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from bson import ObjectId
from pymongo.errors import PyMongoError

from backend.chat.events import Position, StreamEvent, token
from backend.chat.model_client import ModelClient, map_model_error
from backend.chat.turn import TurnOutcome, TurnRequest, model_turn
from backend.core.clock import utcnow
from backend.core.errors import AppError
from backend.db import conversations as conversations_repo
from backend.db import messages as messages_repo
from backend.db import usage as usage_repo
from backend.db.client import Db
from backend.db.models import MessageDoc
from backend.db.usage import Reservation

log = logging.getLogger("kovr.chat.jobs")

StopReason = Literal["stopped", "interrupted", "lost"]
KEEP_FINISHED_S = 5.0  # a listener arriving just after the end still finds the job in memory


@dataclass(frozen=True)
class JobTiming:
    save_interval_s: float
    lease_s: float

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 4


@dataclass
class Job:
    """One answer in flight on this worker. Listeners read `text` by offset: a slow listener gets
    what it missed in one event instead of a backlog."""

    message_id: ObjectId
    conversation_id: ObjectId
    user_id: ObjectId
    attempt: int
    reservation: Reservation | None = None  # what it took from the user's daily quota (services.quota)
    text: str = ""
    terminal: StreamEvent | None = None
    stop_reason: StopReason | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Future[None] | None = None

    def changed(self) -> asyncio.Future[None]:
        if self._wake is None or self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def add_text(self, piece: str) -> None:
        if piece:
            self.text += piece
            self._notify()

    def finish(self, event: StreamEvent) -> None:
        if self.terminal is None:
            self.terminal = event
            self.done.set()
            self._notify()

    def request_stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopped.set()

    def event_id(self) -> str:
        return f"{self.attempt}-{len(self.text)}"

    async def listen(self, position: Position | None) -> AsyncIterator[StreamEvent]:
        sent = position.resume_from(self.attempt, self.text) if position else 0
        while True:
            wake = self.changed()
            if len(self.text) > sent:
                yield token(self.text[sent:], self.attempt, len(self.text))
                sent = len(self.text)
                continue
            if self.terminal is not None:
                yield self.terminal
                return
            await wake


class JobRunner:
    """This worker's jobs by message id, and the periodic settling of jobs whose owner died."""

    def __init__(self, *, db: Db, model: ModelClient, worker_id: str, timing: JobTiming) -> None:
        self.db, self.model, self.worker_id, self.timing = db, model, worker_id, timing
        self._jobs: dict[ObjectId, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.stopping = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start_sweeping(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="settle-expired-jobs")

    async def sweep(self) -> int:
        """Settle every job whose lease ran out (its worker died) as `interrupted`, text kept."""
        settled = 0
        for doc in await messages_repo.expired_jobs(db=self.db):
            if await messages_repo.settle_if_expired(db=self.db, message_id=doc["_id"]):
                await conversations_repo.release(db=self.db, conversation_id=doc["conversation_id"],
                                                 message_id=doc["_id"])
                settled += 1
        if settled:
            log.warning("settled %d answer(s) whose worker stopped renewing its lease", settled)
        return settled

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timing.lease_s / 2)
            try:
                await self.sweep()
            except PyMongoError as exc:
                log.warning("sweep failed: %s", type(exc).__name__)

    def interrupt_all(self) -> None:
        """Shutdown: every answer ends now as `interrupted` with its text, listeners get the end."""
        self.stopping = True
        for job in self._jobs.values():
            job.request_stop("interrupted")

    async def shutdown(self, timeout_s: float = 8.0) -> None:
        self.interrupt_all()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    # -- jobs --------------------------------------------------------------------------------
    def get(self, message_id: ObjectId) -> Job | None:
        return self._jobs.get(message_id)

    def request_stop(self, message_id: ObjectId) -> bool:
        job = self._jobs.get(message_id)
        if job is None or job.terminal is not None:
            return False
        job.request_stop("stopped")
        return True

    def start(self, doc: MessageDoc, request: TurnRequest, reservation: Reservation | None = None) -> Job:
        """Run the answer of `doc` (already stored as this worker's job) in the background."""
        job = Job(doc["_id"], doc["conversation_id"], doc["user_id"], messages_repo.attempt_of(doc), reservation)
        self._jobs[job.message_id] = job
        if self.stopping:
            job.request_stop("interrupted")
        task = asyncio.create_task(self._run(job, request), name=f"answer-{job.message_id}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._on_done(job, t))
        return job

    def _on_done(self, job: Job, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("answer %s crashed", job.message_id, exc_info=task.exception())
        asyncio.get_running_loop().call_later(KEEP_FINISHED_S, self._forget, job)

    def _forget(self, job: Job) -> None:
        if self._jobs.get(job.message_id) is job:
            del self._jobs[job.message_id]

    async def _run(self, job: Job, request: TurnRequest) -> None:
        outcome = TurnOutcome()
        saver = asyncio.create_task(self._save_loop(job, outcome))
        error: AppError | None = None
        try:
            work = asyncio.ensure_future(self._consume(job, request, outcome))
            await _until_stopped(work, job.stopped)
        except asyncio.CancelledError:
            job.request_stop("interrupted")
        except Exception as exc:
            error = map_model_error(exc)
            if not isinstance(exc, AppError):
                log.warning("answer %s failed: %s", job.message_id, error.detail)
        finally:
            saver.cancel()
            await asyncio.gather(saver, return_exceptions=True)
            await self._finish(job, outcome, error)

    async def _consume(self, job: Job, request: TurnRequest, outcome: TurnOutcome) -> None:
        async for piece in model_turn(self.model, request, outcome):
            job.add_text(piece)

    async def _save_loop(self, job: Job, outcome: TurnOutcome) -> None:
        """Coalesced saves: the newest text at most every save interval, the lease every heartbeat."""
        loop = asyncio.get_running_loop()
        saved_len, last = 0, loop.time()
        while True:
            if len(job.text) == saved_len:
                wake = job.changed()
                with contextlib.suppress(TimeoutError):
                    remaining = max(0.0, self.timing.heartbeat_s - (loop.time() - last))
                    await asyncio.wait_for(asyncio.shield(wake), remaining)
            wait = self.timing.save_interval_s - (loop.time() - last)
            if wait > 0:
                await asyncio.sleep(wait)
            saved_len, last = len(job.text), loop.time()
            if not await self._save(job, outcome):
                await self._on_save_refused(job)
                return

    async def _save(self, job: Job, outcome: TurnOutcome) -> bool:
        try:
            return await messages_repo.save_progress(
                db=self.db, message_id=job.message_id, worker_id=self.worker_id, content=job.text,
                generated_tokens=outcome.generated_tokens, lease_until=self._lease_until(),
            )
        except PyMongoError as exc:  # the next save tries again; the lease has slack for that
            log.warning("saving answer %s failed: %s", job.message_id, type(exc).__name__)
            return True

    async def _on_save_refused(self, job: Job) -> None:
        doc = await messages_repo.get_job(db=self.db, message_id=job.message_id)
        owned = doc is not None and doc["status"] == "streaming" and doc.get("worker_id") == self.worker_id
        job.request_stop("stopped" if owned and doc and doc.get("stop_requested") else "lost")

    def _lease_until(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.timing.lease_s)

    async def _finish(self, job: Job, outcome: TurnOutcome, error: AppError | None) -> None:
        changes = _final_changes(job, outcome, error)
        try:
            if job.stop_reason != "lost":
                written = await messages_repo.finish_job(
                    db=self.db, message_id=job.message_id, worker_id=self.worker_id, changes=changes)
                if not written:  # settled by another worker meanwhile: it says interrupted
                    changes = {"status": "interrupted", "error": "interrupted"}
            await conversations_repo.release(db=self.db, conversation_id=job.conversation_id,
                                             message_id=job.message_id)
        except PyMongoError as exc:  # the lease runs out and a sweep settles it with the last saved text
            log.error("final save of answer %s failed: %s", job.message_id, type(exc).__name__)
        await self._record_usage(job, outcome)
        job.finish(_terminal(job, outcome, changes))

    async def _record_usage(self, job: Job, outcome: TurnOutcome) -> None:
        """The model server's counts into the user's day (one atomic $inc upsert), replacing what
        the answer reserved; an answer started without a reservation is recorded on today."""
        reservation = job.reservation or Reservation(job.user_id, usage_repo.day_of(), 0)
        try:
            await usage_repo.settle(db=self.db, reservation=reservation, prompt_tokens=outcome.prompt_tokens or 0,
                                    generated_tokens=outcome.generated_tokens)
        except PyMongoError as exc:  # usage is bookkeeping: the answer itself is saved
            log.warning("recording the usage of answer %s failed: %s", job.message_id, type(exc).__name__)


def _final_changes(job: Job, outcome: TurnOutcome, error: AppError | None) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "content": job.text, "generated_tokens": outcome.generated_tokens, "prompt_tokens": outcome.prompt_tokens,
        "time_to_first_token_ms": outcome.time_to_first_token_ms, "duration_ms": outcome.duration_ms(),
    }
    if error is not None:
        return {**changes, "status": "error", "error": error.code}
    if job.stop_reason in ("interrupted", "lost"):
        return {**changes, "status": "interrupted", "error": "interrupted"}
    if job.stop_reason == "stopped":
        return {**changes, "status": "stopped", "finish_reason": "stopped"}
    return {**changes, "status": "complete", "finish_reason": outcome.finish_reason}


def _terminal(job: Job, outcome: TurnOutcome, changes: dict[str, Any]) -> StreamEvent:
    if changes["status"] in ("error", "interrupted"):
        return StreamEvent("error", AppError(changes["error"]).payload(), job.event_id())
    return StreamEvent("done", {
        "message_id": str(job.message_id), "finish_reason": changes["finish_reason"],
        "generated_tokens": outcome.generated_tokens, "time_to_first_token_ms": outcome.time_to_first_token_ms,
    }, job.event_id())


async def _until_stopped(work: asyncio.Future[Any], stop: asyncio.Event) -> None:
    """Wait for `work`; a stop request cancels it (what it produced so far is kept)."""
    stop_wait: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_wait.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if not work.cancelled():
        work.result()  # re-raise the model's error, if any
