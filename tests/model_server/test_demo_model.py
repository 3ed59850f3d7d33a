"""The demo model builder, on a tiny budget: it saves a servable, labelled Korean model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from finetune.demo_model import DEMO_TEMPLATE, DemoConfig, build_demo_model
from kovr.prompt import load_template
from tests.model_server.conftest import model_server, model_settings


@pytest.mark.slow
async def test_demo_model_builds_and_serves_as_demo(tmp_path: Path) -> None:
    config = DemoConfig(vocab_size=600, hidden_size=32, layers=1, heads=2, block_size=32, batch_size=4,
                        time_budget_s=25, heldout_batches=2)
    folder = tmp_path / "models" / "demo"  # where settings.demo_model_dir points for data_dir=tmp_path
    meta = build_demo_model(folder, shared_data_dir=None, config=config, progress=False, log=lambda _: None)
    saved = json.loads((folder / "kovr_model.json").read_text(encoding="utf-8"))
    assert saved["demo"] is True and saved == json.loads(json.dumps(meta, ensure_ascii=False))
    assert 0 < saved["heldout_loss"] < 6.4  # below log(600): it learned something
    assert saved["train_steps"] > 0 and len(saved["samples"]) == 4
    assert load_template(folder) == DEMO_TEMPLATE
    with model_server(model_settings(folder, tmp_path, model=None)) as url:  # no model: the demo is served
        async with httpx.AsyncClient(timeout=60) as http:
            info = (await http.get(f"{url}/info")).json()
            body = {"inputs": DEMO_TEMPLATE.render("안녕하세요!"), "parameters": {"max_new_tokens": 5, "details": True}}
            answer = (await http.post(f"{url}/generate", json=body)).json()
    assert info["is_demo"] is True and info["model_id"] == str(folder)
    assert info["prompt_template"]["name"] == "kovr-demo"
    assert answer["details"]["generated_tokens"] <= 5
