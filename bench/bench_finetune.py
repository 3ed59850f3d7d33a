"""Training throughput of `kovr finetune` batching: packing and length grouping vs padding to max length.

The baseline pads every example to ``max_seq_len`` and computes the logits of every position, as
the KULLM and KoAlpaca reference training scripts do. Length grouping is timed both with those
logits and with ours, only at the positions that predict a response token (finetune/objective.py).
All modes train the same LoRA model on the same examples for one epoch in the same process;
throughput counts only real (non-padding) tokens.

    python bench/bench_finetune.py                       # CPU, tiny GPT-NeoX, KoAlpaca from ../shared/data
    python bench/bench_finetune.py --examples 128 --max-seq-len 256 --repeats 5
    python bench/bench_finetune.py --gpu                 # Polyglot-ko-1.3B-shaped GPT-NeoX, bf16, on CUDA

Data: ../shared/data/koalpaca_v1.jsonl when present, else kovr/data/ko_instructions.jsonl, else
the small Korean set used by the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from finetune.batching import collate, plan_epoch
from finetune.data import load_records, prepare_examples
from finetune.finetune_config import DataSection
from finetune.modeling import Runtime, add_lora, train_tokenizer
from finetune.objective import every_position_loss, loss_sum
from finetune.optim import build_optimizer
from finetune.yaml_config import LoraSection, TrainSection, build_config
from kovr.prompt import KULLM

SHARED = REPO.parent / "shared" / "data" / "koalpaca_v1.jsonl"
REPO_SET = REPO / "kovr" / "data" / "ko_instructions.jsonl"
# Polyglot-ko-1.3B's shape (EleutherAI/polyglot-ko-1.3b config.json).
POLYGLOT_1_3B = {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16,
                 "intermediate_size": 8192, "vocab_size": 30080, "rotary_pct": 0.5, "max_position_embeddings": 2048}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def data_file(tmp: Path) -> tuple[Path, str]:
    if SHARED.is_file():
        return SHARED, "KoAlpaca v1.0 (../shared/data)"
    if REPO_SET.is_file():
        return REPO_SET, "kovr/data/ko_instructions.jsonl"
    from tests.finetune.korean_records import all_records

    path = tmp / "ko.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in all_records()), encoding="utf-8")
    return path, "tests' Korean records"


def build_model(args: argparse.Namespace, tokenizer: Any, device: Any, dtype: Any) -> Any:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    shape = POLYGLOT_1_3B if args.gpu else {
        "hidden_size": args.hidden, "num_hidden_layers": args.layers, "num_attention_heads": args.hidden // 32,
        "intermediate_size": 4 * args.hidden, "vocab_size": len(tokenizer), "rotary_pct": 0.5,
        "max_position_embeddings": args.max_seq_len}
    attn = "sdpa"
    if args.gpu:
        try:
            import flash_attn  # noqa: F401  # imported only to learn whether it is installed

            attn = "flash_attention_2"
        except ImportError:
            pass
    config = GPTNeoXConfig(**shape, use_parallel_residual=True, tie_word_embeddings=False,
                           eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                           attn_implementation=attn)
    torch.manual_seed(0)
    with torch.device(device):
        model = GPTNeoXForCausalLM(config).to(dtype)
    return model, attn


# (batching, logits of every position?): the reference scripts' way first (the baseline).
MODES = (("padded", True), ("grouped", True), ("grouped", False), ("packed", False))


def prepare_mode(mode: str, every_position: bool, examples: list[Any], args: argparse.Namespace, rt: Runtime,
                 pad_id: int) -> dict[str, Any]:
    lengths = [len(e) for e in examples]
    plan = plan_epoch(lengths, mode=mode, micro_batch_size=args.micro_batch, max_seq_len=args.max_seq_len,
                      seed=0, epoch=0)
    mask: Literal["2d", "4d", "varlen"] = rt.mask if mode == "packed" else "2d"
    pad_to = args.max_seq_len if mode == "padded" else None
    batches = [collate(m, examples, pad_id=pad_id, pad_to=pad_to, mask=mask, mask_dtype=rt.dtype) for m in plan]
    real = sum(b.real_tokens for b in batches)
    slots = sum(b.input_ids.numel() for b in batches)
    label = f"{mode}, {'every position' if every_position else 'response positions'}"
    return {"mode": label, "loss": every_position_loss if every_position else loss_sum, "batches": batches,
            "micro_batches": len(batches), "real_tokens": real, "slots": slots, "padding": 1 - real / slots,
            "times": []}


def time_epoch(run: dict[str, Any], model: Any, optimizer: Any, rt: Runtime, warmup: int) -> None:
    """One timed pass over the mode's micro-batches (after ``warmup`` untimed ones)."""
    import torch

    def step(batch: Any) -> None:
        with torch.autocast(rt.device.type, dtype=rt.autocast) if rt.autocast else _Null():
            loss, n = run["loss"](model, batch.to(rt.device))
        (loss / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in run["batches"][:warmup]:
        step(batch)
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for batch in run["batches"]:
        step(batch)
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
        run["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    run["times"].append(time.perf_counter() - start)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def machine() -> str:
    import torch

    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    desc = f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def main() -> None:
    import tempfile

    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=1, help="untimed micro-batches per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per mode (best is reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="Polyglot-ko-1.3B-shaped model, bf16, on CUDA")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    path, label = data_file(tmp)
    section = build_config(DataSection, {"sources": [{"path": str(path), "max_records": args.examples * 3}],
                                         "heldout": 0, "max_seq_len": args.max_seq_len})
    loaded = load_records(section)
    tokenizer = train_tokenizer(loaded.texts(20000, KULLM), args.vocab)
    # On GPU the 1.3B shape keeps its 30,080-token vocabulary; ids of the small tokenizer fit inside it.
    data = prepare_examples(loaded, section, tokenizer, KULLM, seed=0)
    examples = data.train[: args.examples]
    device = torch.device("cuda" if args.gpu else "cpu")
    dtype = torch.bfloat16 if args.gpu else torch.float32
    model, attn = build_model(args, tokenizer, device, dtype)
    rt = Runtime(device, dtype, dtype if args.gpu else None, bool(args.gpu),
                 "varlen" if attn == "flash_attention_2" else "4d")
    model = add_lora(model, LoraSection(r=8, alpha=16, dropout=0.05), rt)
    optimizer = build_optimizer(model, TrainSection(learning_rate=1e-4))
    results = [prepare_mode(m, every, examples, args, rt, tokenizer.pad_token_id) for m, every in MODES]
    for _ in range(args.repeats):  # interleaved, so load from other processes hits every mode alike
        for run in results:
            time_epoch(run, model, optimizer, rt, args.warmup)
    for run in results:
        run["seconds"] = min(run["times"])  # the least disturbed pass
        run["real_tokens_per_s"] = run["real_tokens"] / run["seconds"]
    base = results[0]["real_tokens_per_s"]
    mean_len = sum(len(e) for e in examples) / len(examples)
    print(f"\nmachine: {machine()}")
    print(f"data: {label}, {len(examples)} examples, mean {mean_len:.0f} tokens, max_seq_len {args.max_seq_len}, "
          f"micro-batch {args.micro_batch}; "
          f"model: GPT-NeoX {'1.3B-shaped' if args.gpu else f'{args.layers}x{args.hidden}'}"
          f" + LoRA r=8 on query_key_value, attention {attn}, {dtype}\n")
    print(f"best of {args.repeats} interleaved passes per mode\n")
    header = "| batching, logits at | micro-batches | padding | seconds | real tokens/s | vs padded |"
    if args.gpu:
        header += " peak GPU GiB | MFU |"
    print(header)
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.gpu else ""))
    n_params = sum(p.numel() for p in model.parameters())
    for r in results:
        row = (f"| {r['mode']} | {r['micro_batches']} | {r['padding']:.0%} | {r['seconds']:.1f} | "
               f"{r['real_tokens_per_s']:,.0f} | {r['real_tokens_per_s'] / base:.2f}x |")
        if args.gpu:
            peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in torch.cuda.get_device_name(0)), None)
            # LoRA: forward 2N + backward through frozen weights 2N (activation gradients only) per token.
            mfu = 4 * n_params * r["real_tokens_per_s"] / peak if peak else float("nan")
            row += f" {r['peak_gib']:.1f} | {mfu:.0%} |"
        print(row)


if __name__ == "__main__":
    main()
