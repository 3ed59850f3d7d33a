"""Image-caption and image-question-answer records (JSONL), text-only instructions, and tokenising.

Accepted record shapes (one JSON object per line; bad lines are errors naming file and line):

- caption: ``{"image", "caption"}`` (or ``"output"``);
- VQA: ``{"image", "question" | "instruction", "answer" | "output"}`` with optional ``"input"``,
  ``"type"``, ``"heldout_template"``; or LLaVA/KoLLaVA ``{"image", "conversations": [...]}`` (first turn);
- ``image``: a path relative to the JSONL file, an absolute path, or ``data:image/...;base64,...``.

Images go before the instruction as TGI markdown, which is how model_server receives them, and
the prompt is tokenised with :func:`model_server.align.tokenize_with_images` (in batches), the
function the server uses, so an image sits at the same place in training and serving.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.cleaning import Deduper, clean_rows
from finetune.sources import DataError, read_source
from finetune.vr.config import VRDataSection
from kovr.modeling.image_prompt import token_ids, tokenize_many_with_images
from kovr.prompt import PromptTemplate

IGNORE = -100
CAPTION_INSTRUCTION = "그림을 설명해 주세요."


@dataclass(frozen=True)
class VRRecord:
    id: str
    image: str | None  # absolute path or data URI; None for text-only instructions
    instruction: str
    output: str
    input: str = ""
    type: str = "text"
    heldout_template: bool = False
    template: str = ""  # the synthetic set's template id (rel_1, ...), so scores can be split by form


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    image: str | None  # the record's image when the prefix is used
    image_pos: int  # token index the prefix goes before

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def read_jsonl(path: Path, max_records: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    rows: list[tuple[str, dict[str, Any]]] = []
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if max_records is not None and len(rows) >= max_records:
                break
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{path}:{lineno}: not a JSON object on one UTF-8 line ({exc})") from None
            if not isinstance(data, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}")
            rows.append((f"{path}:{lineno}", data))
    return rows


def _image_ref(data: dict[str, Any], where: str, base: Path) -> str:
    image = data.get("image")
    if not isinstance(image, str) or not image:
        raise DataError(f"{where}: missing 'image' (a path or a data:image/...;base64 URI)")
    if image.startswith("data:"):
        return image
    path = Path(image) if Path(image).is_absolute() else base / image
    if not path.is_file():
        raise DataError(f"{where}: image file not found: {path}")
    return str(path)


def _text(data: dict[str, Any], keys: tuple[str, ...], where: str) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise DataError(f"{where}: needs a non-empty string in one of {', '.join(keys)}")


def load_captions(path: Path, max_records: int | None = None) -> list[VRRecord]:
    out = []
    for where, data in read_jsonl(path, max_records):
        caption = _text(data, ("caption", "output"), where)
        out.append(VRRecord(str(data.get("id", where)), _image_ref(data, where, path.parent),
                            CAPTION_INSTRUCTION, caption, type="caption"))
    return out


def load_vqa(path: Path, max_records: int | None = None) -> list[VRRecord]:
    out = []
    for where, data in read_jsonl(path, max_records):
        if isinstance(data.get("conversations"), list):
            question, answer = _first_turn(data["conversations"], where)
        else:
            question = _text(data, ("question", "instruction"), where)
            answer = _text(data, ("answer", "output"), where)
        out.append(VRRecord(
            str(data.get("id", where)), _image_ref(data, where, path.parent), question, answer,
            input=str(data.get("input") or ""), type=str(data.get("type") or "vqa"),
            heldout_template=bool(data.get("heldout_template", False)), template=str(data.get("template") or ""),
        ))
    return out


def _first_turn(turns: list[Any], where: str) -> tuple[str, str]:
    human = next((t for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
    gpt = next((t for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
    if human is None or gpt is None:
        raise DataError(f"{where}: conversations need a 'human' and a 'gpt' turn")
    question = str(human.get("value", "")).replace("<image>", "").strip()
    answer = str(gpt.get("value", "")).strip()
    if not question or not answer:
        raise DataError(f"{where}: empty question or answer in conversations")
    return question, answer


def load_text_instructions(cfg: VRDataSection) -> tuple[list[VRRecord], dict[str, int]]:
    """Text-only instruction records (configured sources plus the repo's own Korean set)."""
    records: list[VRRecord] = []
    counts: Counter[str] = Counter()
    deduper = Deduper()
    for spec in cfg.text:
        if spec.optional and spec.path is not None and not spec.path.is_file():
            continue
        drops: Counter[str] = Counter()
        for r in clean_rows(list(read_source(spec)), deduper, drops, {}):
            records.append(VRRecord(r.where, None, r.instruction, r.output, input=r.input))
            counts[spec.label] += 1
    if cfg.include_demo_instructions:
        for item in _demo_instructions():
            records.append(VRRecord(f"demo:{counts['demo']}", None, item["instruction"], item["output"],
                                    input=item.get("input", "")))
            counts["demo"] += 1
    return records, dict(counts)


def _demo_instructions() -> list[dict[str, str]]:
    try:
        from kovr.data import load_demo_instructions  # the repo's own Korean set (issue 7)
    except ImportError:
        return []
    return [dict(r) for r in load_demo_instructions()]


def mix_text(image_records: list[VRRecord], text_records: list[VRRecord], ratio: float,
             seed: int) -> list[VRRecord]:
    """Image records plus ``ratio`` text-only records per image record (sampled with repetition if short)."""
    want = round(ratio * len(image_records))
    if want == 0 or not text_records:
        return list(image_records)
    rng = random.Random(seed)
    chosen = [text_records[i % len(text_records)] for i in range(want)]
    rng.shuffle(chosen)
    return list(image_records) + chosen


def instruction_text(record: VRRecord, image_uri: str | None) -> str:
    """The user's turn: the image (markdown) first, then the question, as the chat sends it."""
    return f"![]({image_uri})\n{record.instruction}" if image_uri else record.instruction


def encode_prompt(record: VRRecord, tokenizer: Any, template: PromptTemplate, use_image: bool) -> Encoded:
    """The prompt alone (no loss anywhere), for generation."""
    return encode_prompts([record], tokenizer, template, use_image)[0]


def encode_prompts(records: list[VRRecord], tokenizer: Any, template: PromptTemplate,
                   use_image: bool) -> list[Encoded]:
    """:func:`encode_prompt` of each record, tokenised in one batch."""
    with_image = [use_image and r.image is not None for r in records]
    # Training only needs the image's position; the server sees a real data URI in its place.
    texts = [template.render(instruction_text(r, "image" if w else None), r.input)
             for r, w in zip(records, with_image, strict=True)]
    return [Encoded(ids, [IGNORE] * len(ids), r.image if w else None, positions[0] if w else 0)
            for r, w, (ids, _, positions)
            in zip(records, with_image, tokenize_many_with_images(texts, tokenizer), strict=True)]


def encode(record: VRRecord, tokenizer: Any, template: PromptTemplate, use_image: bool,
           max_len: int, prefix_len: int) -> Encoded | None:
    """Prompt and answer token ids (loss on the answer + EOS); None when it does not fit."""
    return encode_many([record], tokenizer, template, use_image, max_len, prefix_len)[0]


ENCODE_CHUNK = 16384  # records tokenised per tokenizer batch: bounds its transient memory


def encode_many(records: list[VRRecord], tokenizer: Any, template: PromptTemplate, use_image: bool,
                max_len: int, prefix_len: int) -> list[Encoded | None]:
    """:func:`encode` of each record, tokenised in batches (a large set took minutes one by one)."""
    out: list[Encoded | None] = []
    for start in range(0, len(records), ENCODE_CHUNK):
        out.extend(_encode_batch(records[start:start + ENCODE_CHUNK], tokenizer, template, use_image,
                                 max_len, prefix_len))
    return out


def _encode_batch(records: list[VRRecord], tokenizer: Any, template: PromptTemplate, use_image: bool,
                  max_len: int, prefix_len: int) -> list[Encoded | None]:
    prompts = encode_prompts(records, tokenizer, template, use_image)
    answers = token_ids(tokenizer, [r.output for r in records])
    eos = [tokenizer.eos_token_id]  # an attribute lookup through the tokenizer's __getattr__ is slow
    return [_joined(prompt, answers[r.output] + eos, max_len, prefix_len)
            for r, prompt in zip(records, prompts, strict=True)]


def _joined(prompt: Encoded, answer: list[int], max_len: int, prefix_len: int) -> Encoded | None:
    if len(prompt.input_ids) + len(answer) + (prefix_len if prompt.image else 0) > max_len:
        return None
    return Encoded(prompt.input_ids + answer, prompt.labels + answer, prompt.image, prompt.image_pos)


def epoch_batches(items: list[Encoded], size: int, seed: int,
                  mode: str = "grouped") -> Callable[[int], list[list[Encoded]]]:
    """Micro-batches of one epoch, a pure function of (seed, epoch) for resume.

    ``grouped``: similar lengths share a batch (finetune's length grouping), so short image
    questions are not padded to the length of a long text-only instruction; ``padded``: a plain
    seeded shuffle.
    """
    from finetune.batching import plan_epoch

    lengths = [len(it.input_ids) for it in items]

    def batches(epoch: int) -> list[list[Encoded]]:
        plan = plan_epoch(lengths, mode=mode, micro_batch_size=size, max_seq_len=max(lengths), seed=seed,
                          epoch=epoch)
        full = [[items[row[0]] for row in batch] for batch in plan if len(batch) == size]
        return full or [[items[row[0]] for batch in plan for row in batch]]
    return batches
