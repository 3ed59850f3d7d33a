"""`kovr model-server` as a child process (ModelServerProcess), with a peft adapter merged at load."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from text_generation import AsyncClient

from kovr.settings import Settings
from model_server.launcher import ModelServerProcess
from tests.model_server.conftest import PROMPT, model_settings


def _random_lora(model_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    # init_lora_weights=False: a random (not identity) adapter, so merging it visibly changes output.
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["query_key_value"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(out))
    return out


@pytest.mark.slow
async def test_child_process_serves_and_stops(tiny_model_dir: Path, tmp_path: Path, server_url: str) -> None:
    adapter = _random_lora(tiny_model_dir, tmp_path / "lora")
    settings = model_settings(tiny_model_dir, tmp_path, adapter=str(adapter), max_new_tokens_limit=77)
    with ModelServerProcess(settings, startup_timeout_s=120) as proc:
        async with httpx.AsyncClient() as http:
            info = (await http.get(f"{proc.url}/info")).json()
        merged = await AsyncClient(proc.url, timeout=60).generate(PROMPT, max_new_tokens=10)
        url = proc.url
    base = await AsyncClient(server_url, timeout=60).generate(PROMPT, max_new_tokens=10)
    assert info["model_id"] == str(tiny_model_dir) and info["max_input_tokens"] == 200
    assert merged.generated_text != base.generated_text  # the adapter was applied
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"{url}/health", timeout=2)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "kovr", "model-server", "--data-dir", str(tmp_path), "--port", "1"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "kovr demo-model" in out.stderr


@pytest.mark.slow
async def test_without_a_model_the_demo_is_built_once_and_served(tmp_path: Path) -> None:
    from finetune.demo_model import DemoConfig, build_demo_model

    tiny = DemoConfig(vocab_size=600, hidden_size=32, layers=1, heads=2, block_size=32, batch_size=4,
                      time_budget_s=22, heldout_batches=2)

    def build(s: Settings) -> None:
        build_demo_model(s.demo_model_dir, shared_data_dir=s.shared_data_dir, config=tiny)

    settings = model_settings(tmp_path, tmp_path, model=None, shared_data_dir=tmp_path / "no-shared-data")
    with ModelServerProcess(settings, build_demo=build, startup_timeout_s=120) as proc:
        async with httpx.AsyncClient(timeout=60) as http:
            info = (await http.get(f"{proc.url}/info")).json()
    assert info["is_demo"] is True and info["model_id"] == str(settings.demo_model_dir)
    assert (settings.demo_model_dir / "kovr_model.json").is_file()
