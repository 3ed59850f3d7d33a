"""Streaming seen by an SSE client: through the KoVR backend vs. directly from model_server.

Same run, same model, same prompt and parameters (greedy, fixed max_new_tokens, the template's
stop sequences), alternating direct and backend requests so both see the same machine load.
Reports time to first token (TTFT) and tokens/s (after the first token) for both, and the
backend's added latency per token.

With `--streams N` (N > 1) each run is N concurrent requests on each side (direct, then through
the backend) and the figure is their aggregate tokens/s: what the backend costs the model when both
share the machine.

Usage: python bench/bench_chat.py [--runs 8] [--max-new-tokens 64] [--streams 1] [--data-dir DIR] [--model PATH]
Starts model_server as a child process (building the demo model if missing), an in-memory
SecantusDB and `kovr serve` as separate processes, all on loopback; this process is only the client.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from backend.db.embedded import EmbeddedMongo, free_port
from kovr.prompt import KULLM, PromptTemplate
from kovr.settings import Settings, load_settings

QUESTIONS = [
    "한국의 수도는 어디인가요?", "김치찌개 끓이는 방법을 알려 주세요.", "세종대왕은 어떤 일을 했나요?",
    "건강하게 잠을 잘 자는 방법은?", "파이썬으로 리스트를 정렬하는 법을 알려 주세요.",
    "봄에 가 볼 만한 곳을 추천해 주세요.",
]


@dataclass
class Sample:
    ttft_ms: float
    tokens: int
    stream_s: float  # first token → last token

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - 1) / self.stream_s if self.tokens > 1 and self.stream_s > 0 else 0.0


def _sse(response: httpx.Response) -> Iterator[tuple[str, str]]:
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def direct(client: httpx.Client, url: str, prompt: str, params: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    first = last = None
    tokens = 0
    with client.stream("POST", f"{url}/generate_stream", json={"inputs": prompt, "parameters": params}) as response:
        response.raise_for_status()
        for _, data in _sse(response):
            item = json.loads(data)
            if "error" in item:
                raise RuntimeError(item["error"])
            tokens += 1
            now = time.perf_counter()
            if first is None and item["token"]["text"].strip():
                first = now
            last = now
    assert first is not None and last is not None, "no text came back"
    return Sample((first - started) * 1000, tokens, last - first)


def new_conversation(client: httpx.Client) -> str:
    return str(client.post("/api/v1/conversations", json={"title": "bench"}).json()["id"])


def through_backend(client: httpx.Client, question: str, max_new_tokens: int,
                    conversation: str | None = None) -> Sample:
    conversation = conversation or new_conversation(client)
    body = {"content": question, "parameters": {"temperature": 0, "max_new_tokens": max_new_tokens}}
    started = time.perf_counter()
    first = last = None
    generated = 0
    with client.stream("POST", f"/api/v1/conversations/{conversation}/messages", json=body) as response:
        response.raise_for_status()
        for event, data in _sse(response):
            now = time.perf_counter()
            if event == "token":
                first = first or now
                last = now
            elif event == "done":
                generated = json.loads(data)["generated_tokens"]
            elif event == "error":
                raise RuntimeError(data)
    assert first is not None and last is not None, "no text came back"
    return Sample((first - started) * 1000, generated, last - first)


@contextmanager
def kovr_serve(mongo_uri: str, model_url: str, data_dir: Path) -> Iterator[str]:
    """`kovr serve` as its own process (as deployed), on the given database and model server."""
    port = free_port()
    env = {**os.environ, "KOVR_MONGODB_URI": mongo_uri, "KOVR_MODEL_SERVER_URL": model_url,
           "KOVR_CHAT_RATE_LIMIT": "100000", "KOVR_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "kovr", "serve", "--port", str(port), "--data-dir",
                                str(data_dir)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kovr serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _account(client: httpx.Client) -> None:
    email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench-password-1"
    client.post("/api/v1/auth/signup", json={"email": email, "password": password, "display_name": "벤치"})
    token = client.post("/api/v1/auth/token", data={"username": email, "password": password}).json()
    client.headers["Authorization"] = f"Bearer {token['access_token']}"


def _summary(samples: list[Sample]) -> dict[str, float]:
    return {
        "ttft_ms_median": statistics.median(s.ttft_ms for s in samples),
        "tokens_per_s_median": statistics.median(s.tokens_per_s for s in samples),
        "tokens_median": statistics.median(s.tokens for s in samples),
        "ms_per_token_median": statistics.median(s.stream_s * 1000 / max(1, s.tokens - 1) for s in samples),
    }


@dataclass
class Batch:
    samples: list[Sample]
    wall_s: float

    @property
    def tokens_per_s(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall_s


def concurrently(n: int, one: Callable[[int], Sample]) -> Batch:
    with ThreadPoolExecutor(n) as pool:
        started = time.perf_counter()
        samples = list(pool.map(one, range(n)))
        return Batch(samples, time.perf_counter() - started)


def _streams_summary(pairs: list[tuple[Batch, Batch]]) -> dict[str, Any]:
    return {
        "direct_tokens_per_s_median": statistics.median(d.tokens_per_s for d, _ in pairs),
        "backend_tokens_per_s_median": statistics.median(b.tokens_per_s for _, b in pairs),
        "ratio_median": statistics.median(b.tokens_per_s / d.tokens_per_s for d, b in pairs),
        "ratios": [round(b.tokens_per_s / d.tokens_per_s, 3) for d, b in pairs],
        "direct": _summary([s for d, _ in pairs for s in d.samples]),
        "backend": _summary([s for _, b in pairs for s in b.samples]),
    }


def run(settings: Settings, runs: int, max_new_tokens: int, streams: int = 1) -> dict[str, Any]:
    from model_server.launcher import ModelServerProcess

    with ModelServerProcess(settings) as model_server, EmbeddedMongo(":memory:") as mongo, \
            tempfile.TemporaryDirectory() as app_dir:
        info = httpx.get(f"{model_server.url}/info", timeout=30).json()
        template = PromptTemplate.from_json(info["prompt_template"]) if info.get("prompt_template") else KULLM
        params = {"max_new_tokens": max_new_tokens, "stop": list(template.stop), "repetition_penalty": 1.1,
                  "details": True}
        with kovr_serve(mongo.uri, model_server.url, Path(app_dir)) as app_url, httpx.Client(timeout=300) as raw, \
                httpx.Client(base_url=app_url, timeout=300) as api:
            _account(api)
            direct(raw, model_server.url, template.render("안녕하세요"), params)  # warm-up, not counted
            through_backend(api, "안녕하세요", max_new_tokens)
            if streams > 1:
                batches = []
                for _ in range(runs):
                    convs = [new_conversation(api) for _ in range(streams)]  # made before the clock starts

                    def one_direct(i: int) -> Sample:
                        return direct(raw, model_server.url, template.render(QUESTIONS[i % len(QUESTIONS)]), params)

                    def one_backend(i: int, convs: list[str] = convs) -> Sample:
                        return through_backend(api, QUESTIONS[i % len(QUESTIONS)], max_new_tokens, convs[i])

                    batches.append((concurrently(streams, one_direct), concurrently(streams, one_backend)))
                return {"model": info.get("model_id"), "streams": streams, "runs": runs,
                        "max_new_tokens": max_new_tokens, **_streams_summary(batches),
                        "machine": f"{os.cpu_count()} cpu, {platform.machine()}, python {platform.python_version()}"}
            pairs = []
            for i in range(runs):
                question = QUESTIONS[i % len(QUESTIONS)]
                pairs.append((direct(raw, model_server.url, template.render(question), params),
                              through_backend(api, question, max_new_tokens)))
    direct_s, backend_s = _summary([p[0] for p in pairs]), _summary([p[1] for p in pairs])
    return {
        "model": info.get("model_id"), "device": info.get("model_device_type"), "is_demo": info.get("is_demo"),
        "runs": runs, "max_new_tokens": max_new_tokens, "direct": direct_s, "backend": backend_s,
        "added_ttft_ms": backend_s["ttft_ms_median"] - direct_s["ttft_ms_median"],
        "added_ms_per_token": backend_s["ms_per_token_median"] - direct_s["ms_per_token_median"],
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}, "
                   f"python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=1, help="concurrent requests per side and run")
    parser.add_argument("--data-dir", type=Path, help="where the demo model lives (default ~/.local/share/kovr)")
    parser.add_argument("--model", help="a model folder instead of the demo model")
    args = parser.parse_args()
    overrides: dict[str, Any] = {"torch_threads": 1}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.model:
        overrides["model"] = args.model
    print(json.dumps(run(load_settings(**overrides), args.runs, args.max_new_tokens, args.streams), indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
