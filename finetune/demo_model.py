"""The embedded demo model: a small Korean GPT-NeoX trained on CPU in a few minutes.

Training text is the repository's own Korean instruction set (kovr/data, always present) plus,
when ../shared/data exists, its KoAlpaca and chatbot Q/A records. A byte-level BPE tokenizer is
trained first, then the model, for a fixed time budget, through `kovr finetune`'s training loop
(finetune.loop). The folder is saved like any fine-tuned
model (save_pretrained + tokenizer + prompt_template.json) with `kovr_model.json` recording that
it is a demo, its held-out loss and a few sample answers.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from kovr.data import load_demo_instructions, load_test_prompts
from kovr.modeling import META_FILE
from kovr.prompt import PromptTemplate

# A short template: the demo model spends its few minutes on answers, not on a long header.
DEMO_TEMPLATE = PromptTemplate(
    name="kovr-demo",
    prompt_input="### 질문:\n{instruction}\n\n### 입력:\n{input}\n\n### 답변:\n",
    prompt_no_input="### 질문:\n{instruction}\n\n### 답변:\n",
    response_split="### 답변:",
    # Up to 4 (TGI's limit): a small model sometimes opens a new block instead of stopping.
    stop=("\n### 질문:", "\n### 답변:", "\n### 입력:", "### 질문:"),
)
# Shared files and how many records of each to sample: short everyday Q/A reads well after a few
# minutes of training; KoAlpaca's longer answers add breadth. More records would each be seen too
# rarely to be learnt in the time budget.
SHARED_FILES = {"korean_chatbot_qa.jsonl": 6000, "koalpaca_v1.jsonl": 500}
Record = dict[str, str]


@dataclass(frozen=True)
class DemoConfig:
    vocab_size: int = 4000
    hidden_size: int = 192
    layers: int = 4
    heads: int = 4
    block_size: int = 128
    batch_size: int = 8
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    # Wall-clock budget for the whole build (data, tokenizer, training, evaluation): a fixed
    # number of steps would take an hour on a slow laptop; a budget keeps "a few minutes".
    time_budget_s: float = 270.0
    max_steps: int = 20000
    own_data_repeats: int = 6  # the repo's own set is small and written for this; see it most
    heldout_batches: int = 8
    heldout_fraction: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.heads:
            raise ValueError("hidden_size must be divisible by heads")
        if self.time_budget_s <= 0 or self.max_steps < 1 or self.block_size < 16:
            raise ValueError("time_budget_s, max_steps and block_size must be positive (block_size >= 16)")


def collect_records(shared_data_dir: Path | None, rng: random.Random) -> tuple[list[Record], list[str]]:
    """The training records (own set + a sample of each shared file) and a line per source."""
    records = load_demo_instructions()
    sources = [f"kovr/data/ko_instructions.jsonl ({len(records)})"]
    if shared_data_dir is None or not shared_data_dir.is_dir():
        return records, sources
    for name, limit in SHARED_FILES.items():
        path = shared_data_dir / name
        if not path.is_file():
            continue
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
        usable = [r for r in map(_shared_record, map(json.loads, lines)) if r["instruction"] and r["output"]]
        picked = rng.sample(usable, min(limit, len(usable)))
        records.extend(picked)
        sources.append(f"{name} ({len(picked)} of {len(lines)})")
    return records, sources


def _shared_record(raw: dict[str, object]) -> Record:
    record = {k: str(raw.get(k) or "").strip() for k in ("instruction", "input", "output")}
    output = record["output"]
    if len(output) > 2 and output[0] == output[-1] == '"':  # some KoAlpaca answers are quoted whole
        record["output"] = output[1:-1].strip()
    return record


def render(record: Record) -> str:
    return DEMO_TEMPLATE.render(record["instruction"], record.get("input", "")) + record["output"]


def build_demo_model(
    output: Path,
    *,
    shared_data_dir: Path | None = None,
    config: DemoConfig = DemoConfig(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train and save the demo model into `output`; returns what was written to kovr_model.json."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from kovr.modeling.bpe import train_byte_level_bpe

    started = time.perf_counter()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    records, sources = collect_records(shared_data_dir, rng)
    own = load_demo_instructions()
    heldout, train = _split(records, config, rng)
    log(f"데모 모델 학습 데이터 (training data): {', '.join(sources)}; held out {len(heldout)}")
    tokenizer = train_byte_level_bpe((render(r) for r in records), vocab_size=config.vocab_size)
    eos = tokenizer.eos_token_id
    model = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=config.hidden_size, num_hidden_layers=config.layers,
            num_attention_heads=config.heads, intermediate_size=4 * config.hidden_size,
            max_position_embeddings=1024, rotary_pct=0.25, bos_token_id=eos, eos_token_id=eos,
            tie_word_embeddings=True, use_parallel_residual=True,
        )
    )
    own_keys = {(r["instruction"], r["input"]) for r in own}
    repeated = [r for r in train if (r["instruction"], r.get("input", "")) in own_keys]
    weighted = train + repeated * (config.own_data_repeats - 1)
    blocks = _blocks([render(r) for r in weighted], tokenizer, eos, config.block_size, rng)
    budget = config.time_budget_s - (time.perf_counter() - started) - 20  # leave time to evaluate
    steps = _train(model, blocks, config, max(budget, 10.0), progress)
    held = _blocks([render(r) for r in heldout], tokenizer, eos, config.block_size, rng)
    loss = _heldout_loss(model, held[: config.heldout_batches * config.batch_size])
    samples = _samples(model, tokenizer)
    meta: dict[str, Any] = {
        "demo": True,
        "heldout_loss": round(loss, 4),
        "heldout_perplexity": round(math.exp(loss), 2),
        "heldout_records": len(heldout),
        "train_records": len(train),
        "train_steps": steps,
        "train_tokens": steps * config.batch_size * config.block_size,
        "train_seconds": round(time.perf_counter() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sources": sources,
        "config": asdict(config),
        "samples": samples,
    }
    _save(output, model, tokenizer, meta)
    return meta


def _split(records: list[Record], config: DemoConfig, rng: random.Random) -> tuple[list[Record], list[Record]]:
    shuffled = records[:]
    rng.shuffle(shuffled)
    n = max(10, int(len(shuffled) * config.heldout_fraction))
    return shuffled[:n], shuffled[n:]


def _blocks(texts: Iterable[str], tokenizer: Any, eos: int, size: int, rng: random.Random) -> torch.Tensor:
    """Records joined by EOS into one stream, cut into blocks of `size` tokens (the model shifts labels)."""
    texts = list(texts)
    rng.shuffle(texts)
    stream: list[int] = []
    for ids in tokenizer(texts)["input_ids"]:
        stream.extend([*ids, eos])
    usable = len(stream) // size * size
    return torch.tensor(stream[:usable], dtype=torch.long).view(-1, size)


def _train(
    model: torch.nn.Module, blocks: torch.Tensor, config: DemoConfig, budget_s: float, progress: bool,
) -> int:
    """`kovr finetune`'s loop (finetune.loop) on the blocks, until the time budget or max_steps."""
    from finetune.checkpoint import TrainState
    from finetune.loop import LoopSpec, train_loop
    from finetune.yaml_config import TrainSection

    size = blocks.shape[1]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))
    started = time.perf_counter()

    def lr_factor(step: int) -> float:  # warmup, then linear decay over the time budget
        elapsed = time.perf_counter() - started
        return min(1.0, (step + 1) / config.warmup_steps) * max(0.1, 1.0 - elapsed / budget_s)

    def batches_for_epoch(epoch: int) -> list[list[int]]:
        order = list(range(len(blocks)))
        random.Random(f"{config.seed}:{epoch}").shuffle(order)
        return [order[i:i + config.batch_size] for i in range(0, len(order) - config.batch_size + 1, config.batch_size)]

    def loss_fn(lm: torch.nn.Module, rows: list[int]) -> tuple[torch.Tensor, int]:
        batch = blocks[torch.tensor(rows)]
        items = len(rows) * (size - 1)  # the model shifts labels: one target fewer than tokens per row
        return lm(input_ids=batch, labels=batch).loss * items, items

    seconds = int(budget_s)
    bar = tqdm(total=seconds, unit="s", desc="데모 모델 학습 (training demo model)", disable=not progress)

    def on_step(state: TrainState, record: dict[str, Any]) -> None:
        bar.n = min(int(time.perf_counter() - started), seconds)
        bar.set_postfix(step=state.step, loss=f"{record['loss']:.3f}", refresh=True)

    train = TrainSection(micro_batch_size=config.batch_size, max_steps=config.max_steps,
                         learning_rate=config.learning_rate, max_grad_norm=1.0, precision="fp32",
                         gradient_checkpointing=False, log_every=50, progress_bar=False)
    _use_fastest_threads(lambda: loss_fn(model, batches_for_epoch(0)[0])[0].backward())
    model.zero_grad(set_to_none=True)
    with tempfile.TemporaryDirectory(prefix="kovr-demo-") as run_dir:
        state = train_loop(LoopSpec(
            model=model, optimizer=optimizer, scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor),
            run_dir=Path(run_dir), train=train, total_steps=config.max_steps, batches_for_epoch=batches_for_epoch,
            loss_fn=loss_fn, weight_fn=lambda rows: len(rows) * (size - 1), tokens_fn=lambda rows: len(rows) * size,
            on_step=on_step, should_stop=lambda _: time.perf_counter() - started >= budget_s,
        ))
    bar.close()
    model.eval()
    return state.step


