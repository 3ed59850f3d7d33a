"""Stateless completion for the OpenAI-compatible API: messages in, text pieces out.

Shares the prompt building, trimming and stop-sequence handling with the chat, but stores
nothing and runs inside the request (a client that goes away cancels it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from backend.chat.errors import ChatError
from backend.chat.model_client import GenerationParams, ModelClient
from backend.chat.prompt import Exchange, ModelLimits, build_prompt
from backend.chat.stop_filter import StopFilter
from kovr.prompt import KULLM, PromptTemplate

MAX_STOP = 4


@dataclass(frozen=True)
class Conversation:
    history: list[Exchange]
    question: str
    image_uris: list[str]


@dataclass
class Outcome:
    finish_reason: str = "length"  # OpenAI's: stop | length
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_ms: float | None = None
    started: float = field(default_factory=time.monotonic)


async def complete(
    model: ModelClient, conversation: Conversation, *, max_new_tokens: int, temperature: float | None,
    top_p: float | None, stop: list[str], seed: int | None, outcome: Outcome,
) -> AsyncIterator[str]:
    info = await model.info()
    if conversation.image_uris and not info.supports_images:
        raise ChatError("images_not_supported", 422)
    template = PromptTemplate.from_json(info.prompt_template) if info.prompt_template else KULLM
    plan = await build_prompt(
        template=template, history=conversation.history, question=conversation.question,
        images=conversation.image_uris, max_new_tokens=max_new_tokens, count=model.count_tokens,
        limits=ModelLimits(info.max_input_tokens, info.max_total_tokens, info.image_prefix_tokens),
    )
    outcome.prompt_tokens = plan.input_tokens
    stops = tuple(dict.fromkeys([*stop, *template.stop]))[:MAX_STOP]
    params = GenerationParams(max_new_tokens=plan.max_new_tokens, temperature=temperature, top_p=top_p,
                              stop=stops, seed=seed)
    stop_filter = StopFilter(stops)
    async with aclosing(model.stream(plan.text, params)) as items:
        async for item in items:
            outcome.completion_tokens += 1
            piece = stop_filter.feed("" if item.token.special else item.token.text)
            if item.details is not None:
                outcome.finish_reason = "length" if item.details.finish_reason.value == "length" else "stop"
            if piece:
                if outcome.time_to_first_token_ms is None:
                    outcome.time_to_first_token_ms = round((time.monotonic() - outcome.started) * 1000, 1)
                yield piece
            if stop_filter.stopped:
                outcome.finish_reason = "stop"
                return
    tail = stop_filter.flush()
    if tail:
        yield tail
