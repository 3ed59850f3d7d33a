"""From configured sources to tokenised training and held-out examples, with a summary of every drop.

Pipeline: read (hub or file) -> normalise -> drop broken/empty -> deduplicate -> tokenise with the
prompt template (loss only on the response + EOS) -> drop too long / too short -> seeded held-out
split -> weighted mixing of the training part. :class:`DataSummary` counts every record at every
stage; it is saved as ``RUN_DIR/data_summary.json``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from finetune.cleaning import Deduper, Record, clean_rows
from finetune.finetune_config import DataSection
from finetune.sources import DataError, read_source
from kovr.prompt import PromptTemplate

IGNORE = -100  # label of tokens that carry no loss (prompt, padding)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    source: str
    key: int  # position in the cleaned data; identifies the example in logs and tests

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass
class SourceSummary:
    source: str
    weight: float
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    first_dropped_at: dict[str, str] = field(default_factory=dict)
    heldout: int = 0
    train_unique: int = 0
    train_after_weight: int = 0
    missing: bool = False


@dataclass
class DataSummary:
    template: str
    max_seq_len: int
    sources: list[SourceSummary]
    train_examples: int = 0
    heldout_examples: int = 0
    train_tokens: int = 0
    train_loss_tokens: int = 0

    @property
    def dropped(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self.sources:
            total.update(s.dropped)
        return dict(total)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "dropped_total": self.dropped}

    def describe(self) -> str:
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "없음 none"
        return (
            f"데이터 data: train {self.train_examples} / held-out {self.heldout_examples} examples, "
            f"{self.train_tokens} train tokens; dropped: {drops}"
        )


@dataclass
class LoadedRecords:
    by_source: list[tuple[SourceSummary, list[Record]]]

    def texts(self, limit: int, template: PromptTemplate) -> list[str]:
        """Texts for training a tokenizer (tiny models): records as the model will see them."""
        out: list[str] = []
        for _, records in self.by_source:
            for r in records:
                if len(out) >= limit:
                    return out
                out.append(template.render(r.instruction, r.input) + r.output)
        return out


def load_records(cfg: DataSection) -> LoadedRecords:
    """Read and clean every source; raises DataError when a source has nothing usable."""
    deduper = Deduper() if cfg.dedupe else None
    out: list[tuple[SourceSummary, list[Record]]] = []
    for spec in cfg.sources:
        summary = SourceSummary(source=spec.label, weight=spec.weight)
        if spec.optional and spec.path is not None and not spec.path.is_file():
            summary.missing = True
            out.append((summary, []))
            continue
        rows = list(read_source(spec))
        drops: Counter[str] = Counter()
        records = clean_rows(rows, deduper, drops, summary.first_dropped_at)
        summary.read, summary.kept, summary.dropped = len(rows), len(records), dict(drops)
        if not records and drops.get("duplicate", 0) < len(rows):
            where = ", ".join(f"{k} first at {v}" for k, v in summary.first_dropped_at.items())
            raise DataError(
                f"{spec.label}: no usable records ({len(rows)} read; records need non-empty string "
                f"'instruction' and 'output'; {where or 'the source is empty'})"
            )
        out.append((summary, records))
    if not any(records for _, records in out):
        raise DataError("no training data: every configured source is missing or empty")
    return LoadedRecords(out)


def encode_records(
    records: list[Record], tokenizer: Any, template: PromptTemplate, first_key: int
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids + EOS) per record; tokenised apart so training matches serving."""
    prompts = [template.render(r.instruction, r.input) for r in records]
    responses = [r.output for r in records]
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(responses, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no EOS token; set one before training")
    return [(p, [*r, eos]) for p, r in zip(p_ids, r_ids, strict=True)]


def make_example(prompt: list[int], response: list[int], source: str, key: int) -> Example:
    return Example(prompt + response, [IGNORE] * len(prompt) + list(response), source, key)


@dataclass
class PreparedData:
    train: list[Example]
    heldout: list[Example]
    summary: DataSummary


def prepare_examples(
    loaded: LoadedRecords, cfg: DataSection, tokenizer: Any, template: PromptTemplate, seed: int
) -> PreparedData:
    summary = DataSummary(template.name, cfg.max_seq_len, [s for s, _ in loaded.by_source])
    pool: list[tuple[int, Example]] = []  # (source index, example)
    key = 0
    for index, (src, records) in enumerate(loaded.by_source):
        encoded = encode_records(records, tokenizer, template, key) if records else []
        for prompt, response in encoded:
            reason = _length_problem(prompt, response, cfg)
            if reason:
                src.dropped[reason] = src.dropped.get(reason, 0) + 1
                src.kept -= 1
            else:
                pool.append((index, make_example(prompt, response, src.source, key)))
            key += 1
    if not pool:
        raise DataError(
            f"no example fits data.max_seq_len={cfg.max_seq_len} tokens; raise it or check the data"
        )
    train_pool, heldout = _split(pool, cfg, seed, summary)
    train = _mix(train_pool, summary, seed)
    summary.train_examples, summary.heldout_examples = len(train), len(heldout)
    summary.train_tokens = sum(len(e) for e in train)
    summary.train_loss_tokens = sum(e.loss_tokens for e in train)
    return PreparedData(train, heldout, summary)


def _length_problem(prompt: list[int], response: list[int], cfg: DataSection) -> str | None:
    if len(prompt) + len(response) > cfg.max_seq_len:
        return "too_long"
    if len(response) - 1 < cfg.min_response_tokens:  # EOS does not count
        return "response_too_short"
    return None


def _split(
    pool: list[tuple[int, Example]], cfg: DataSection, seed: int, summary: DataSummary
) -> tuple[list[tuple[int, Example]], list[Example]]:
    """Held-out examples chosen by a seeded shuffle, taken before weighting (no leak by repetition)."""
    n = int(cfg.heldout) if cfg.heldout >= 1 else round(cfg.heldout * len(pool))
    n = min(n, cfg.heldout_max, len(pool) - 1)
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    held_idx = set(order[:n])
    heldout = [pool[i][1] for i in sorted(held_idx)]
    train = [item for i, item in enumerate(pool) if i not in held_idx]
    for i in held_idx:
        summary.sources[pool[i][0]].heldout += 1
    return train, heldout


def _mix(pool: list[tuple[int, Example]], summary: DataSummary, seed: int) -> list[Example]:
    """Weight w repeats a source floor(w) times plus a seeded sample of the fraction left."""
    rng = random.Random(seed + 1)
    out: list[Example] = []
    for index, src in enumerate(summary.sources):
        examples = [e for i, e in pool if i == index]
        src.train_unique = len(examples)
        whole, frac = divmod(src.weight, 1.0)
        chosen = examples * int(whole) + rng.sample(examples, round(frac * len(examples)))
        src.train_after_weight = len(chosen)
        out.extend(chosen)
    if not out:
        raise DataError("the training split is empty after weighting; raise the source weights")
    return out
