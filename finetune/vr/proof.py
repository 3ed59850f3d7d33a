"""The proof that the image matters: the same stage-2 training with and without the image prefix.

Shared by bench/bench_vr.py (full size) and the slow test (small size): synthetic set ->
stage 1 (tiny LM pre-trained on the text, projector on captions) -> stage 2 twice (images on /
off, same records, steps and seed) -> accuracy by question type on held-out scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.config import load_config
from finetune.vr.checkpoint import evaluate_checkpoint
from finetune.vr.config import VRConfig
from finetune.vr.synthetic import generate
from finetune.vr.train import run_finetune_vr

CONFIGS = Path(__file__).resolve().parent / "configs"


@dataclass(frozen=True)
class ProofSize:
    scenes: int = 6000
    pretrain_steps: int = 300
    stage1_steps: int = 300
    stage2_steps: int = 12000
    eval_max: int = 1000
    types: tuple[str, ...] = ()  # only these question types in stage 2 and eval (empty: all)
    train_questions: tuple[tuple[str, int], ...] = ()  # (type, questions per training scene) overrides


def run_proof(workdir: Path, size: ProofSize, extra: list[str] | None = None) -> dict[str, Any]:
    data = workdir / "data"
    if not (data / "meta.json").is_file():
        generate(data, size.scenes, seed=0, image_size=64, grid=4, train_questions=dict(size.train_questions))
    common = [f"data.dir={data}", "train.progress_bar=false", "data.eval_max=0", *(extra or [])]
    s1 = load_config(VRConfig, CONFIGS / "tiny_stage1.yaml", common + [
        f"run.output_dir={workdir / 'stage1'}", f"train.max_steps={size.stage1_steps}",
        f"language_model.tiny.pretrain_steps={size.pretrain_steps}"])
    stage1 = run_finetune_vr(s1).checkpoint
    train_vqa, test_vqa = (_only(data, split, size.types) for split in ("train", "test"))
    results: dict[str, Any] = {}
    for name, images in (("align", True), ("text_only", False)):
        cfg = load_config(VRConfig, CONFIGS / "tiny_stage2.yaml", common + [
            f"init_from={stage1}", f"run.output_dir={workdir / name}", f"train.max_steps={size.stage2_steps}",
            f"data.images={str(images).lower()}", f"data.vqa=[{train_vqa}]"])
        run = run_finetune_vr(cfg)
        result, table = evaluate_checkpoint(run.checkpoint, test_vqa, limit=size.eval_max)
        result["train_seconds"] = round(run_seconds(run.checkpoint), 1)
        results[name] = result
        print(table, flush=True)
    return results


def run_seconds(checkpoint: Path) -> float:
    import json

    return float(json.loads((checkpoint / "vr_run.json").read_text(encoding="utf-8"))["train_seconds"])


def _only(data: Path, split: str, types: tuple[str, ...]) -> Path:
    """The split's VQA file, or a copy holding only the given question types."""
    import json

    source = data / f"{split}_vqa.jsonl"
    if not types:
        return source
    target = data / f"{split}_vqa.{'-'.join(types)}.jsonl"
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if json.loads(line)["type"] in types]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
