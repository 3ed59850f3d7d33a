"""Throughput of `kovr finetune-vr` at a larger size: stage 1 and stage 2 on a GPU.

    python bench/bench_vr_scale.py                 # CUDA, bf16: CLIP-B/16-shaped encoder, Polyglot-ko-1.3B-shaped LM
    python bench/bench_vr_scale.py --small         # CPU smoke run at tiny shapes (the test runs this)

No pretrained weights are reachable here, so both towers are random-init at the real shapes
(throughput does not depend on the weights). The GPU configs
finetune/vr/configs/polyglot_ko_1.3b_stage{1,2}.yaml run through `run_finetune_vr` unchanged but for
``--set`` overrides that point them at the random models and at a synthetic set rendered at the
encoder's input size. Three runs, each loading its models afresh:

- stage 1: only the projector trains (encoder and LM frozen), on captions;
- stage 2: projector + LoRA (r=128 on every linear layer), on image questions + 10% text;
- stage 2, text-only: the same records and steps without the image prefix (the baseline).

Figures are steady-state, over the steps after ``--warmup``: optimizer steps/s, images/s, tokens/s
(text plus image-prefix positions) and peak GPU memory. Image features are recomputed every step
(``vision.feature_cache=0``), so images/s includes loading, preprocessing and the encoder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_finetune import POLYGLOT_1_3B, machine
from finetune.metrics import METRICS_FILE, read_metrics
from finetune.modeling import train_tokenizer
from finetune.vr.config import CONFIGS, VRConfig
from finetune.vr.data import load_captions, load_vqa
from finetune.vr.train import run_finetune_vr
from finetune.yaml_config import load_config
from kovr.prompt import get_template
from research.vr.synthetic import generate

# openai/clip-vit-base-patch16's vision tower: 196 patch tokens per 224 px image.
CLIP_B_16 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "image_size": 224, "patch_size": 16}
SMALL_VISION = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
                "image_size": 64, "patch_size": 16}
SMALL_LM = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
            "rotary_pct": 0.5, "max_position_embeddings": 512}
STAGE1, STAGE2 = CONFIGS / "polyglot_ko_1.3b_stage1.yaml", CONFIGS / "polyglot_ko_1.3b_stage2.yaml"


def make_vision(folder: Path, shape: dict[str, int]) -> Path:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**shape)).save_pretrained(folder)
    return folder


def make_language_model(folder: Path, shape: dict[str, Any], data: Path, vocab: int, device: str) -> Path:
    """A random GPT-NeoX of the given shape with a BPE trained on the set's text, saved in bf16 on GPU."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    template = get_template("kullm")
    records = load_captions(data / "train_captions.jsonl") + load_vqa(data / "train_vqa.jsonl")
    tokenizer = train_tokenizer([template.render(r.instruction, r.input) + r.output for r in records], vocab)
    # The 1.3B shape keeps its 30,080-token vocabulary (the output layer's cost); ids of the small BPE fit inside.
    shape = {"vocab_size": len(tokenizer), **shape}
    config = GPTNeoXConfig(**shape, use_parallel_residual=True, tie_word_embeddings=False,
                           bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = GPTNeoXForCausalLM(config)
    if device == "cuda":
        model = model.bfloat16()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def run_stage(name: str, config: Path, overrides: list[str], warmup: int, cuda: bool) -> dict[str, Any]:
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    cfg = load_config(VRConfig, config, overrides)
    result = run_finetune_vr(cfg)
    wall = time.perf_counter() - started
    steps = [r for r in read_metrics(result.run_dir / METRICS_FILE) if r.get("kind") == "train"]
    if not 1 <= warmup < len(steps):
        raise ValueError(f"{name}: {len(steps)} logged steps; --warmup must be from 1 to {len(steps) - 1}")
    timed = steps[warmup - 1:]  # the clock starts when the last untimed step ends
    seconds = timed[-1]["time"] - timed[0]["time"]
    n_steps = len(timed) - 1
    info = json.loads((result.checkpoint / "vr_run.json").read_text(encoding="utf-8"))
    counts = info["data"]
    image_share = (counts.get("captions", 0) + counts.get("vqa", 0)) / info["examples"] if cfg.data.images else 0.0
    batch = cfg.train.micro_batch_size * cfg.train.grad_accum_steps
    return {
        "run": name, "steps": n_steps, "seconds": round(seconds, 3),
        "steps_per_s": n_steps / seconds,
        # Stage 2 mixes text-only records in; its images per step is the batch times their share.
        "images_per_s": n_steps * batch * image_share / seconds,
        "tokens_per_s": sum(r["tokens"] for r in timed[1:]) / seconds,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "wall_s": round(wall, 1), "final_loss": timed[-1]["loss"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="tiny shapes on CPU (a smoke run, not a benchmark)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 40, small 4)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps, at least 1 (default 9, small 1)")
    parser.add_argument("--scenes", type=int, default=600)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for all three runs, as `kovr finetune-vr --set`")
    args = parser.parse_args()
    import torch

    cuda = not args.small
    if cuda and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --small for the CPU smoke run")
    steps = args.steps or (4 if args.small else 40)
    warmup = args.warmup if args.warmup is not None else (1 if args.small else 9)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-vr-scale-"))
    vision_shape = SMALL_VISION if args.small else CLIP_B_16
    lm_shape = SMALL_LM if args.small else POLYGLOT_1_3B
    started = time.perf_counter()
    data = work / "data"
    if not (data / "meta.json").is_file():
        generate(data, args.scenes, seed=0, image_size=vision_shape["image_size"], grid=4)
    vision = make_vision(work / "clip", vision_shape)
    lm = make_language_model(work / "lm", lm_shape, data, 1000 if args.small else 4000, "cuda" if cuda else "cpu")
    common = [f"data.dir={data}", f"train.max_steps={steps}", "train.log_every=1", "train.progress_bar=false",
              "train.save_every=null", "data.eval_max=0", "vision.feature_cache=0", f"vision.encoder={vision}"]
    if args.small:
        common += ["run.device=cpu", "run.torch_threads=2", "train.precision=fp32",
                   "train.gradient_checkpointing=false", "train.micro_batch_size=4", "lora.r=8", "lora.alpha=16"]
    common += args.overrides
    stage1_dir = work / "stage1"
    stage1 = [*common, f"run.output_dir={stage1_dir}", f"language_model.name_or_path={lm}"]
    runs = [run_stage("stage 1 (projector)", STAGE1, stage1, warmup, cuda)]
    stage2 = [*common, f"init_from={stage1_dir / 'align'}", "language_model.save=adapter"]
    runs.append(run_stage("stage 2 (projector + LoRA)", STAGE2, [*stage2, f"run.output_dir={work / 'stage2'}"],
                          warmup, cuda))
    runs.append(run_stage("stage 2, text-only baseline", STAGE2,
                          [*stage2, f"run.output_dir={work / 'text'}", "data.images=false"], warmup, cuda))
    print_table(runs, steps, warmup, vision_shape, lm_shape)
    print(f"total {time.perf_counter() - started:.0f} s (data, random models, three runs)")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=2), encoding="utf-8")
    return 0


def print_table(runs: list[dict[str, Any]], steps: int, warmup: int, vision: dict[str, Any],
                lm: dict[str, Any]) -> None:
    prefix = (vision["image_size"] // vision["patch_size"]) ** 2
    print(f"\nmachine: {machine()}")
    print(f"vision: CLIP-shaped, hidden {vision['hidden_size']} x {vision['num_hidden_layers']} layers, "
          f"{vision['image_size']} px, {prefix} prefix tokens; LM: GPT-NeoX hidden {lm['hidden_size']} x "
          f"{lm['num_hidden_layers']} layers; random init; {steps} steps per run, the first {warmup} untimed\n")
    base = runs[-1]["tokens_per_s"]
    print("| run | steps/s | images/s | tokens/s | tokens/s vs text-only | peak GPU GiB | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        print(f"| {r['run']} | {r['steps_per_s']:.2f} | {r['images_per_s']:.1f} | {r['tokens_per_s']:,.0f} | "
              f"{r['tokens_per_s'] / base:.2f}x | {peak} | {r['wall_s']} |")


if __name__ == "__main__":
    sys.exit(main())
