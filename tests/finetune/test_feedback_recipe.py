"""The loop closes: rated conversations → `kovr export-feedback` → `kovr finetune` with
`data.sources: [{path: DIR/sft.jsonl}]` trains a tiny model on exactly those records."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import MongoClient

from finetune.metrics import read_metrics
from kovr.cli import main
from tests.backend.feedback_seed import CHOSEN, seed
from tests.finetune.conftest import tiny_config


def test_exported_feedback_trains_a_tiny_model(mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    db_name = f"recipe_{uuid.uuid4().hex[:8]}"
    with MongoClient[dict[str, Any]](mongo_uri) as client:
        seed(client[db_name], dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    monkeypatch.setenv("KOVR_MONGODB_URI", mongo_uri)
    monkeypatch.setenv("KOVR_MONGODB_DB", db_name)
    data = tmp_path / "feedback"
    assert main(["export-feedback", "--output", str(data)]) == 0

    # The recipe of finetune/README.md: the export folder's sft.jsonl as a data source.
    cfg = tiny_config(data / "sft.jsonl", tmp_path / "run", data={"heldout": 0, "max_seq_len": 512},
                      train={"max_steps": 4, "micro_batch_size": 2, "log_every": 1},
                      eval={"prompts": ["제주도 여행지를 추천해 주세요."], "max_new_tokens": 2, "chat_metrics": False})
    config = tmp_path / "feedback.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert yaml.safe_load(config.read_text(encoding="utf-8"))["data"]["sources"] == [{"path": str(data / "sft.jsonl")}]
    capsys.readouterr()
    assert main(["finetune", str(config)]) == 0

    run = tmp_path / "run"
    summary = json.loads((run / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["train_examples"] == 3  # every exported record, none dropped by the trainer's cleaning
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    exported = [json.loads(line) for line in (data / "sft.jsonl").read_text(encoding="utf-8").splitlines()]
    assert CHOSEN in {r["output"] for r in exported}
