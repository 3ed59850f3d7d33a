"""Training a tiny GPT-NeoX with LoRA on Korean records: loss falls, answers are memorised, runs resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune.checkpoint import TrainState, list_checkpoints
from finetune.finetune_config import FinetuneConfig
from finetune.metrics import read_metrics
from finetune.train import run_finetune
from finetune.yaml_config import ConfigError, build_config
from kovr.prompt import KULLM, load_template
from tests.finetune.conftest import tiny_config
from tests.finetune.korean_records import FACTS


def _train_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


def test_loss_falls_clearly(memorised_run: Any) -> None:
    losses = _train_losses(memorised_run.run_dir)
    assert len(losses) == 60
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:3]) / 3


def test_memorises_korean_answers(memorised_run: Any) -> None:
    answers = [json.loads(line) for line in (memorised_run.run_dir / "eval" / "answers-final.jsonl").open()]
    assert [a["instruction"] for a in answers] == [f["instruction"] for f in FACTS]
    assert [a["answer"] for a in answers] == [f["output"] for f in FACTS]
    # The judge-free chat metrics (eval.chat_metrics, on by default) see the memorised answers.
    assert all(a["metrics"]["chrf"] == 100.0 and not a["metrics"]["template_leak"] for a in answers)
    final = [r for r in read_metrics(memorised_run.run_dir / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert final["chat_chrf"] == 100.0 and final["chat_empty_rate"] == 0.0 and final["chat_hangul_share"] > 0.9


def test_run_folder_holds_everything(memorised_run: Any) -> None:
    run = memorised_run.run_dir
    for name in ("config.yaml", "data_summary.json", "prompt_template.json", "metrics.jsonl", "loss_curve.png",
                 "run.json", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "adapter/prompt_template.json", "adapter/tokenizer.json", "base_model/config.json"):
        assert (run / name).is_file(), name
    assert load_template(run) == KULLM == load_template(run / "adapter")
    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["train_examples"] == len(FACTS)
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["steps"] == 60


def test_heldout_evaluation_at_intervals(records_file: Path, tmp_path: Path) -> None:
    cfg = build_config(FinetuneConfig, tiny_config(
        records_file, tmp_path / "run", data={"heldout": 4, "batching": "grouped"},
        train={"max_steps": 6, "eval_every": 3, "micro_batch_size": 4},
        eval={"prompts": ["한국의 수도는 어디인가요?"], "max_new_tokens": 4, "chat_metrics": False}))
    result = run_finetune(cfg)
    evals = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert not any(key.startswith("chat_") for key in evals[-1])  # switched off
    assert evals[-1]["heldout_loss"] > 0 and evals[-1]["perplexity"] > 1
    assert result.final_eval["heldout_loss"] == evals[-1]["heldout_loss"]
    assert (tmp_path / "run" / "eval" / "answers-step-00000003.jsonl").is_file()


def _resume_cfg(records_file: Path, run_dir: Path) -> FinetuneConfig:
    return build_config(FinetuneConfig, tiny_config(
        records_file, run_dir, data={"batching": "packed", "max_seq_len": 160},
        lora={"dropout": 0.1}, train={"max_steps": 8, "micro_batch_size": 2, "grad_accum_steps": 2,
                                      "save_every": 2, "keep_checkpoints": 2},
        eval={"prompts": ["한글날은 언제인가요?"], "max_new_tokens": 2}))


@pytest.mark.slow
def test_resume_continues_with_the_same_step_and_data_order(records_file: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    straight = tmp_path / "straight"
    run_finetune(_resume_cfg(records_file, straight))

    interrupted = tmp_path / "interrupted"

    def stop_at_5(state: TrainState, record: dict[str, Any]) -> None:
        if state.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_finetune(_resume_cfg(records_file, interrupted), on_step=stop_at_5)
    assert [p.name for p in list_checkpoints(interrupted)] == ["step-00000004", "step-00000005"]
    result = run_finetune(_resume_cfg(records_file, interrupted))
    assert result.state.step == 8

    a, b = read_metrics(straight / "metrics.jsonl"), read_metrics(interrupted / "metrics.jsonl")
    train_a = [r for r in a if r["kind"] == "train"]
    train_b = [r for r in b if r["kind"] == "train"]
    assert [r["step"] for r in train_b] == list(range(1, 9))  # no step repeated or skipped
    assert [r["data"] for r in train_b] == [r["data"] for r in train_a]  # same data order (epochs 1 and 2)
    assert [r["loss"] for r in train_b] == pytest.approx([r["loss"] for r in train_a], rel=1e-4)
    wa = load_file(str(straight / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(interrupted / "adapter" / "adapter_model.safetensors"))
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-6)


def test_resume_refuses_a_changed_configuration(records_file: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = _resume_cfg(records_file, run_dir)
    run_finetune(cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": 2, "save_every": 1})}))
    changed = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"r": 4})})
    with pytest.raises(ConfigError, match=r"cannot resume with a changed configuration \(lora\.r"):
        run_finetune(changed)
    never = cfg.model_copy(update={"run": cfg.run.model_copy(update={"resume": "never"})})
    with pytest.raises(ConfigError, match="already holds a run"):
        run_finetune(never)


def test_unknown_lora_target_is_a_clear_error(facts_file: Path, tmp_path: Path) -> None:
    cfg = build_config(FinetuneConfig, tiny_config(facts_file, tmp_path / "run", lora={"target_modules": ["q_proj"]}))
    with pytest.raises(ValueError, match=r"no module named \['q_proj'\].*query_key_value"):
        run_finetune(cfg)
