"""`kovr merge`: merged weights give the adapter model's logits and load as a plain transformers folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune.evaluate import generate_answer
from finetune.merge import MergeError, merge_run
from kovr.cli import main
from kovr.prompt import KULLM, load_template
from tests.finetune.korean_records import FACTS


@pytest.fixture(scope="module")
def merged(memorised_run: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("merged") / "model"
    return out, merge_run(memorised_run.run_dir, out)


def test_merged_folder_is_complete(merged: tuple[Path, dict[str, Any]]) -> None:
    out, report = merged
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "prompt_template.json", "kovr_model.json"):
        assert (out / name).is_file(), name
    assert load_template(out) == KULLM
    info = json.loads((out / "kovr_model.json").read_text(encoding="utf-8"))
    assert info["demo"] is False and info["steps"] == 60
    assert report["relative_logit_diff"] <= report["tolerance"] == 1e-4
    assert not list(out.parent.glob("*.tmp"))


def test_merged_model_matches_adapter_model(memorised_run: Any, merged: tuple[Path, dict[str, Any]]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = merged
    run = memorised_run.run_dir
    tokenizer = AutoTokenizer.from_pretrained(out)
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    assert plain.config.model_type == "gpt_neox"
    base = AutoModelForCausalLM.from_pretrained(run / "base_model")
    adapter = PeftModel.from_pretrained(base, run / "adapter").eval()
    ids = tokenizer(KULLM.render(FACTS[0]["instruction"]), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, adapter(ids).logits, rtol=1e-4, atol=1e-4)
    answers = [generate_answer(plain, tokenizer, KULLM, f["instruction"], 48, torch.device("cpu")) for f in FACTS]
    assert answers == [f["output"] for f in FACTS]


def test_merge_refuses_bad_input(memorised_run: Any, merged: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(MergeError, match="not a finished kovr finetune run"):
        merge_run(tmp_path, tmp_path / "out")
    out, _ = merged
    with pytest.raises(MergeError, match="not empty"):
        merge_run(memorised_run.run_dir, out)


def test_merge_cli(memorised_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", str(memorised_run.run_dir), "--output", str(tmp_path / "m")]) == 0
    assert "병합 완료" in capsys.readouterr().out
    assert main(["merge", str(tmp_path), "--output", str(tmp_path / "n")]) == 2
    assert "not a finished" in capsys.readouterr().err


def test_model_server_loads_the_merged_folder(merged: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from kovr.settings import load_settings
    from model_server.loading import load_model

    out, _ = merged
    loaded = load_model(load_settings(model=str(out), device="cpu", data_dir=tmp_path))
    assert loaded.template == KULLM and loaded.is_demo is False
    assert loaded.tokenizer.eos_token_id in loaded.eos_ids
    answer = generate_answer(loaded.model, loaded.tokenizer, loaded.template, FACTS[1]["instruction"], 48,
                             loaded.device)
    assert answer == FACTS[1]["output"]


def test_finetune_from_a_model_folder_then_merge(memorised_run: Any, facts_file: Path, tmp_path: Path) -> None:
    """model.name_or_path = a local folder (e.g. the demo model): default LoRA on query_key_value."""
    from finetune.finetune_config import FinetuneConfig
    from finetune.train import run_finetune
    from finetune.yaml_config import build_config
    from tests.finetune.conftest import tiny_config

    base = memorised_run.run_dir / "base_model"
    raw = tiny_config(facts_file, tmp_path / "run", model={"name_or_path": str(base)},
                      train={"max_steps": 2}, eval={"max_new_tokens": 2})
    raw["lora"] = {"r": 4}
    result = run_finetune(build_config(FinetuneConfig, raw))
    assert result.summary["base_model"] == str(base)
    assert not (tmp_path / "run" / "base_model").exists()
    report = merge_run(tmp_path / "run", tmp_path / "merged")
    assert report["base_model"] == str(base)
    assert report["relative_logit_diff"] <= 1e-4
