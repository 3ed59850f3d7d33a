"""`kovr finetune-vr` stages 1 and 2, the checkpoint folder, resume, `kovr eval-vr`, bad configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from finetune.vr.build import read_run_info
from finetune.vr.config import VRConfig
from finetune.yaml_config import ConfigError, load_config
from kovr.modeling.align_model import AlignModel
from kovr.modeling.language_model import load_language_model

CONFIGS = Path(__file__).resolve().parents[2] / "finetune" / "vr" / "configs"


def _tiny(data: Path, out: Path, stage: int, **extra: Any) -> list[str]:
    sets = {
        "data.dir": str(data), "run.output_dir": str(out), "run.torch_threads": 1, "train.progress_bar": False,
        "train.max_steps": 4, "train.micro_batch_size": 4, "data.eval_max": 6, "data.max_seq_len": 192,
        "vision.tiny.image_size": 32, "vision.tiny.patch_size": 16, "vision.tiny.hidden_size": 16,
        "vision.tiny.num_heads": 2,
    }
    if stage == 1:
        sets.update({"language_model.tiny.hidden_size": 32, "language_model.tiny.num_heads": 2,
                     "language_model.tiny.intermediate_size": 64, "language_model.tiny.vocab_size": 400,
                     "language_model.tiny.pretrain_steps": 3, "language_model.tiny.pretrain_batch_size": 8})
    else:
        # The LoRA path of stage 2 (the CPU proof's config trains the tiny LM fully).
        sets.update({"language_model.stage2_training": "lora", "lora.r": 4, "lora.alpha": 8})
    sets.update(extra)
    return [f"{k}={v}" for k, v in sets.items()]


@pytest.fixture(scope="module")
def vr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from research.vr.synthetic import generate

    out = tmp_path_factory.mktemp("vrdata")
    generate(out, 24, seed=5, image_size=32)
    return out


@pytest.fixture(scope="module")
def stage1(vr_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetune.vr.train import run_finetune_vr

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "s1"
    cfg = load_config(VRConfig, CONFIGS / "tiny_stage1.yaml", _tiny(vr_data, out, 1))
    result = run_finetune_vr(cfg)
    return result.checkpoint


@pytest.mark.slow
def test_stage1_trains_only_the_projector(stage1: Path) -> None:
    run = stage1.parent
    weights = load_file(str(next((run / "checkpoints").iterdir()) / "trainable.safetensors"))
    assert weights and all(name.startswith("align.projector.") for name in weights)
    assert {"align_config.json", "projector.safetensors", "vision_encoder", "language_model",
            "prompt_template.json", "vr_run.json"} <= {p.name for p in stage1.iterdir()}
    align = AlignModel.from_checkpoint(stage1)
    first = align.projector[0] if isinstance(align.projector, torch.nn.Sequential) else None
    assert isinstance(first, torch.nn.Linear)
    assert torch.equal(load_file(str(stage1 / "projector.safetensors"))["0.weight"], first.weight)
    lm, tokenizer = load_language_model(stage1)
    assert lm.config.hidden_size == align.config.lm_hidden == 32 and tokenizer.eos_token_id is not None
    assert (run / "metrics.jsonl").is_file() and (run / "eval.json").is_file()


@pytest.mark.slow
def test_position_code_trains_in_stage1_and_must_match_in_stage2(stage1: Path, vr_data: Path, tmp_path: Path) -> None:
    from finetune.vr.build import build_align
    from finetune.vr.train import run_finetune_vr
    from kovr.modeling.projector import grid_position_code

    cfg = load_config(VRConfig, CONFIGS / "tiny_stage1.yaml",
                      _tiny(vr_data, tmp_path / "s1", 1, **{"vision.prefix_positions": "true"}))
    checkpoint = run_finetune_vr(cfg).checkpoint
    align = AlignModel.from_checkpoint(checkpoint)
    assert align.config.prefix_positions and align.prefix_position is not None
    assert not torch.allclose(align.prefix_position, grid_position_code(4, 32))  # stage 1 moved it
    weights = load_file(str(next((tmp_path / "s1" / "checkpoints").iterdir()) / "trainable.safetensors"))
    assert "align.prefix_position" in weights

    mismatched = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml",
                             _tiny(vr_data, tmp_path / "s2", 2, init_from=stage1,
                                   **{"vision.prefix_positions": "true"}))
    with pytest.raises(ValueError, match="stage-1 checkpoint was trained with False"):
        build_align(mismatched, 32)


@pytest.mark.slow
def test_stage2_lora_merged_changes_the_lm_and_eval_cli_reports(stage1: Path, vr_data: Path,
                                                                 tmp_path: Path) -> None:
    from finetune.vr.train import run_finetune_vr

    out = tmp_path / "s2"
    cfg = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml", _tiny(vr_data, out, 2, init_from=str(stage1)))
    result = run_finetune_vr(cfg)
    before, _ = load_language_model(stage1)
    after, _ = load_language_model(result.checkpoint)
    assert not (result.checkpoint / "lora").exists()
    changed = [n for n, p in after.named_parameters() if not torch.equal(p, before.state_dict()[n])]
    assert any("query_key_value" in n for n in changed)
    info = json.loads((result.checkpoint / "vr_run.json").read_text(encoding="utf-8"))
    assert info["stage"] == 2 and info["images"] is True and info["data"]["vqa"] > 0

    report = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "kovr", "eval-vr", str(out), "--data", str(vr_data), "--max", "10",
         "--json", str(report), "--threads", "1"], check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 유형 type | n | 정확도 accuracy |" in proc.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["overall"]["n"] == 10 and data["images"] is True
    assert sum(v["n"] for v in data["by_type"].values()) == 10
    assert sum(v["n"] for v in data["by_template_id"].values()) == 10
    assert all(key.split("_")[0] in {"colour", "shape", "exist", "count", "rel"} for key in data["by_template_id"])


@pytest.mark.slow
def test_adapter_save_keeps_a_lora_folder(stage1: Path, vr_data: Path, tmp_path: Path) -> None:
    from finetune.vr.train import run_finetune_vr

    cfg = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml", _tiny(
        vr_data, tmp_path / "s2a", 2, init_from=str(stage1), **{"language_model.save": "adapter",
                                                                  "train.max_steps": 1, "data.eval_max": 0}))
    ckpt = run_finetune_vr(cfg).checkpoint
    assert (ckpt / "lora" / "adapter_config.json").is_file() and not (ckpt / "language_model").exists()
    lm, _ = load_language_model(ckpt)  # base from stage 1 + adapter, merged at load
    assert lm.config.hidden_size == 32


@pytest.mark.slow
def test_interrupted_stage2_resumes_to_the_same_weights(stage1: Path, vr_data: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune.vr.train as vr_train

    def run(out: Path, stop_at: int | None = None) -> Any:
        extra = {"init_from": str(stage1), "train.save_every": 2, "data.eval_max": 0, "data.text_ratio": 0}
        cfg = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml", _tiny(vr_data, out, 2, **extra))
        return vr_train.run_finetune_vr(cfg)

    straight = run(tmp_path / "straight")
    original = vr_train.train_loop  # type: ignore[attr-defined]  # the name train.py imported, patched below

    def interrupting(spec: Any, state: Any = None) -> Any:
        def stop(st: Any, _record: dict) -> None:
            if st.step == 2:
                raise KeyboardInterrupt
        spec.on_step = stop
        return original(spec, state)

    monkeypatch.setattr(vr_train, "train_loop", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    monkeypatch.setattr(vr_train, "train_loop", original)
    resumed = run(tmp_path / "resumed")
    assert resumed.state.step == straight.state.step == 4
    a = load_file(str(straight.checkpoint / "projector.safetensors"))
    b = load_file(str(resumed.checkpoint / "projector.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the training time counts both parts of the interrupted run, not only the resumed one
    whole, straight_info = read_run_info(resumed.checkpoint), read_run_info(straight.checkpoint)
    assert whole["train_seconds_this_run"] > 0 and whole["train_seconds"] > whole["train_seconds_this_run"]
    assert straight_info["train_seconds"] == straight_info["train_seconds_this_run"]


def test_bad_configs_are_clear_errors(vr_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="init_from"):
        load_config(VRConfig, None, ["stage=2", f"data.dir={vr_data}"])
    with pytest.raises(ConfigError, match=r"vision\.projector_type"):
        load_config(VRConfig, None, ["stage=1", f"data.dir={vr_data}", "vision.projector_type=qformer"])
    with pytest.raises(ConfigError, match=r"vision\.tiny\.tpyo: unknown key"):
        load_config(VRConfig, None, ["stage=1", f"data.dir={vr_data}", "vision.tiny.tpyo=1"])
    proc = subprocess.run([sys.executable, "-m", "kovr", "finetune-vr", str(CONFIGS / "tiny_stage1.yaml"),
                           "--set", f"data.dir={tmp_path / 'none'}", "--set", f"run.output_dir={tmp_path / 'r'}"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "data file not found" in proc.stderr


def test_grouped_batches_pad_less_and_repeat_per_epoch() -> None:
    """Short image questions and long text instructions do not share a batch (grouped), and the
    plan is a pure function of (seed, epoch), which resume relies on."""
    import random

    from finetune.vr.data import Encoded, epoch_batches

    rng = random.Random(0)
    items = [Encoded([1] * n, [1] * n, None, 0) for n in [rng.randint(40, 60) for _ in range(900)] +
             [rng.randint(100, 190) for _ in range(100)]]

    def padded_tokens(batches: list[list[Encoded]]) -> int:
        return sum(len(b) * max(len(it.input_ids) for it in b) for b in batches)

    grouped, plain = epoch_batches(items, 32, seed=3), epoch_batches(items, 32, seed=3, mode="padded")
    assert all(len(b) == 32 for b in grouped(0)) and len(grouped(0)) == len(plain(0)) == 1000 // 32
    assert padded_tokens(grouped(0)) < 0.5 * padded_tokens(plain(0))
    assert [[id(it) for it in b] for b in grouped(1)] == [[id(it) for it in b] for b in grouped(1)]
    assert [[id(it) for it in b] for b in grouped(1)] != [[id(it) for it in b] for b in grouped(2)]
