"""The background work of one answer: prompt → model stream → events and saved message.

Runs as a task owned by the registry, never by an HTTP request, so a closed browser does not stop
it; it ends at the model's end, the token limit, a stop request or an error, and always leaves
the message in a final state (complete / stopped / error) with the text generated so far.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from text_generation.types import StreamResponse  # type: ignore[import-untyped]

from backend.chat.errors import ChatError
from backend.chat.generation import Generation
from backend.chat.model_client import GenerationParams, ModelClient, map_model_error
from backend.chat.prompt import Exchange, ModelLimits, build_prompt
from backend.chat.saver import MessageSaver
from backend.chat.stop_filter import StopFilter
from backend.db.client import Db
from kovr.prompt import KULLM, PromptTemplate

log = logging.getLogger("kovr.chat.runner")


@dataclass(frozen=True)
class AnswerRequest:
    """Everything the task needs, gathered by the request before it returns."""

    history: list[Exchange]
    question: str
    image_uris: list[str]
    max_new_tokens: int
    temperature: float | None
    top_p: float | None
    seed: int | None = None


@dataclass(frozen=True)
class RunContext:
    db: Db
    model: ModelClient
    user_id: ObjectId
    message_id: ObjectId
    save_interval_s: float


async def run_answer(generation: Generation, ctx: RunContext, request: AnswerRequest) -> None:
    try:
        await _run(generation, ctx, request)
    finally:
        if not generation.finished:  # e.g. the database failed while saving: listeners must not hang
            await generation.finish("error", ChatError("internal_error").payload())


async def _run(generation: Generation, ctx: RunContext, request: AnswerRequest) -> None:
    saver = MessageSaver(db=ctx.db, user_id=ctx.user_id, message_id=ctx.message_id, interval_s=ctx.save_interval_s)
    started = time.monotonic()
    state: dict[str, Any] = {"tokens": 0, "ttft_ms": None, "finish": "length", "prompt_tokens": None}
    try:
        await _generate(generation, ctx, request, saver, started, state)
    except asyncio.CancelledError:
        await _save_end(generation, saver, state, started, "stopped", "stopped")
        raise
    except Exception as exc:  # noqa: BLE001 - every failure ends as an error event and message
        error = map_model_error(exc)
        if not isinstance(exc, ChatError):
            log.warning("generation %s failed: %s", generation.message_id, error.detail)
        await saver.final({"content": generation.text, "status": "error", "error": error.code,
                           "generated_tokens": state["tokens"]})
        await generation.finish("error", error.payload())
        return
    status = "stopped" if generation.stop_requested.is_set() else "complete"
    await _save_end(generation, saver, state, started, status, "stopped" if status == "stopped" else state["finish"])


async def _generate(
    generation: Generation, ctx: RunContext, request: AnswerRequest, saver: MessageSaver,
    started: float, state: dict[str, Any],
) -> None:
    info = await ctx.model.info()
    if request.image_uris and not info.supports_images:
        raise ChatError("images_not_supported", 422)
    template = PromptTemplate.from_json(info.prompt_template) if info.prompt_template else KULLM
    plan = await build_prompt(
        template=template, history=request.history, question=request.question, images=request.image_uris,
        limits=ModelLimits(info.max_input_tokens, info.max_total_tokens, info.image_prefix_tokens),
        max_new_tokens=request.max_new_tokens, count=ctx.model.count_tokens,
    )
    state["prompt_tokens"] = plan.input_tokens
    params = GenerationParams(
        max_new_tokens=plan.max_new_tokens, temperature=request.temperature, top_p=request.top_p,
        stop=template.stop, seed=request.seed,
    )
    stop_filter = StopFilter(template.stop)
    consume = asyncio.ensure_future(_consume(ctx.model.stream(plan.text, params), generation, saver, stop_filter,
                                             started, state))
    await _until_stopped(consume, generation.stop_requested)
    await generation.add_text(stop_filter.flush())


async def _consume(
    items: AsyncGenerator[StreamResponse, None], generation: Generation, saver: MessageSaver, stop_filter: StopFilter,
    started: float, state: dict[str, Any],
) -> None:
    async with aclosing(items):
        async for item in items:
            await _take(item, generation, saver, stop_filter, started, state)
            if stop_filter.stopped:
                state["finish"] = "stop_sequence"
                return


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


async def _take(
    item: StreamResponse, generation: Generation, saver: MessageSaver, stop_filter: StopFilter,
    started: float, state: dict[str, Any],
) -> None:
    state["tokens"] += 1
    shown = stop_filter.feed("" if item.token.special else item.token.text)
    if shown and state["ttft_ms"] is None:
        state["ttft_ms"] = round((time.monotonic() - started) * 1000, 1)
    await generation.add_text(shown)
    await saver.maybe_save(generation.text, state["tokens"])
    if item.details is not None:
        state["finish"] = item.details.finish_reason.value


async def _save_end(
    generation: Generation, saver: MessageSaver, state: dict[str, Any], started: float, status: str, finish: str,
) -> None:
    await saver.final({
        "content": generation.text, "status": status, "finish_reason": finish,
        "generated_tokens": state["tokens"], "prompt_tokens": state["prompt_tokens"],
        "time_to_first_token_ms": state["ttft_ms"], "duration_ms": round((time.monotonic() - started) * 1000, 1),
    })
    await generation.finish("done", {
        "message_id": generation.message_id, "finish_reason": finish, "generated_tokens": state["tokens"],
        "time_to_first_token_ms": state["ttft_ms"],
    })
