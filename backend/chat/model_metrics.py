"""The model server's load, read from its Prometheus `/metrics` text (model_server/metrics.py's
`kovr_model_*`; a stock TGI's `tgi_queue_size` / `tgi_batch_current_size` for the queue).

"Recent" rates need two readings: each look at the admin page compares this reading with the
previous one this worker took (the first look falls back to the averages since the server started).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Snapshot:
    values: dict[str, float]  # metric name (labels summed over) -> value
    at: float = field(default_factory=time.monotonic)

    def get(self, *names: str) -> float | None:
        return next((self.values[n] for n in names if n in self.values), None)


@dataclass(frozen=True)
class ModelLoad:
    queue_length: float | None
    running: float | None
    tokens_per_second: float | None  # decode rate of one request, recent requests' average
    throughput: float | None  # tokens generated per second by all requests since the previous reading
    generated_tokens: float | None  # since the model server started
    window_s: float | None  # what "recent" covers; None: since the server started


def parse(text: str) -> Snapshot:
    """Sample lines `name{labels} value [timestamp]`; samples of one name are added up."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        labelled = "{" in line
        name = line.split("{", 1)[0] if labelled else line.split(None, 1)[0]
        fields = (line.rsplit("}", 1)[-1] if labelled else line.split(None, 1)[-1]).split()
        try:
            value = float(fields[0])
        except (IndexError, ValueError):
            continue
        if not math.isnan(value):
            values[name] = values.get(name, 0.0) + value
    return Snapshot(values)


def _rate(previous: Snapshot | None, current: Snapshot, total: str, count: str) -> tuple[float | None, bool]:
    """Δtotal / Δcount since the previous reading if anything happened in between (True), else
    total / count since the start (False)."""
    now_total, now_count = current.get(total), current.get(count)
    if now_total is None or not now_count:
        return None, False
    before_total, before_count = (previous.get(total), previous.get(count)) if previous else (None, None)
    if before_total is not None and before_count is not None and now_count > before_count:
        return (now_total - before_total) / (now_count - before_count), True
    return now_total / now_count, False


def load_between(previous: Snapshot | None, current: Snapshot) -> ModelLoad:
    generated = current.get("kovr_model_generated_tokens_total")
    per_request, recent = _rate(previous, current, "kovr_model_tokens_per_second_sum",
                                "kovr_model_tokens_per_second_count")
    throughput, window = None, None
    before = previous.get("kovr_model_generated_tokens_total") if previous else None
    if previous is not None and generated is not None and before is not None and current.at > previous.at:
        window = current.at - previous.at
        throughput = max(0.0, generated - before) / window
    return ModelLoad(
        queue_length=current.get("kovr_model_queue_length", "tgi_queue_size"),
        running=current.get("kovr_model_running_requests", "tgi_batch_current_size"),
        tokens_per_second=per_request, throughput=throughput, generated_tokens=generated,
        window_s=window if recent or throughput is not None else None,
    )