def _use_fastest_threads(probe: Callable[[], None]) -> None:
    """One thread or all? On a busy 2-core machine one thread can be several times faster.

    ``probe`` runs a forward and backward pass (no optimizer step, so the weights stay as they are).
    """
    options = sorted({1, torch.get_num_threads()})
    timings: dict[int, float] = {}
    for threads in options:
        torch.set_num_threads(threads)
        probe()  # the first pass with a thread count pays for warming up
        start = time.perf_counter()
        probe()
        timings[threads] = time.perf_counter() - start
    torch.set_num_threads(min(timings, key=timings.__getitem__))


@torch.inference_mode()
def _heldout_loss(model: torch.nn.Module, blocks: torch.Tensor) -> float:
    losses = [float(model(input_ids=chunk, labels=chunk).loss) for chunk in blocks.split(16)]
    return sum(losses) / max(1, len(losses))


@torch.inference_mode()
def _samples(model: Any, tokenizer: Any, n: int = 4) -> list[dict[str, str]]:
    out = []
    for prompt in load_test_prompts()[:n]:
        text = DEMO_TEMPLATE.render(prompt["instruction"], prompt["input"])
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        generated = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=60, do_sample=False, repetition_penalty=1.2,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        )
        answer = tokenizer.decode(generated[0, ids.shape[1]:], skip_special_tokens=True)
        for stop in DEMO_TEMPLATE.stop:
            answer = answer.split(stop)[0]
        out.append({"instruction": prompt["instruction"], "answer": answer.strip()})
    return out


def _save(output: Path, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    DEMO_TEMPLATE.save(output)
    (output / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
