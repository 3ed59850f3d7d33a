"""The typed configuration: YAML + --set overrides, validated before anything loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.finetune_config import FinetuneConfig
from finetune.yaml_config import ConfigError, load_config, parse_overrides, save_config
from kovr.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "finetune" / "configs").glob("*.yaml"))

MINIMAL = "data:\n  sources:\n    - {path: data.jsonl}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_configs_validate(path: Path) -> None:
    cfg = load_config(FinetuneConfig, path)
    assert cfg.lora.target_modules
    assert {p.name for p in CONFIGS} >= {
        "polyglot-ko-1.3b.yaml", "polyglot-ko-5.8b.yaml", "polyglot-ko-12.8b.yaml", "tiny-cpu.yaml"
    }


def test_gpu_configs_name_the_hub_datasets() -> None:
    cfg = load_config(FinetuneConfig, REPO / "finetune" / "configs" / "polyglot-ko-1.3b.yaml")
    assert [s.name for s in cfg.data.sources] == ["nlpai-lab/kullm-v2", "beomi/KoAlpaca-v1.1a"]
    assert cfg.model.name_or_path == "EleutherAI/polyglot-ko-1.3b"
    assert cfg.train.precision == "bf16" and cfg.train.gradient_checkpointing is True


def test_overrides_are_typed_and_nested(tmp_path: Path) -> None:
    cfg = load_config(
        FinetuneConfig, _write(tmp_path, MINIMAL),
        ["train.max_steps=7", "lora.target_modules=[query_key_value, dense]", "train.schedule=linear",
         "data.batching=grouped", "run.output_dir=runs/x"],
    )
    assert cfg.train.max_steps == 7
    assert cfg.lora.target_modules == ["query_key_value", "dense"]
    assert cfg.train.schedule == "linear" and cfg.data.batching == "grouped"
    assert cfg.run.output_dir == Path("runs/x")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["train.max_step=3"], "train.max_step: unknown key"),
        (["lora.r=0"], "lora.r"),
        (["train.schedule=exponential"], "train.schedule"),
        (["data.template=alpaca-en"], "unknown prompt template"),
        (["train.learning_rate=abc"], "train.learning_rate"),
        (["model.tiny.hidden_size=65"], "divisible"),
        (["notakey"], "expected section.key=value"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(FinetuneConfig, _write(tmp_path, MINIMAL), overrides)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_files_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exp\.yaml:2: not valid YAML \(mapping values"):
        load_config(FinetuneConfig, _write(tmp_path, "run:\n  seed: 1: 2\n"))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(FinetuneConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="data: Field required"):
        load_config(FinetuneConfig, _write(tmp_path, "run: {seed: 1}\n"))


def test_sources_need_one_location_and_a_known_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of name"):
        load_config(FinetuneConfig, _write(tmp_path, "data:\n  sources:\n    - {weight: 1}\n"))
    with pytest.raises(ConfigError, match=r"\.json, \.jsonl or \.parquet"):
        load_config(FinetuneConfig, _write(tmp_path, "data:\n  sources:\n    - {path: d.csv}\n"))


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(FinetuneConfig, _write(tmp_path, MINIMAL), ["train.max_steps=3"])
    saved = save_config(cfg, tmp_path / "run")
    assert load_config(FinetuneConfig, saved) == cfg
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


def test_overrides_index_into_lists(tmp_path: Path) -> None:
    two = "data:\n  sources:\n    - {path: a.jsonl}\n    - {name: beomi/KoAlpaca-v1.1a}\n"
    cfg = load_config(FinetuneConfig, _write(tmp_path, two), ["data.sources.1.weight=0.5"])
    assert [s.weight for s in cfg.data.sources] == [1.0, 0.5]
    with pytest.raises(ConfigError, match="has only 2 entries"):
        load_config(FinetuneConfig, _write(tmp_path, two), ["data.sources.2.weight=3"])


def test_cli_reports_a_bad_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, MINIMAL)
    assert main(["finetune", str(path), "--check"]) == 0
    assert main(["finetune", str(path), "--set", "train.warmup_ratio=2", "--check"]) == 2
    err = capsys.readouterr().err
    assert "train.warmup_ratio" in err and err.count("\n") == 1


def test_default_eval_prompts_are_the_fixed_korean_test_prompts(tmp_path: Path) -> None:
    from kovr.data import load_test_prompts

    prompts = 'eval.prompts=["질문", {instruction: 요약, input: 글}]'
    cfg = load_config(FinetuneConfig, _write(tmp_path, MINIMAL), [prompts])
    assert [(p.instruction, p.input) for p in cfg.eval.prompts] == [("질문", ""), ("요약", "글")]
    default = load_config(FinetuneConfig, _write(tmp_path, MINIMAL)).eval.prompts
    assert [p.instruction for p in default] == [p["instruction"] for p in load_test_prompts()]
