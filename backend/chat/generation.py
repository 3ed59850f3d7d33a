"""A generation in flight, and the registry that keeps them independent of any HTTP request.

Each answer is produced by one background task; any number of listeners (the request that
started it, a reload, a second tab, a program reconnecting with Last-Event-ID) attach to it and
get every event exactly once. Event ids are "<attempt>-<chars so far>": a listener that comes
back with one receives the text it missed as a single catch-up event, then the live stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("kovr.chat.generation")

TERMINAL = ("done", "error")


@dataclass(frozen=True)
class StreamEvent:
    event: str  # token | done | error
    data: dict[str, Any]
    id: str


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """(attempt, offset) from a Last-Event-ID we issued; anything else means "from the start"."""
    if not value:
        return None
    attempt, sep, offset = value.strip().partition("-")
    if not sep or not attempt.isdigit() or not offset.isdigit():
        return None
    return int(attempt), int(offset)


@dataclass
class Generation:
    message_id: str
    conversation_id: str
    user_id: str
    attempt: int = 0  # bumped by regenerate, so old event ids never match the new text
    text: str = ""
    events: list[StreamEvent] = field(default_factory=list)
    finished: bool = False
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def event_id(self, offset: int | None = None) -> str:
        return f"{self.attempt}-{len(self.text) if offset is None else offset}"

    async def add_text(self, text: str) -> None:
        if not text:
            return
        self.text += text
        await self._publish(StreamEvent("token", {"text": text}, self.event_id()))

    async def finish(self, event: str, data: dict[str, Any]) -> None:
        if self.finished:
            return
        self.finished = True
        await self._publish(StreamEvent(event, data, self.event_id()))

    async def _publish(self, event: StreamEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def listen(self, last_event_id: str | None = None) -> AsyncIterator[StreamEvent]:
        """Everything after last_event_id: the missed text in one event, then live events."""
        position = parse_event_id(last_event_id)
        sent = position[1] if position and position[0] == self.attempt else 0
        sent = min(sent, len(self.text))
        # Snapshot text and event count together (no await in between): nothing falls in a gap.
        index = len(self.events)
        if len(self.text) > sent:
            yield StreamEvent("token", {"text": self.text[sent:]}, self.event_id())
        if index and self.events[index - 1].event in TERMINAL:
            yield self.events[index - 1]
            return
        while True:
            async with self._changed:
                while len(self.events) <= index:
                    await self._changed.wait()
                fresh = self.events[index:]
            index += len(fresh)
            for event in fresh:  # all newer than the snapshot
                yield event
                if event.event in TERMINAL:
                    return


class GenerationRegistry:
    """Running (and recently finished) generations by message id, with their tasks."""

    def __init__(self, keep_finished_s: float = 120.0) -> None:
        self._generations: dict[str, Generation] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._keep_finished_s = keep_finished_s
        self._claims: set[str] = set()

    def claim(self, conversation_id: str) -> bool:
        """Reserve a conversation for a new answer (no await between check and set: no race)."""
        if conversation_id in self._claims or self.running_in(conversation_id) is not None:
            return False
        self._claims.add(conversation_id)
        return True

    def release(self, conversation_id: str) -> None:
        self._claims.discard(conversation_id)

    def get(self, message_id: str) -> Generation | None:
        return self._generations.get(message_id)

    def running_in(self, conversation_id: str) -> Generation | None:
        for generation in self._generations.values():
            if generation.conversation_id == conversation_id and not generation.finished:
                return generation
        return None

    def start(self, generation: Generation, work: Callable[[Generation], Coroutine[Any, Any, None]]) -> None:
        """Run `work` in the background; it owns the generation until it calls finish()."""
        self._generations[generation.message_id] = generation
        task = asyncio.create_task(work(generation), name=f"generation-{generation.message_id}")
        self._tasks[generation.message_id] = task
        task.add_done_callback(lambda t: self._on_done(generation, t))

    def stop(self, message_id: str) -> bool:
        generation = self._generations.get(message_id)
        if generation is None or generation.finished:
            return False
        generation.stop_requested.set()
        return True

    async def wait(self, message_id: str) -> None:
        task = self._tasks.get(message_id)
        if task is not None:
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        """Stop every running generation and wait for each to save what it has."""
        for generation in self._generations.values():
            generation.stop_requested.set()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    def _on_done(self, generation: Generation, task: asyncio.Task[None]) -> None:
        self._tasks.pop(generation.message_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("generation %s crashed", generation.message_id, exc_info=task.exception())
        # Keep it a while so a late reconnect still finds it in memory; the database has it anyway.
        loop = asyncio.get_running_loop()
        loop.call_later(self._keep_finished_s, self._forget, generation)

    def _forget(self, generation: Generation) -> None:
        if self._generations.get(generation.message_id) is generation:
            del self._generations[generation.message_id]
