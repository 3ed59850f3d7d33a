"""Benchmark: model_server (continuous batching over HTTP) against plain sequential `model.generate`.

Measured in one run on the same weights and prompts, greedy decoding:
- time to first token (server: first SSE event over HTTP; baseline: `generate(max_new_tokens=1)`),
- tokens/s of one stream,
- aggregate tokens/s with 1, 4 and 16 concurrent streams (baseline: the same requests one after
  another, which is what a server without batching can do at best).

The server runs as its own process (`ModelServerProcess`, as `kovr serve` starts it), so the
benchmark's HTTP clients do not share its interpreter. Each figure is the best of `--repeat` runs.

    python bench/bench_model_server.py                 # the demo model (or a random demo-shaped one)
    python bench/bench_model_server.py --model PATH    # any causal LM folder
    python bench/bench_model_server.py --no-write      # print only, leave docs/BENCHMARKS.md alone
    python bench/bench_model_server.py --device cuda --shape polyglot-ko-1.3b --streams 1,16,64 --repeat 1

On a GPU the sequential baseline is timed over at most --baseline-requests requests (its rate does
not depend on how many run one after another), and the decode step is set against the memory bound:
every step reads all the weights once, at the copy bandwidth measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch
from text_generation import AsyncClient

from kovr.data import load_test_prompts
from kovr.settings import Settings, load_settings
from model_server.launcher import ModelServerProcess
from model_server.loading import LoadedModel, load_model

SECTION = "bench/bench_model_server.py"
GPU_SECTION = "bench/bench_model_server.py --device cuda"
# Random GPT-NeoX models of real checkpoints' shapes, for speed figures where weights cannot be fetched.
SHAPES: dict[str, dict[str, int | float | bool]] = {
    "polyglot-ko-1.3b": {
        "hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 8192,
        "vocab_size": 30080, "rotary_pct": 0.5, "max_position_embeddings": 2048, "tie_word_embeddings": False,
    },
    # Polyglot-ko-1.3B's depth and vocabulary at a CPU's width: its per-step Python work, little arithmetic.
    "narrow-24": {
        "hidden_size": 64, "num_hidden_layers": 24, "num_attention_heads": 4, "intermediate_size": 256,
        "vocab_size": 30080, "rotary_pct": 0.25, "max_position_embeddings": 2048, "tie_word_embeddings": False,
    },
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="causal LM folder or id (default: the demo model if built)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--streams", default="1,4,16", help="concurrency levels (default 1,4,16)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both sides (default 1: fastest on a busy 2-core machine)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/BENCHMARKS.md")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a random model of this shape instead of --model")
    parser.add_argument("--baseline-requests", type=int, default=4,
                        help="on a GPU, sequential requests timed for the baseline's rate (default 4)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--variants", default="after,before",
                        help="engine variants to run, in order: after (the defaults), "
                             "before (the change switched off), "
                             "static (the static cache forced, e.g. on a CPU)")
    parser.add_argument("--image-streams", type=int, default=16,
                        help="one more run with this many streams, every other prompt with an image (0: none)")
    parser.add_argument("--max-total-tokens", type=int, default=2048,
                        help="the server's max_total_tokens: the static cache's length per slot (default 2048)")
    return parser.parse_args(argv)


def pick_model(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """(source, description): --model, --shape, else the built demo model, else a random demo-shaped GPT-NeoX."""
    if args.model:
        return args.model, args.model
    if args.shape:
        return random_shaped_model(args.shape, args.device), f"random GPT-NeoX of {args.shape}'s shape"
    if (settings.demo_model_dir / "config.json").is_file():
        return str(settings.demo_model_dir), f"demo model ({settings.demo_model_dir})"
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from finetune.demo_model import DemoConfig
    from kovr.modeling.bpe import train_byte_level_bpe

    cfg = DemoConfig()
    folder = Path(tempfile.mkdtemp(prefix="kovr-bench-"))
    texts = [p["instruction"] + " " + p["reference"] for p in load_test_prompts()] * 5
    tokenizer = train_byte_level_bpe(texts, vocab_size=cfg.vocab_size)
    config = GPTNeoXConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden_size, rotary_pct=0.25,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
    )
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder), "random GPT-NeoX of the demo model's shape (demo model not built)"


def random_shaped_model(shape: str, device: str) -> str:
    """Save a random bf16 GPT-NeoX of SHAPES[shape] with a byte-level BPE trained on the test prompts."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from kovr.modeling.bpe import train_byte_level_bpe

    folder = Path(tempfile.mkdtemp(prefix=f"kovr-bench-{shape}-"))
    texts = [p["instruction"] + " " + p["reference"] for p in load_test_prompts()] * 5
    tokenizer = train_byte_level_bpe(texts, vocab_size=2000)
    config = GPTNeoXConfig(**SHAPES[shape], eos_token_id=tokenizer.eos_token_id)
    with torch.device(device):  # initialising 1.3 B weights on a GPU takes seconds, not minutes
        model = GPTNeoXForCausalLM(config).bfloat16()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return str(folder)


