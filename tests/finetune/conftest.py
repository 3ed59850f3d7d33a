"""Fixtures for the fine-tuning tests: one thread, small Korean data files, tiny-model configs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.finetune.korean_records import FACTS, all_records


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def records_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "ko.jsonl", all_records())


@pytest.fixture(scope="session")
def facts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("facts") / "facts.jsonl", FACTS)


def tiny_config(data_file: Path, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config dict for a tiny random GPT-NeoX on the CPU; ``sections`` override per section."""
    base: dict[str, Any] = {
        "run": {"output_dir": str(output_dir), "device": "cpu", "seed": 0},
        "model": {"tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
                           "vocab_size": 300}},
        "data": {"sources": [{"path": str(data_file)}], "heldout": 0, "max_seq_len": 192},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0,
                 "target_modules": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
                 "modules_to_save": ["embed_out"]},
        "train": {"micro_batch_size": 5, "max_steps": 60, "learning_rate": 1e-2, "warmup_steps": 5,
                  "progress_bar": False, "log_every": 1, "precision": "fp32", "gradient_checkpointing": False},
        "eval": {"prompts": [{"instruction": r["instruction"], "reference": r["output"]} for r in FACTS],
                 "max_new_tokens": 48},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


@pytest.fixture(scope="session")
def memorised_run(facts_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tiny model trained until it knows FACTS by heart (shared by the training and merge tests)."""
    from finetune.finetune_config import FinetuneConfig
    from finetune.train import run_finetune
    from finetune.yaml_config import build_config

    cfg = build_config(FinetuneConfig, tiny_config(facts_file, tmp_path_factory.mktemp("run") / "mem"))
    return run_finetune(cfg)
