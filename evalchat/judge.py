"""The judge: any OpenAI-compatible endpoint, asked at temperature 0, read strictly, cached.

Each question gets one retry (the same prompt with a note on the format); after two replies that
do not parse, the item is *unjudged*: it counts in no mean, and no score is ever guessed. Every
prompt and raw reply is kept in ``DIR/judge/absolute.jsonl`` and ``DIR/judge/pairwise.jsonl``,
which are also the cache (per judge, rubric version and answer): a rerun asks nothing twice.
A transport error is not cached, so the next run asks again.

Pairwise comparisons are asked in both orders; the pair's outcome is a win only when both orders
agree, otherwise a tie, which cancels a judge's preference for the first (or second) position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from evalchat.prompts import Item
from evalchat.rubric import (
    RETRY_NOTE,
    RUBRIC_VERSION,
    absolute_prompt,
    pairwise_prompt,
    parse_scores,
    parse_verdict,
)
from evalchat.store import JsonlStore, cache_key
from evalchat.targets import OpenAIChat, TargetError

ATTEMPTS = 2  # the first ask and one retry


@dataclass(frozen=True)
class JudgeSpec:
    url: str
    model: str | None = None
    key_env: str | None = None

    @property
    def identity(self) -> str:
        return f"{self.url.rstrip('/')};model={self.model or ''}"


class Judge:
    def __init__(self, spec: JudgeSpec, api_key: str | None = None, max_tokens: int = 256) -> None:
        self.spec = spec
        self.max_tokens = max_tokens
        self.chat = OpenAIChat(spec.url.rstrip("/"), spec.model, api_key)

    def ask(self, prompt: str, parse: Callable[[str], Any]) -> dict[str, Any]:
        """{"status": "judged" | "unjudged" | "error", "value", "attempts": [{prompt, reply | error}]}."""
        attempts: list[dict[str, str]] = []
        for attempt in range(ATTEMPTS):
            text = prompt if attempt == 0 else prompt + RETRY_NOTE
            try:
                reply = self.chat.chat(text, self.max_tokens, 0.0)
            except (TargetError, httpx.HTTPError) as exc:
                attempts.append({"prompt": text, "error": f"{type(exc).__name__}: {exc}"[:500]})
                return {"status": "error", "value": None, "attempts": attempts}
            attempts.append({"prompt": text, "reply": reply})
            value = parse(reply)
            if value is not None:
                return {"status": "judged", "value": value, "attempts": attempts}
        return {"status": "unjudged", "value": None, "attempts": attempts}

    def close(self) -> None:
        self.chat.close()


def _cached_ask(judge: Judge, store: JsonlStore, key: str, prompt: str, parse: Callable[[str], Any],
                extra: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(record, asked): the cached record, or a new one (stored unless the judge was unreachable)."""
    record = store.get(key)
    if record is not None:
        return record, False
    record = {"key": key, "judge": judge.spec.identity, "rubric": RUBRIC_VERSION, **extra, **judge.ask(prompt, parse)}
    if record["status"] != "error":
        store.put(record)
    return record, True


def judge_absolute(judge: Judge, store: JsonlStore, item: Item, answer: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    key = cache_key("absolute", judge.spec.identity, RUBRIC_VERSION, answer["key"], answer["answer"])
    extra = {"target": answer["target"], "item_id": item.id}
    return _cached_ask(judge, store, key, absolute_prompt(item, answer["answer"]), parse_scores, extra)


def combine_orders(first_order: str | None, second_order: str | None) -> str | None:
    """Outcome for (x, y) from the verdict with x shown as A and the one with y shown as A.

    "x" or "y" when both orders pick the same answer; "tie" otherwise; None if either is missing.
    """
    if first_order is None or second_order is None:
        return None
    x_first = {"A": "x", "B": "y", "tie": "tie"}[first_order]
    x_second = {"A": "y", "B": "x", "tie": "tie"}[second_order]
    return x_first if x_first == x_second else "tie"


def judge_pair(
    judge: Judge, store: JsonlStore, item: Item, x: dict[str, Any], y: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Both orders of one comparison and the combined outcome ("x", "y", "tie" or None); asks made."""
    orders, asked = [], 0
    for first, second in ((x, y), (y, x)):
        key = cache_key("pairwise", judge.spec.identity, RUBRIC_VERSION, first["key"], first["answer"],
                        second["key"], second["answer"])
        extra = {"item_id": item.id, "first": first["target"], "second": second["target"]}
        record, new = _cached_ask(judge, store, key, pairwise_prompt(item, first["answer"], second["answer"]),
                                  parse_verdict, extra)
        orders.append(record)
        asked += new
    outcome = combine_orders(orders[0]["value"], orders[1]["value"])
    return {"item_id": item.id, "x": x["target"], "y": y["target"], "outcome": outcome,
            "verdicts": [o["value"] for o in orders]}, asked
