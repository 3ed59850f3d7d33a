"""Prometheus metrics of one model_server app (its own registry, so several apps can share a process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kovr_model_requests", "Generation requests by route and outcome",
            ["route", "outcome"], registry=self.registry,
        )
        self.queue_length = Gauge("kovr_model_queue_length", "Requests waiting for a slot", registry=self.registry)
        self.running = Gauge("kovr_model_running_requests", "Requests generating now", registry=self.registry)
        self.time_to_first_token = Histogram(
            "kovr_model_time_to_first_token_seconds", "From request to first generated token",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue_time = Histogram(
            "kovr_model_queue_seconds", "From submission until the request got a slot",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.request_duration = Histogram(
            "kovr_model_request_duration_seconds", "Whole request duration",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.tokens_per_second = Histogram(
            "kovr_model_tokens_per_second", "Decode rate of one request after its first token",
            buckets=_RATE_BUCKETS, registry=self.registry,
        )
        self.generated_tokens = Counter(
            "kovr_model_generated_tokens", "Tokens generated", registry=self.registry
        )
        self.input_tokens = Counter("kovr_model_input_tokens", "Prompt tokens processed", registry=self.registry)

    def watch(self, queue_length: Callable[[], int], running: Callable[[], int]) -> None:
        """Read the engine's live numbers at scrape time."""
        self.queue_length.set_function(queue_length)
        self.running.set_function(running)

    def render(self) -> bytes:
        return generate_latest(self.registry)
