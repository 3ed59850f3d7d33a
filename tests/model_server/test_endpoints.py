"""/info, /health, /tokenize and /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
from text_generation import AsyncClient

from kovr.prompt import KULLM
from tests.model_server.conftest import PROMPT


async def test_info_describes_the_served_model(server_url: str, tiny_model_dir: Path) -> None:
    async with httpx.AsyncClient() as http:
        info = (await http.get(f"{server_url}/info")).json()
    assert info["model_id"] == str(tiny_model_dir)
    assert info["model_dtype"] == "float32" and info["model_device_type"] == "cpu"
    assert (info["max_input_tokens"], info["max_total_tokens"], info["max_concurrent_requests"]) == (200, 400, 4)
    assert info["supports_images"] is False and info["is_demo"] is False
    assert info["prompt_template"] == KULLM.to_json()
    assert info["version"] and info["max_stop_sequences"] == 4


async def test_health(server_url: str) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server_url}/health")).status_code == 200


async def test_tokenize_gives_ids_and_character_offsets(server_url: str) -> None:
    text = "안녕 hello"
    async with httpx.AsyncClient() as http:
        tokens = (await http.post(f"{server_url}/tokenize", json={"inputs": text})).json()
        empty = await http.post(f"{server_url}/tokenize", json={"inputs": ""})
    assert empty.status_code == 422
    assert all(set(t) == {"id", "text", "start", "stop"} for t in tokens)
    assert tokens[-1]["stop"] == len(text)
    assert all(t["text"] == text[t["start"] : t["stop"]] for t in tokens)


async def test_metrics_count_requests_and_time_to_first_token(server_url: str) -> None:
    await AsyncClient(server_url).generate(PROMPT, max_new_tokens=4)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server_url}/metrics")).text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"
    }
    assert values['kovr_model_requests_total{outcome="success",route="compat"}'] >= 1
    assert values["kovr_model_time_to_first_token_seconds_count"] >= 1
    assert values["kovr_model_generated_tokens_total"] >= 4
    assert values["kovr_model_tokens_per_second_count"] >= 1
    assert values["kovr_model_queue_seconds_count"] >= 1
    assert "kovr_model_queue_length" in values and "kovr_model_running_requests" in values
