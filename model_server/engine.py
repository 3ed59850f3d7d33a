"""The inference engine: token ids in, token ids out, one worker thread, continuous batching.

It knows nothing about text. A request becomes a :class:`Job` (prompt ids or spliced prompt
embeddings plus resolved sampling parameters). Up to `slots` jobs run at once; new ones are
prefilled together where their lengths are close (see :func:`prefill_groups`), prompts with images
among them, and join the running batch; every step decodes all running rows in one forward pass.
The batch's KV cache is either dynamic (batch.py: left-padded, rebuilt when rows come and go) or
static (slots.py: a preallocated slot per row, decode steps replayed from CUDA graphs on a GPU,
graphs.py). Jobs beyond the
slots wait; past `max_queue` waiting jobs, :meth:`Engine.submit` refuses with :class:`Overloaded`.
Cancelling a job (client gone, stop sequence found) removes its row before the next step and frees
its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from model_server.batch import BatchCache, Prefill, prefill, prefill_batch
from model_server.graphs import capture_decode_graphs
from model_server.loading import LoadedModel
from model_server.sampling import SamplingParams, choose, choose_greedy
from model_server.slots import SlotCache
from model_server.wire import FinishReason

log = logging.getLogger(__name__)
NON_FINITE = "Request failed during generation: the model's scores are not finite (NaN); its weights may be broken"


class Overloaded(RuntimeError):
    """Every slot is busy and the queue is full (TGI: 429, error_type "overloaded")."""


@dataclass(frozen=True)
class TokenEvent:
    """One generated token; `finish` is set on the job's last token."""

    id: int
    logprob: float
    special: bool
    finish: FinishReason | None = None


@dataclass(frozen=True)
class PrefillEvent:
    ids: list[int]
    logprobs: list[float | None]


@dataclass(frozen=True)
class ErrorEvent:
    message: str


Event = TokenEvent | PrefillEvent | ErrorEvent


@dataclass
class Job:
    prompt_ids: list[int]
    params: SamplingParams
    max_new_tokens: int
    emit: Callable[[Event], None]
    prompt_embeds: torch.Tensor | None = None  # [T, hidden] when images were spliced in
    prefill_logprobs: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None

    def cancel(self) -> None:
        self.cancelled.set()

    @property
    def length(self) -> int:
        """Positions in the prompt: tokens, or embeddings when images were spliced in."""
        return len(self.prompt_ids) if self.prompt_embeds is None else int(self.prompt_embeds.shape[0])


def async_sink(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event]) -> Callable[[Event], None]:
    """An `emit` callable that hands events from the worker thread to an asyncio queue."""

    def emit(event: Event) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: the consumer is gone
            loop.call_soon_threadsafe(queue.put_nowait, event)

    return emit


@dataclass
class _Row:
    job: Job
    generator: torch.Generator
    generated: list[int] = field(default_factory=list)
    next_id: int = 0
    done: bool = False


def prefill_groups(jobs: list[Job], waste: float = 0.25, *, batch_images: bool = True) -> list[list[Job]]:
    """Jobs that can share one prefill pass, grouped by prompt length.

    A group's padding stays under ``waste`` of its real tokens. Prompts with images (embeddings)
    group with text prompts like any other; prompts that want per-token log-probabilities are
    prefilled alone (their pass keeps every position's logits), and so are prompts with images when
    not ``batch_images``.
    """

    def solo(job: Job) -> bool:
        return job.prefill_logprobs or (not batch_images and job.prompt_embeds is not None)

    alone = [[job] for job in jobs if solo(job)]
    plain = sorted((job for job in jobs if not solo(job)), key=lambda job: job.length)
    groups: list[list[Job]] = []
    current: list[Job] = []
    tokens = 0
    for job in plain:
        n = job.length  # the longest so far: sorted ascending
        if current and n * (len(current) + 1) > (1 + waste) * (tokens + n):
            groups.append(current)
            current, tokens = [], 0
        current.append(job)
        tokens += n
    return groups + ([current] if current else []) + alone


KVCache = Literal["dynamic", "static"]


