"""Admission, queueing, overload, disconnects and errors after a stream started."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from text_generation import AsyncClient
from text_generation.errors import GenerationError, OverloadedError

from model_server.build import build_service
from tests.model_server.conftest import PROMPT, model_server, model_settings

LONG = {"inputs": PROMPT, "parameters": {"max_new_tokens": 150}}


@pytest.fixture(scope="module")
def one_slot_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One request at a time, nothing queued: a second concurrent request is refused."""
    settings = model_settings(tiny_model_dir, tmp_path_factory.mktemp("d"), max_concurrent_requests=1, max_queue=0)
    service = build_service(settings)
    # 20 ms per step: a 150-token answer takes 3 s, so "still running" is not a race.
    service.loaded.model.register_forward_pre_hook(lambda *_: time.sleep(0.02))
    try:
        with model_server(settings, service=service) as url:
            yield url
    finally:
        service.engine.close()


async def _running(http: httpx.AsyncClient, url: str) -> float:
    text = (await http.get(f"{url}/metrics")).text
    line = next(row for row in text.splitlines() if row.startswith("kovr_model_running_requests "))
    return float(line.split()[1])


async def _wait_idle(http: httpx.AsyncClient, url: str, within_s: float = 5.0) -> float:
    start = time.perf_counter()
    while await _running(http, url) != 0:
        assert time.perf_counter() - start < within_s, "the slot was not freed"
        await asyncio.sleep(0.01)
    return time.perf_counter() - start


async def test_past_the_queue_limit_is_429_overloaded(one_slot_url: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", f"{one_slot_url}/generate_stream", json=LONG) as first:
            lines = first.aiter_lines()  # kept referenced: a collected iterator closes the stream
            await anext(lines)  # the first request holds the only slot
            refused = await http.post(f"{one_slot_url}/generate", json=LONG)
            assert refused.status_code == 429
            assert refused.json() == {"error": "Model is overloaded", "error_type": "overloaded"}
            with pytest.raises(OverloadedError):
                await AsyncClient(one_slot_url).generate(PROMPT)
        await _wait_idle(http, one_slot_url)


async def test_disconnect_cancels_and_frees_the_slot(one_slot_url: str) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", f"{one_slot_url}/generate_stream", json=LONG) as response:
            lines = response.aiter_lines()
            await anext(lines)
            assert await _running(http, one_slot_url) == 1
        # Leaving the block closes the connection mid-stream.
        freed_after = await _wait_idle(http, one_slot_url)
        body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 2}}
        after = await http.post(f"{one_slot_url}/generate", json=body)
    assert after.status_code == 200
    assert freed_after < 1.0  # well before the 3 s the answer would have taken
    metrics = (await httpx.AsyncClient().get(f"{one_slot_url}/metrics")).text
    assert 'kovr_model_requests_total{outcome="cancelled",route="generate_stream"}' in metrics


async def test_queued_requests_wait_and_get_keepalives(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = model_settings(tiny_model_dir, tmp_path, max_concurrent_requests=1, max_queue=3)
    with model_server(settings, keepalive_s=0.01) as url:
        async with httpx.AsyncClient(timeout=60) as http:

            async def stream() -> str:
                async with http.stream("POST", f"{url}/generate_stream", json=LONG) as response:
                    return (await response.aread()).decode()

            bodies = await asyncio.gather(*(stream() for _ in range(3)))
    finals = [json.loads(b.strip().split("\n\n")[-1].removeprefix("data:")) for b in bodies]
    assert all(f["details"] is None and f["generated_text"] for f in finals)
    assert len({f["generated_text"] for f in finals}) == 1
    assert any(":\n\n" in b.split("data:")[0] for b in bodies)  # waited in the queue with keep-alives


async def test_error_after_the_stream_started_is_an_sse_event(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = model_settings(tiny_model_dir, tmp_path)
    service = build_service(settings)
    calls = {"n": 0}

    def fail_on_fourth_step(*_: object) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated device fault")

    service.loaded.model.get_submodule("gpt_neox.layers.0").register_forward_pre_hook(fail_on_fourth_step)
    try:
        with model_server(settings, service=service) as url:
            async with (
                httpx.AsyncClient(timeout=60) as http,
                http.stream("POST", f"{url}/generate_stream", json=LONG) as response,
            ):
                assert response.status_code == 200
                frames = [f for f in (await response.aread()).decode().split("\n\n") if f]
            last = json.loads(frames[-1].removeprefix("data:"))
            assert len(frames) == 4  # three tokens, then the error
            assert last["error_type"] == "generation" and "simulated device fault" in last["error"]
            calls["n"] = 3
            with pytest.raises(GenerationError, match="simulated device fault"):
                async for _ in AsyncClient(url).generate_stream(PROMPT, max_new_tokens=20):
                    pass
            calls["n"] = 3
            async with httpx.AsyncClient(timeout=60) as http:
                failed = await http.post(f"{url}/generate", json=LONG)
            assert failed.status_code == 424 and failed.json()["error_type"] == "generation"
            calls["n"] = 10**9  # healthy again: the engine survived
            ok = await AsyncClient(url).generate(PROMPT, max_new_tokens=3)
            assert ok.generated_text
    finally:
        service.engine.close()


async def test_a_failed_batched_prefill_falls_back_to_one_at_a_time(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = model_settings(tiny_model_dir, tmp_path)
    service = build_service(settings)
    batched = {"tries": 0}

    def slow_steps_and_no_batched_prefill(_: object, args: tuple[object, ...]) -> None:
        ids = args[0]
        assert hasattr(ids, "shape")
        time.sleep(0.01)  # the first request is still decoding when the others arrive: they queue together
        if ids.shape[0] > 1 and ids.shape[1] > 1:
            batched["tries"] += 1
            raise RuntimeError("simulated fault in a batched prefill")

    service.loaded.model.get_submodule("gpt_neox.embed_in").register_forward_pre_hook(slow_steps_and_no_batched_prefill)
    try:
        with model_server(settings, service=service) as url:
            client = AsyncClient(url, timeout=60)
            alone = (await client.generate(PROMPT, max_new_tokens=8)).generated_text
            first = asyncio.create_task(client.generate(PROMPT, max_new_tokens=60))
            await asyncio.sleep(0.2)
            answers = await asyncio.gather(*(client.generate(PROMPT, max_new_tokens=8) for _ in range(3)))
            await first
    finally:
        service.engine.close()
    assert batched["tries"] >= 1  # the three were tried as one group
    assert [a.generated_text for a in answers] == [alone] * 3


async def test_nan_scores_fail_the_request_with_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A broken checkpoint (NaN weights) must fail loudly, greedy or sampled, not stream token 0."""
    import torch

    settings = model_settings(tiny_model_dir, tmp_path)
    service = build_service(settings)
    broken = {"on": True}

    def nan_scores(_: object, __: object, output: torch.Tensor) -> torch.Tensor | None:
        return torch.full_like(output, float("nan")) if broken["on"] else None

    service.loaded.model.get_output_embeddings().register_forward_hook(nan_scores)  # embed_out in 4.x, lm_head in 5.x
    try:
        with model_server(settings, service=service) as url:
            client = AsyncClient(url, timeout=60)
            for sampled in (False, True):
                with pytest.raises(GenerationError, match="not finite"):
                    await client.generate(PROMPT, max_new_tokens=8, do_sample=sampled, seed=1 if sampled else None)
            broken["on"] = False
            healthy = await client.generate(PROMPT, max_new_tokens=3)
            assert healthy.details.generated_tokens == 3
    finally:
        service.engine.close()
