"""One generation request from validated wire types to a stream of TGI events (local engine).

The request is prepared in a worker thread, submitted to the engine (which may refuse it as
overloaded) and then read event by event. Leaving the event iterator early for any reason
(client gone, stop sequence, error) cancels the job, so its slot is freed within one step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from kovr.modeling.align_model import AlignModel
from kovr.settings import Settings
from model_server.engine import Engine, ErrorEvent, Event, Job, PrefillEvent, TokenEvent, async_sink
from model_server.loading import LoadedModel
from model_server.metrics import ServerMetrics
from model_server.prepare import Prepared, prepare
from model_server.stream import StreamState
from model_server.wire import (
    Details,
    GenerateParameters,
    GenerateRequest,
    GenerateResponse,
    PrefillToken,
    SimpleToken,
    StreamResponse,
)


class GenerationError(RuntimeError):
    """Generation failed after the request was accepted (TGI: 424, error_type "generation")."""


@dataclass
class Submitted:
    """An accepted request: its edge state and the engine events still to read."""

    state: StreamState
    job: Job
    events: asyncio.Queue[Event]
    params: GenerateParameters
    prepared: Prepared
    started: float = field(default_factory=time.perf_counter)
    prefill: PrefillEvent | None = None


class ModelService:
    def __init__(
        self, settings: Settings, loaded: LoadedModel, engine: Engine, align: AlignModel | None,
        metrics: ServerMetrics,
    ) -> None:
        self.settings = settings
        self.loaded = loaded
        self.engine = engine
        self.align = align
        self.metrics = metrics

    async def submit(self, request: GenerateRequest) -> Submitted:
        """Validate, prepare and queue; raises WireValidationError or Overloaded before any output."""
        request.check()
        params = request.parameters
        prepared = await asyncio.to_thread(
            prepare, request.inputs, params, loaded=self.loaded, align=self.align, settings=self.settings
        )
        events: asyncio.Queue[Event] = asyncio.Queue()
        job = Job(
            prompt_ids=prepared.prompt_ids,
            params=prepared.sampling,
            max_new_tokens=prepared.max_new_tokens,
            emit=async_sink(asyncio.get_running_loop(), events),
            prompt_embeds=prepared.prompt_embeds,
            prefill_logprobs=params.decoder_input_details and prepared.prompt_embeds is None,
        )
        self.engine.submit(job)
        state = StreamState(
            tokenizer=self.loaded.tokenizer,
            prompt_ids=prepared.prompt_ids,
            stops=params.stop,
            input_length=prepared.input_length,
            seed=prepared.sampling.seed if prepared.sampling.sampling else None,
            prefix=request.inputs if params.return_full_text else "",
        )
        self.metrics.input_tokens.inc(prepared.input_length)
        return Submitted(state, job, events, params, prepared)

    async def events(self, sub: Submitted) -> AsyncGenerator[StreamResponse, None]:
        """The request's stream events, ending with the one that carries generated_text."""
        first_at: float | None = None
        try:
            while not sub.state.finished:
                event = await sub.events.get()
                if isinstance(event, ErrorEvent):
                    raise GenerationError(event.message)
                if isinstance(event, PrefillEvent):
                    sub.prefill = event
                    continue
                assert isinstance(event, TokenEvent)
                if first_at is None:
                    first_at = time.perf_counter()
                    self.metrics.time_to_first_token.observe(first_at - sub.started)
                    if sub.job.started_at is not None:
                        self.metrics.queue_time.observe(sub.job.started_at - sub.job.queued_at)
                response = sub.state.accept(event)
                self.metrics.generated_tokens.inc()
                if not sub.params.details:
                    response.details = None
                yield response
        finally:
            sub.job.cancel()  # no-op when it ended by itself; frees the slot otherwise
            self._observe(sub, first_at)

    async def generate(self, sub: Submitted) -> GenerateResponse:
        last: StreamResponse | None = None
        async for event in self.events(sub):
            last = event
        assert last is not None and last.generated_text is not None
        details = None
        if sub.params.details or sub.params.decoder_input_details:
            assert sub.state.finish is not None
            details = Details(
                finish_reason=sub.state.finish,
                generated_tokens=len(sub.state.tokens),
                seed=sub.state.seed,
                prefill=self._prefill_tokens(sub),
                tokens=sub.state.tokens,
            )
        return GenerateResponse(generated_text=last.generated_text, details=details)

    def tokenize(self, inputs: str) -> list[SimpleToken]:
        encoding = self.loaded.tokenizer(inputs, return_offsets_mapping=True)
        return [
            SimpleToken(id=i, text=inputs[start:stop], start=start, stop=stop)
            for i, (start, stop) in zip(encoding["input_ids"], encoding["offset_mapping"], strict=True)
        ]

    def _prefill_tokens(self, sub: Submitted) -> list[PrefillToken]:
        if sub.prefill is None or not sub.params.decoder_input_details:
            return []
        decode = self.loaded.tokenizer.decode
        return [
            PrefillToken(id=i, text=decode([i]), logprob=lp)
            for i, lp in zip(sub.prefill.ids, sub.prefill.logprobs, strict=True)
        ]

    def _observe(self, sub: Submitted, first_at: float | None) -> None:
        now = time.perf_counter()
        self.metrics.request_duration.observe(now - sub.started)
        decoded = len(sub.state.tokens) - 1
        if first_at is not None and decoded > 0 and now > first_at:
            self.metrics.tokens_per_second.observe(decoded / (now - first_at))
