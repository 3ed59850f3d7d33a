"""CUDA-graph decode: the static-cache decode step captured once per (batch, width) bucket, then replayed.

On a GPU a 1.3B model's decode step is a few hundred small kernels; launched from Python one by
one they take 20-30x the time the GPU needs to read the weights (docs/BENCHMARKS.md). A CUDA graph
records the launches once and replays them in one call. A graph fixes its shapes and the addresses
it reads, which the slot cache provides: every input of a step is a static buffer
(model_server/slots.py), and the step over slots [0, b) and columns [0, w) is captured for each b
in the batch buckets and each w in the width buckets. A step whose busy slots and longest row fit
a captured (b, w) pads up to it (extra slots are masked dummy rows, extra columns masked); any
other shape runs eagerly.

Chosen over `torch.compile(mode="reduce-overhead")`: no compile time at start, no recompiles when
transformers' Python control flow meets a new shape, and the padding rule is ours and tested.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from transformers import PreTrainedModel

from model_server.slots import SlotCache, batch_buckets, bucket, width_buckets

log = logging.getLogger(__name__)

Forward = Callable[[int, int], torch.Tensor]


class DecodeGraphs:
    """Captured decode steps keyed by (batch, width); `pick` finds the smallest that fits a step."""

    def __init__(self, batch_sizes: list[int], widths: list[int]) -> None:
        self.batch_sizes, self.widths = sorted(batch_sizes), sorted(widths)
        self._replays: dict[tuple[int, int], Callable[[], torch.Tensor]] = {}

    @property
    def captured(self) -> list[tuple[int, int]]:
        return sorted(self._replays)

    def pick(self, b: int, w: int) -> tuple[int, int] | None:
        """The captured (batch, width) to replay for a step over b slots and w columns; None: run eagerly."""
        key = (bucket(self.batch_sizes, b), bucket(self.widths, w))
        return key if key in self._replays else None

    def replay(self, key: tuple[int, int]) -> torch.Tensor:
        """Run the step captured for `key`; returns its output (a static tensor: read it before the next replay)."""
        return self._replays[key]()

    def rehearse(self, forward: Forward) -> None:
        """Stand-in for :meth:`capture` without CUDA: each bucket replays `forward(b, w)` eagerly.

        The CPU tests run the engine through this, so the padding of a step up to its bucket (dummy
        rows, masked columns) is checked against `generate` where no GPU is; only the recording
        itself is left to the GPU tests.
        """
        for b in self.batch_sizes:
            for w in self.widths:
                self._replays[(b, w)] = lambda b=b, w=w: forward(b, w)  # type: ignore[misc]

    def capture(self, forward: Forward, device: torch.device) -> None:
        """Capture `forward(b, w)` for every bucket, largest first, all sharing one memory pool.

        Each shape runs once eagerly on a side stream first (cuBLAS and the allocator set up
        lazily; that must not happen inside a capture). Captures write nothing at capture time;
        the warm-ups write column 0 of every slot, which no sequence owns yet.
        """
        started = time.perf_counter()
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]  # torch leaves Stream's __init__ unannotated
        for b in reversed(self.batch_sizes):  # largest first: later graphs reuse the pool's blocks
            for w in reversed(self.widths):
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    forward(b, w)
                torch.cuda.current_stream(device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: the server's other threads (image encoding) may use the GPU meanwhile.
                with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                    out = forward(b, w)
                self._replays[(b, w)] = _replayer(graph, out)
        torch.cuda.synchronize(device)
        log.info("captured %d decode graphs (batch %s x width %s) in %.1f s", len(self._replays),
                 self.batch_sizes, self.widths, time.perf_counter() - started)


def _replayer(graph: torch.cuda.CUDAGraph, out: torch.Tensor) -> Callable[[], torch.Tensor]:
    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def capture_decode_graphs(
    cache: SlotCache, model: PreTrainedModel, batch_sizes: list[int], *, rehearse: bool = False
) -> DecodeGraphs | None:
    """Capture the slot cache's decode step for these batch sizes and its width buckets; None if capture fails.

    A failed capture (an op that syncs with the host, an unsupported kernel) leaves the engine on the
    eager static path: slower, never wrong.
    """
    graphs = DecodeGraphs(batch_buckets(batch_sizes, cache.slots), width_buckets(cache.max_len))

    def forward(b: int, w: int) -> torch.Tensor:
        return cache.forward(model, b, w)

    if rehearse:
        graphs.rehearse(forward)
        cache.graphs = graphs
        return graphs
    try:
        graphs.capture(forward, cache.device)
    except Exception:
        log.exception("CUDA graph capture failed; decoding eagerly")
        return None
    cache.graphs = graphs
    return graphs
