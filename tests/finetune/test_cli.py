"""`kovr finetune CONFIG --set ...` end to end on a tiny model, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kovr.cli import main
from tests.finetune.conftest import tiny_config


def test_finetune_cli_runs_and_saves_the_resolved_config(
    records_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(records_file, tmp_path / "ignored", data={"heldout": 3})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    run_dir = tmp_path / "run"
    code = main(["finetune", str(path), "--set", f"run.output_dir={run_dir}", "--set", "train.max_steps=3",
                 "--set", "eval.max_new_tokens=2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out 3" in out and "완료 done" in out
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["max_steps"] == 3 and saved["run"]["output_dir"] == str(run_dir)
    assert saved["train"]["schedule"] == "cosine"  # defaults are filled in
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_finetune_cli_reports_bad_data_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "가", "output": "나"}\n{broken\n', encoding="utf-8")
    cfg = tiny_config(bad, tmp_path / "run")
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert main(["finetune", str(path)]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err
