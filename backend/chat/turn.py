"""One model turn: prompt → model stream → text pieces, and an outcome. Stores nothing.

The chat's background job (`backend.chat.jobs`) and the stateless `/v1/chat/completions` both
consume this generator; neither builds prompts, filters stop sequences or reads the model's
details itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from backend.chat.model_client import GenerationParams, ModelClient
from backend.chat.prompt import Exchange, ModelLimits, build_prompt
from backend.chat.stop_filter import StopFilter
from backend.core.errors import AppError
from kovr.prompt import KULLM, PromptTemplate

MAX_STOP = 4  # TGI's default limit on stop sequences


@dataclass(frozen=True)
class TurnRequest:
    """Everything a model turn needs, gathered before it starts."""

    history: list[Exchange]
    question: str
    image_uris: list[str]
    max_new_tokens: int
    temperature: float | None
    top_p: float | None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # the caller's own, on top of the template's
    answer_prefix: str = ""  # continue: the saved part of the answer, which the model goes on from


@dataclass
class TurnOutcome:
    """Filled in while the turn runs; read when it ends (also after an error or a stop)."""

    finish_reason: str = "length"  # TGI's: length | eos_token | stop_sequence
    prompt_tokens: int | None = None
    generated_tokens: int = 0
    time_to_first_token_ms: float | None = None
    started: float = field(default_factory=time.monotonic)

    def duration_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 1)


async def model_turn(model: ModelClient, request: TurnRequest, outcome: TurnOutcome) -> AsyncIterator[str]:
    """Text pieces as the model makes them (never a piece of a stop sequence); raises AppError."""
    info = await model.info()
    if request.image_uris and not info.supports_images:
        raise AppError("images_not_supported")
    template = PromptTemplate.from_json(info.prompt_template) if info.prompt_template else KULLM
    plan = await build_prompt(
        template=template, history=request.history, question=request.question, images=request.image_uris,
        limits=ModelLimits(info.max_input_tokens, info.max_total_tokens, info.image_prefix_tokens),
        max_new_tokens=request.max_new_tokens, count=model.count_tokens, answer_prefix=request.answer_prefix,
    )
    outcome.prompt_tokens = plan.input_tokens
    stops = tuple(dict.fromkeys([*request.stop, *template.stop]))[:MAX_STOP]
    params = GenerationParams(max_new_tokens=plan.max_new_tokens, temperature=request.temperature,
                              top_p=request.top_p, stop=stops, seed=request.seed)
    stop_filter = StopFilter(stops)
    async with aclosing(model.stream(plan.text, params)) as items:
        async for item in items:
            outcome.generated_tokens += 1
            piece = stop_filter.feed("" if item.token.special else item.token.text)
            if item.details is not None:
                outcome.finish_reason = item.details.finish_reason.value
            if piece:
                if outcome.time_to_first_token_ms is None:
                    outcome.time_to_first_token_ms = round((time.monotonic() - outcome.started) * 1000, 1)
                yield piece
            if stop_filter.stopped:
                outcome.finish_reason = "stop_sequence"
                return
    tail = stop_filter.flush()
    if tail:
        yield tail
