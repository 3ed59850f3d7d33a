"""Evaluation during and after training: held-out loss / perplexity and answers to fixed Korean prompts."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune.batching import Batch
from finetune.objective import loss_sum
from kovr.prompt import PromptTemplate

EVAL_DIR = "eval"


def heldout_loss(model: Any, batches: Sequence[Batch], device: Any, autocast: Any | None = None) -> dict[str, float]:
    import torch

    if not batches:
        return {}
    total, items = 0.0, 0
    ctx = torch.autocast(device.type, dtype=autocast) if autocast is not None else _null()
    with torch.no_grad(), ctx:
        for batch in batches:
            loss, n = loss_sum(model, batch.to(device))
            total += float(loss)
            items += n
    mean = total / max(items, 1)
    return {"heldout_loss": round(mean, 6), "perplexity": round(math.exp(min(mean, 50.0)), 4)}


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def generate_answer(
    model: Any, tokenizer: Any, template: PromptTemplate, instruction: str, max_new_tokens: int, device: Any,
    input: str = "",
) -> str:
    """Greedy answer to one instruction, cut at the template's stop strings."""
    import torch

    ids = tokenizer(template.render(instruction, input), add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids.to(device)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,
        )
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    for stop in template.stop:
        text = text.split(stop)[0]
    return text.strip()


def answer_prompts(
    model: Any, tokenizer: Any, template: PromptTemplate, prompts: Sequence[Any], max_new_tokens: int, device: Any
) -> list[dict[str, str]]:
    """Answers to EvalPrompt-like objects (``.instruction``, ``.input``)."""
    return [
        {"instruction": p.instruction, "input": p.input,
         "answer": generate_answer(model, tokenizer, template, p.instruction, max_new_tokens, device, p.input)}
        for p in prompts
    ]


def with_chat_metrics(
    answers: list[dict[str, str]], prompts: Sequence[Any]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each answer with its judge-free measures, and their summary as ``chat_*`` eval figures.

    The same measures as `kovr eval-chat` (kovr.chat_metrics), so a run's curve and a later
    eval-chat report read alike; chrF only for prompts that carry a ``reference``.
    """
    from kovr.chat_metrics import answer_metrics, summarize

    rows = [answer_metrics(a["answer"], getattr(p, "reference", "") or None)
            for a, p in zip(answers, prompts, strict=False)]
    scored = [{**a, "metrics": row} for a, row in zip(answers, rows, strict=False)]
    return scored, {f"chat_{key}": value for key, value in summarize(rows).items()}


def write_answers(run_dir: Path, step: int | str, answers: list[dict[str, Any]]) -> Path:
    """RUN_DIR/eval/answers-step-00000100.jsonl (or answers-final.jsonl)."""
    folder = run_dir / EVAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"answers-step-{step:08d}.jsonl" if isinstance(step, int) else f"answers-{step}.jsonl"
    path = folder / name
    path.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    return path