def copy_bandwidth(device: torch.device, gib: int = 4) -> float:
    """Bytes/s of a device-to-device copy (read + write), best of 5: what one decode step can stream."""
    if device.type != "cuda":
        return float("nan")
    src = torch.empty(gib << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * (gib << 30) / best


# --- baseline: plain model.generate, one request at a time -------------------------------------
def baseline(loaded: LoadedModel, prompts: list[str], max_new: int) -> tuple[int, float, list[list[int]]]:
    """(tokens, seconds, each prompt's generated ids)."""
    tokens, started, outputs = 0, time.perf_counter(), []
    eos = loaded.tokenizer.eos_token_id
    with torch.inference_mode():
        for prompt in prompts:
            ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"].to(loaded.device)
            out = loaded.model.generate(  # type: ignore[operator]  # transformers types generate as a Tensor attribute
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, min_new_tokens=max_new,
                do_sample=False, eos_token_id=eos, pad_token_id=eos,
            )
            tokens += out.shape[1] - ids.shape[1]
            outputs.append(out[0, ids.shape[1] :].tolist())
    return tokens, time.perf_counter() - started, outputs


def baseline_ttft(loaded: LoadedModel, prompt: str) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        baseline(loaded, [prompt], 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- model_server over HTTP -------------------------------------------------------------------
@dataclass
class Stream:
    ids: list[int]
    ttft: float
    step: float  # mean time between two tokens after the first (nan with one token)


@dataclass
class Run:
    tokens: int
    seconds: float
    streams: list[Stream]

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds

    @property
    def ttft(self) -> float:
        return statistics.median(s.ttft for s in self.streams)

    @property
    def step(self) -> float:
        """Median over streams of their mean time per decode step: what one step of the batch takes."""
        return statistics.median(s.step for s in self.streams)


async def stream_one(url: str, prompt: str, max_new: int) -> Stream:
    start = time.perf_counter()
    first = last = 0.0
    ids: list[int] = []
    async for event in AsyncClient(url, timeout=600).generate_stream(prompt, max_new_tokens=max_new):
        last = time.perf_counter() - start
        first = first or last
        ids.append(event.token.id)
    step = (last - first) / (len(ids) - 1) if len(ids) > 1 else float("nan")
    return Stream(ids, first, step)


async def server_run(url: str, prompts: list[str], max_new: int) -> Run:
    start = time.perf_counter()
    streams = await asyncio.gather(*(stream_one(url, p, max_new) for p in prompts))
    return Run(sum(len(s.ids) for s in streams), time.perf_counter() - start, list(streams))


def first_difference(got: list[list[int]], expected: list[list[int]]) -> str:
    """Where the server's tokens first leave `generate`'s, over the prompts both ran."""
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):
        for position, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"prompt {i + 1}: token {position + 1}"
    return f"none ({min(len(got), len(expected))} prompts)"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = f"{torch.cuda.get_device_name(0)}, " if torch.cuda.is_available() else ""
    return (f"{gpu}{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, load average {load:.1f} at start")


# The engine variants a run compares: "before" is the tree with this change switched off.
VARIANTS: dict[str, dict[Any, Any]] = {
    "after": {"kv_cache": "auto", "cuda_graphs": True, "batch_image_prefill": True},
    "before": {"kv_cache": "dynamic", "cuda_graphs": False, "batch_image_prefill": False},
    "static": {"kv_cache": "static", "cuda_graphs": True, "batch_image_prefill": True},
}
VARIANT_LABELS = {
    "after": "after: the defaults (GPU: static KV cache + CUDA graphs; CPU: dynamic cache), "
             "image prompts prefilled with text",
    "before": "before: dynamic KV cache, eager, image prompts prefilled alone "
              "(KOVR_KV_CACHE=dynamic KOVR_CUDA_GRAPHS=false KOVR_BATCH_IMAGE_PREFILL=false)",
    "static": "static: static KV cache (+ CUDA graphs on a GPU), image prompts prefilled with text",
}


def image_prompts(prompts: list[str], every: int = 2) -> list[str]:
    """Every `every`-th prompt gets a distinct random image in front (TGI markdown, data URI)."""
    from PIL import Image

    from kovr.modeling.images import encode_data_uri

    out = []
    for i, prompt in enumerate(prompts):
        if i % every:
            out.append(prompt)
            continue
        generator = torch.Generator().manual_seed(i)
        pixels = (torch.rand(48, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
        out.append(f"![]({encode_data_uri(Image.fromarray(pixels))})\n{prompt}")
    return out


def tiny_align_checkpoint(loaded: LoadedModel, source: str) -> str:
    """A tiny random align model projecting into the served model's width: image turns cost a 16-vector prefix."""
    from finetune.vr.build import make_tiny_align_model

    folder = Path(tempfile.mkdtemp(prefix="kovr-bench-vr-"))
    hidden = int(loaded.model.get_input_embeddings().weight.shape[1])  # type: ignore[index]
    make_tiny_align_model(lm_hidden=hidden, language_model=source).save(folder)
    return str(folder)


def measure_server(
    settings: Settings, prompts: list[str], levels: list[int], n: int, best: int, images: list[str] | None,
) -> dict[Any, Any]:
    """One engine variant over HTTP: TTFT, and per level its best run (aggregate rate) and median step."""
    figures: dict[Any, Any] = {}
    with ModelServerProcess(settings, startup_timeout_s=600) as server:
        url = server.url
        asyncio.run(server_run(url, prompts[:2], 4))  # warm-up
        figures["ttft"] = min(asyncio.run(server_run(url, prompts[:1], 1)).ttft for _ in range(best))
        for level in levels:
            runs = [asyncio.run(server_run(url, prompts[:level], n)) for _ in range(best)]
            figures[level] = min(runs, key=lambda r: r.seconds)
        if images:
            runs = [asyncio.run(server_run(url, images, n)) for _ in range(best)]
            figures["images"] = min(runs, key=lambda r: r.seconds)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    levels = [int(n) for n in args.streams.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    settings = load_settings(data_dir=Path(tempfile.mkdtemp()), device=args.device)
    source, described = pick_model(args, load_settings())
    settings = load_settings(
        model=source, device=args.device, max_concurrent_requests=max(levels), max_batch_size=max(levels),
        max_queue=max(levels), data_dir=settings.data_dir, torch_threads=args.threads, ignore_eos=True,
        max_input_tokens=args.max_total_tokens - args.max_new_tokens, max_total_tokens=args.max_total_tokens,
    )
    torch.set_num_threads(args.threads)
    where = machine()
    loaded = load_model(settings)
    template = loaded.template
    prompts = [template.render(p["instruction"], p["input"]) for p in load_test_prompts()]
    prompts = (prompts * (max(levels) // len(prompts) + 1))[: max(levels)]
    image_level = args.image_streams
    images = None
    if image_level:
        settings = settings.model_copy(update={"vr_checkpoint": tiny_align_checkpoint(loaded, source)})
        images = image_prompts((prompts * (image_level // len(prompts) + 1))[:image_level])
        if image_level > max(levels):
            settings = settings.model_copy(update={"max_concurrent_requests": image_level, "max_queue": image_level})
    n = args.max_new_tokens
    print(f"model: {described}\nmachine: {where}\nmax_new_tokens={n}, greedy, variants {variants}\n")

    gpu = loaded.device.type == "cuda"
    cap = args.baseline_requests if gpu else max(levels)
    best = args.repeat
    baseline(loaded, prompts[:1], 4)  # warm-up (CUDA kernels, allocator)
    base: dict[Any, Any] = {"ttft": baseline_ttft(loaded, prompts[0])}
    for level in levels:
        runs = [baseline(loaded, prompts[: min(level, cap)], n) for _ in range(best)]
        base[level] = min(runs, key=lambda r: r[1])
    measured = {name: measure_server(settings.model_copy(update=VARIANTS[name]), prompts, levels, n, best, images)
                for name in variants}
    rows, figures = table_rows(base, measured, variants, levels, image_level)
    if gpu:
        rows += memory_bound_rows(loaded, figures, measured, variants, levels)
    table = render_table(rows, variants)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"model": described, "machine": where, "figures": figures, "rows": rows},
                                        ensure_ascii=False, indent=2), encoding="utf-8")
    if not args.no_write:
        write_section(described, where, n, table, gpu=gpu)
    return 0


def table_rows(
    base: dict[Any, Any], measured: dict[str, dict[Any, Any]], variants: list[str], levels: list[int],
    image_level: int,
) -> tuple[list[list[str]], dict[str, float]]:
    figures: dict[str, float] = {"baseline_ttft_ms": float(base["ttft"]) * 1000}
    rows = [["time to first token (1 stream)", f"{figures['baseline_ttft_ms']:.0f} ms"]]
    for name in variants:
        figures[f"{name}_ttft_ms"] = float(measured[name]["ttft"]) * 1000
        rows[0].append(f"{figures[f'{name}_ttft_ms']:.0f} ms")
    for level in levels:
        b_tokens, b_time, b_ids = base[level]
        b_rate = b_tokens / b_time
        figures[f"baseline_tps_{level}"] = b_rate
        label = "tokens/s, 1 stream" if level == 1 else f"aggregate tokens/s, {level} streams"
        rate = [label, f"{b_rate:.1f}"]
        step = [f"decode step, {level} stream(s) (median over streams)", f"{1000 / b_rate:.1f} ms/token"]
        ttft = [f"median time to first token, {level} streams", "(sequential)"]
        same = [f"first token differing from `generate`, {level} stream(s)", "(reference)"]
        for name in variants:
            run: Run = measured[name][level]
            figures[f"{name}_tps_{level}"], figures[f"{name}_step_ms_{level}"] = run.rate, run.step * 1000
            figures[f"{name}_ttft_ms_{level}"] = run.ttft * 1000
            rate.append(f"{run.rate:.1f} (x{run.rate / b_rate:.2f})")
            step.append(f"{run.step * 1000:.1f} ms")
            ttft.append(f"{run.ttft * 1000:.0f} ms")
            same.append(first_difference([s.ids for s in run.streams], b_ids))
        rows += [rate, step] + ([ttft] if level > 1 else []) + [same]
    if image_level:
        rate = [f"aggregate tokens/s, {image_level} streams, every other prompt with an image", "-"]
        ttft = [f"median time to first token, {image_level} streams with images", "-"]
        for name in variants:
            run = measured[name]["images"]
            figures[f"{name}_images_tps"], figures[f"{name}_images_ttft_ms"] = run.rate, run.ttft * 1000
            rate.append(f"{run.rate:.1f}")
            ttft.append(f"{run.ttft * 1000:.0f} ms")
        rows += [rate, ttft]
    return rows, figures


def memory_bound_rows(
    loaded: LoadedModel, figures: dict[str, float], measured: dict[str, dict[Any, Any]], variants: list[str],
    levels: list[int],
) -> list[list[str]]:
    """Decode step time against the time to read every weight once at the measured copy bandwidth."""
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    bandwidth = copy_bandwidth(loaded.device)
    bound_ms = weight_bytes / bandwidth * 1000
    figures.update(weight_gb=weight_bytes / 1e9, copy_bandwidth_gbs=bandwidth / 1e9, bound_step_ms=bound_ms)
    rows = [["weights read per decode step", f"{weight_bytes / 1e9:.2f} GB",
             *[f"copy bandwidth {bandwidth / 1e12:.2f} TB/s: bound {bound_ms:.2f} ms/step"] * len(variants)]]
    for level in levels:
        baseline_ratio = 1000 / figures[f"baseline_tps_{level}"] / bound_ms
        row = [f"decode step / memory bound, {level} stream(s)", f"{baseline_ratio:.1f}x"]
        for name in variants:
            ratio = figures[f"{name}_step_ms_{level}"] / bound_ms
            figures[f"{name}_step_over_bound_{level}"] = ratio
            row.append(f"{ratio:.1f}x")
        rows.append(row)
    return rows


def render_table(rows: list[list[str]], variants: list[str]) -> str:
    head = ["measure", "baseline: sequential `model.generate`", *[VARIANT_LABELS[v] for v in variants]]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(model: str, where: str, max_new: int, table: str, *, gpu: bool = False) -> None:
    section = GPU_SECTION if gpu else SECTION
    command = " ".join(["python", *sys.argv]) if gpu else "python bench/bench_model_server.py"
    notes = GPU_NOTES if gpu else CPU_NOTES
    body = (
        f"## {section}\n\n"
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n\n"
        f"- Model: {model}\n- Machine: {where}\n- Greedy, max_new_tokens={max_new}, "
        "prompts: kovr/data/test_prompts.jsonl "
        "rendered with the model's template; EOS is masked on both sides (HF `min_new_tokens`, the server's "
        "`KOVR_IGNORE_EOS`), so every request decodes exactly max_new_tokens and both generate the same tokens.\n\n"
        f"{table}\n\n{notes}\n"
    )
    replace_section(section, body)


CPU_NOTES = (
    "model_server runs as its own process (as `kovr serve` starts it) once per engine variant, and every "
    "figure is the best of --repeat runs. A decode step is the median over streams of (last token time - "
    "first token time) / (tokens - 1), so it includes the prefills of later arrivals. On the CPU the "
    "shipped default (`KOVR_KV_CACHE=auto`) is the dynamic cache: the static one decodes at the same speed "
    "here and preallocates max_concurrent_requests x max_total_tokens. GPU figures: the next section."
)
GPU_NOTES = (
    "The baseline's rate is timed over at most --baseline-requests requests one after another. The "
    "memory bound is the time to read every weight once at the copy bandwidth measured in the same run. "
    "bf16: a batched step and `generate` alone round differently, so greedy tokens may part after some "
    "position; the row 'first token differing' says where."
)


def replace_section(section: str, body: str) -> None:
    """Put `body` in docs/BENCHMARKS.md in place of the `## section` it starts with (or append it)."""
    path = REPO / "docs" / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    start = text.find(f"## {section}\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + 3)
        text = text[:start] + body + (text[end + 1 :] if end >= 0 else "")
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    sys.exit(main())