class Engine:
    def __init__(
        self,
        loaded: LoadedModel,
        *,
        slots: int,
        max_queue: int,
        prefills_per_step: int,
        threads: int | None = None,
        ignore_eos: bool = False,
        kv_cache: KVCache = "dynamic",
        max_total_tokens: int = 2048,
        graph_batch_sizes: list[int] | None = None,
        batch_images: bool = True,
    ) -> None:
        """`kv_cache` "static" preallocates `slots` rows of `max_total_tokens`; `graph_batch_sizes`
        (static cache on CUDA only) are the batch sizes whose decode step is captured in CUDA graphs."""
        self.loaded = loaded
        self.kv_cache: KVCache = kv_cache
        self.max_total_tokens = max_total_tokens
        self.graph_batch_sizes = graph_batch_sizes
        self.batch_images = batch_images
        self.ignore_eos = ignore_eos  # benchmarks: EOS is masked out, as HF's min_new_tokens does
        self.threads = threads
        self.slots = slots
        self.max_queue = max_queue
        self.prefills_per_step = prefills_per_step
        self._eos = loaded.eos_ids
        self._banned = sorted(self._eos) if ignore_eos else []
        self._special = loaded.special_ids
        self._waiting: deque[Job] = deque()
        self._rows: list[_Row] = []
        self._admitting = 0  # taken from the queue, being prefilled: running, though not yet in _rows
        self._batch: BatchCache | SlotCache = BatchCache()  # the static one is built in the worker thread
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kovr-engine", daemon=True)

    # --- public, called from the event loop ---------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closed:
                raise Overloaded("Model server is shutting down")
            if self.running + len(self._waiting) >= self.slots + self.max_queue:
                raise Overloaded("Model is overloaded")
            self._waiting.append(job)
            self._cond.notify()

    @property
    def queue_length(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._rows) + self._admitting

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the worker thread --------------------------------------------------------------------
    def _run(self) -> None:
        if self.threads:  # set in this thread: OpenMP's thread count does not follow across threads
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            self._batch = self._make_batch()
            while self._next_work():
                try:
                    self._admit()
                    self._drop_cancelled()
                    if self._rows:
                        self._decode_step()
                except Exception as exc:  # a broken step fails its requests, never the server
                    log.exception("generation step failed")
                    self._fail_all(f"Request failed during generation: {exc}")

    def _make_batch(self) -> BatchCache | SlotCache:
        """The batch cache this engine decodes with; a static one that cannot be built falls back to dynamic."""
        if self.kv_cache != "static":
            return BatchCache()
        model = self.loaded.model
        try:
            cache = SlotCache(model, self.slots, self.max_total_tokens)
        except Exception:  # e.g. out of GPU memory for slots x max_total_tokens
            log.exception("static KV cache of %d x %d tokens failed; using the dynamic one",
                          self.slots, self.max_total_tokens)
            self.kv_cache = "dynamic"
            return BatchCache()
        if self.graph_batch_sizes and self.loaded.device.type == "cuda":
            capture_decode_graphs(cache, model, self.graph_batch_sizes)
        return cache

    def _next_work(self) -> bool:
        with self._cond:
            while not self._closed and not self._rows and not self._waiting:
                self._cond.wait()
            if self._closed:
                for job in self._waiting:
                    job.emit(ErrorEvent("Model server is shutting down"))
                self._waiting.clear()
                self._fail_all("Model server is shutting down")
            return not self._closed

    def _take_waiting(self) -> list[Job]:
        with self._cond:
            free = min(self.slots - len(self._rows), self.prefills_per_step)
            taken: list[Job] = []
            while self._waiting and len(taken) < free:
                job = self._waiting.popleft()
                if not job.cancelled.is_set():
                    taken.append(job)
            self._admitting = len(taken)
            return taken

    def _admit(self) -> None:
        """Prefill the waiting jobs and send each its first token; then all join the batch at once.

        A failure on the way (the first token's choice, joining the batch) fails every job taken
        here that has not joined: they are in no queue and no batch row, so nothing else would
        ever end them — their clients would wait forever."""
        taken: list[Job] = []
        try:
            self._join(self._prefill_waiting(taken))
        except Exception as exc:
            running = {id(row.job) for row in self._rows}
            for job in taken:
                if id(job) not in running:
                    job.emit(ErrorEvent(f"Request failed during generation: {exc}"))
            raise
        finally:
            self._admitting = 0

    def _prefill_waiting(self, taken: list[Job]) -> list[tuple[_Row, Prefill]]:
        joining: list[tuple[_Row, Prefill]] = []
        taken.extend(self._take_waiting())
        for group in prefill_groups(taken, batch_images=self.batch_images):
            ready: list[tuple[_Row, Prefill]] = []
            for job, result in self._prefill_group(group):
                if isinstance(result, Exception):
                    job.emit(ErrorEvent(f"Request failed during generation: {result}"))
                else:
                    ready.append((_Row(job=job, generator=job.params.generator()), result))
            if not ready:
                continue
            rows = [row for row, _ in ready]
            firsts = self._choose_rows(rows, torch.stack([result.last_logits for _, result in ready]))
            for (row, result), first in zip(ready, firsts, strict=True):
                self._take(row, *first)
                if not (row.done or row.job.cancelled.is_set()):
                    joining.append((row, result))
        return joining

    def _prefill_group(self, group: list[Job]) -> list[tuple[Job, Prefill | Exception]]:
        """One forward pass for the group; if that fails, each job alone, so one bad prompt fails alone."""
        started = time.perf_counter()
        for job in group:
            job.started_at = started
        if len(group) > 1:
            try:
                device = self.loaded.device
                prompts = [
                job.prompt_embeds.to(device) if job.prompt_embeds is not None
                else torch.tensor(job.prompt_ids, dtype=torch.long, device=device)
                for job in group
            ]
                return list(zip(group, prefill_batch(self.loaded.model, prompts), strict=True))
            except Exception:
                log.exception("batched prefill failed; prefilling one at a time")
        done: list[tuple[Job, Prefill | Exception]] = []
        for job in group:
            try:
                done.append((job, self._prefill(job)))
            except Exception as exc:
                log.exception("prefill failed")
                done.append((job, exc))
        return done

    def _join(self, joining: list[tuple[_Row, Prefill]]) -> None:
        if not joining:
            return
        with self._cond:  # a failure here leaves them out of the batch: _admit fails them
            self._batch.add(*(result for _, result in joining))
            self._rows.extend(row for row, _ in joining)
            self._admitting = 0

    def _prefill(self, job: Job) -> Prefill:
        device = self.loaded.device
        if job.prompt_embeds is not None:
            return prefill(self.loaded.model, inputs_embeds=job.prompt_embeds.to(device))
        ids = torch.tensor(job.prompt_ids, dtype=torch.long, device=device)
        result = prefill(self.loaded.model, input_ids=ids, keep_all_logits=job.prefill_logprobs)
        if job.prefill_logprobs and result.all_logits is not None:
            job.emit(_prefill_event(job.prompt_ids, result.all_logits))
        return result

    def _decode_step(self) -> None:
        logits = self._batch.step(self.loaded.model, [r.next_id for r in self._rows])
        live = [i for i, r in enumerate(self._rows) if not (r.done or r.job.cancelled.is_set())]
        rows = [self._rows[i] for i in live]
        for row, chosen in zip(rows, self._choose_rows(rows, logits[live]), strict=True):
            self._take(row, *chosen)
        self._drop_cancelled()

    def _choose_rows(self, rows: list[_Row], logits: torch.Tensor) -> list[tuple[int, float]]:
        """(token, logprob) per row from its logits [len(rows), V].

        Greedy rows without penalties choose together on the logits' device, so only their ids and
        log-probabilities are copied; the others choose one by one on the CPU.
        """
        greedy = [i for i, row in enumerate(rows) if row.job.params.plain_greedy]
        chosen = dict(zip(greedy, choose_greedy(logits[greedy], self._banned), strict=True)) if greedy else {}
        others = [i for i in range(len(rows)) if i not in chosen]
        if others:
            on_cpu = logits[others].cpu()
            for k, i in enumerate(others):
                chosen[i] = self._choose(rows[i], on_cpu[k])
        return [chosen[i] for i in range(len(rows))]

    def _choose(self, row: _Row, logits: torch.Tensor) -> tuple[int, float]:
        if self._banned:
            logits = logits.clone()
            logits[self._banned] = float("-inf")
        job = row.job
        return choose(logits, job.params, row.generator, job.prompt_ids, row.generated)

    def _take(self, row: _Row, token: int, logprob: float) -> None:
        """Emit this row's next token, and finish the row when it should end."""
        job = row.job
        if math.isnan(logprob):  # broken weights or an overflow: fail the request, not stream token 0
            row.done = True
            job.emit(ErrorEvent(NON_FINITE))
            return
        row.generated.append(token)
        row.next_id = token
        finish = None
        if token in self._eos:
            finish = FinishReason.eos_token
        elif len(row.generated) >= job.max_new_tokens:
            finish = FinishReason.length
        row.done = finish is not None
        job.emit(TokenEvent(id=token, logprob=logprob, special=token in self._special, finish=finish))

    def _drop_cancelled(self) -> None:
        keep = [i for i, r in enumerate(self._rows) if not (r.done or r.job.cancelled.is_set())]
        if len(keep) != len(self._rows):
            with self._cond:
                self._batch.keep(keep)
                self._rows = [self._rows[i] for i in keep]

    def _fail_all(self, message: str) -> None:
        for row in self._rows:
            if not row.done:
                row.job.emit(ErrorEvent(message))
        self._rows = []
        self._batch.clear()


def _prefill_event(prompt_ids: list[int], logits: torch.Tensor) -> PrefillEvent:
    logprobs = torch.log_softmax(logits, dim=-1)
    values: list[float | None] = [None]
    for i in range(1, len(prompt_ids)):
        values.append(float(logprobs[i - 1, prompt_ids[i]]))
    return PrefillEvent(ids=list(prompt_ids), logprobs=values)
