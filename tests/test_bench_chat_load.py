"""bench/bench_chat_load.py: its stand-in upstream keeps its cadence and speaks TGI's stream to the
text-generation client; a tiny end-to-end run through `kovr serve` completes every stream."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from text_generation import AsyncClient

from backend.db.embedded import free_port
from bench.bench_chat_load import serve_stand_in, sse_request

REPO = Path(__file__).resolve().parents[1]


async def test_stand_in_streams_at_its_cadence_to_both_clients() -> None:
    port = free_port()
    server = asyncio.create_task(serve_stand_in(port, tokens=8, interval_s=0.01))
    try:
        await asyncio.sleep(0.2)
        raw = await sse_request(port, "/generate_stream", {"inputs": "안녕", "parameters": {}}, {}, direct=True)
        assert raw.ok and raw.error == "" and len(raw.gaps_ms) == 7
        assert 5 < sorted(raw.gaps_ms)[3] < 50  # the median gap is the cadence, give or take the machine
        client = AsyncClient(f"http://127.0.0.1:{port}")
        items = [item async for item in client.generate_stream("안녕", max_new_tokens=5)]
        assert len(items) == 5 and items[-1].details.generated_tokens == 5 and items[-1].generated_text
    finally:
        server.cancel()


@pytest.mark.slow
def test_a_tiny_run_through_kovr_serve(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "bench_chat_load.py"), "--levels", "3", "--workers", "1",
                    "--rounds", "1", "--tokens", "4", "--interval-ms", "5", "--history", "60", "--samples", "1",
                    "--json", str(out)], check=True, timeout=300, capture_output=True)
    result = json.loads(out.read_text())
    load, history = result["load"][0], result["history"][0]
    assert load["backend"]["completed"] == 3 and load["backend"]["failed"] == 0
    assert load["direct"]["completed"] == 3
    assert load["database_cpu_ms_per_answer"] > 0 and load["backend_cpu_ms_per_answer"] > 0
    assert 0 <= load["database_idle_after_s"] < 60
    assert history["messages"] == 60 and history["ttft_heavy_ms"] > 0 and history["search_ms"] > 0
    assert history["ttft_heavy_new_ms"] > 0
