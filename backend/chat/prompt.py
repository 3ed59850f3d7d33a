"""Build the model prompt from a conversation, trimmed from the oldest turns to fit the model.

Turns are never cut in the middle: whole exchanges are dropped, oldest first, until the prompt
fits. Images reach the model as TGI markdown data URIs; only the newest user turn carries its
images (older ones become a short placeholder) because every image spends a fixed number of the
model's few input positions. Token counts come from the served model's own tokenizer (/tokenize),
with the image markdown replaced by the prefix length the model server reports.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from backend.core.errors import AppError
from kovr.prompt import PromptTemplate, Turn

IMAGE_PLACEHOLDER = "[이미지]"
_IMAGE_MARKDOWN = re.compile(r"!\[[^\]]*\]\(data:[^)]*\)")
# Any Markdown image opening in typed text (a superset of what model_server parses as an image:
# it also allows a line break in the alt text). Only attached images may become markers.
_TYPED_IMAGE = re.compile(r"!\[(?=[^\]]*\]\()")

TokenCounter = Callable[[str], Awaitable[int]]


@dataclass(frozen=True)
class Exchange:
    """One earlier user message and the answer it got (empty if that answer failed)."""

    user: str
    assistant: str
    had_images: bool = False


@dataclass(frozen=True)
class PromptPlan:
    text: str
    input_tokens: int
    kept_exchanges: int  # how many earlier exchanges made it into the prompt
    dropped_exchanges: int
    max_new_tokens: int


@dataclass(frozen=True)
class ModelLimits:
    max_input_tokens: int
    max_total_tokens: int
    image_prefix_tokens: int = 0


def image_markdown(data_uris: list[str]) -> str:
    return "".join(f"![]({uri})\n" for uri in data_uris)


def neutralise_images(text: str) -> str:
    """Typed `![alt](url)` stays text: `!\\[alt](url)` (Markdown's own escape) is no image marker,
    so a user, an earlier answer or a system text can never inject an image into the prompt."""
    return _TYPED_IMAGE.sub(r"!\\[", text)


def render(template: PromptTemplate, history: list[Exchange], question: str, images: list[str],
           answer_prefix: str = "") -> str:
    """The prompt; with `answer_prefix` (continue) it ends inside the answer, so the model goes on
    from the saved text instead of starting a new answer."""
    turns = [Turn(user=neutralise_images(_with_placeholder(h)), assistant=neutralise_images(h.assistant))
             for h in history]
    turns.append(Turn(user=image_markdown(images) + neutralise_images(question)))
    return template.render_chat(turns) + neutralise_images(answer_prefix)


async def build_prompt(
    *,
    template: PromptTemplate,
    history: list[Exchange],
    question: str,
    images: list[str],
    limits: ModelLimits,
    max_new_tokens: int,
    count: TokenCounter,
    answer_prefix: str = "",
) -> PromptPlan:
    """The longest suffix of the history that fits: all of it if it does, else found with a binary
    search over /tokenize."""

    async def size(keep: int) -> tuple[str, int]:
        text = render(template, history[len(history) - keep:] if keep else [], question, images, answer_prefix)
        return text, await _count_with_images(text, count, limits.image_prefix_tokens)

    budget = min(limits.max_input_tokens, limits.max_total_tokens - max_new_tokens)
    if history:  # the usual case, a conversation that still fits whole: one /tokenize call, not a search
        whole = await size(len(history))
        if whole[1] <= budget:
            return PromptPlan(whole[0], whole[1], len(history), 0, max_new_tokens)
    text, tokens = await size(0)
    if tokens > limits.max_input_tokens:
        raise AppError("prompt_too_long", f"{tokens} tokens > {limits.max_input_tokens}")
    if tokens > budget:
        # The question fits the model but leaves less room to answer: shorten the answer instead.
        return PromptPlan(text, tokens, 0, len(history), limits.max_total_tokens - tokens)
    low, high = 0, len(history)  # invariant: keeping `low` fits
    best = (text, tokens)
    while low < high:
        mid = (low + high + 1) // 2
        candidate = await size(mid)
        if candidate[1] <= budget:
            low, best = mid, candidate
        else:
            high = mid - 1
    return PromptPlan(best[0], best[1], low, len(history) - low, max_new_tokens)


async def _count_with_images(text: str, count: TokenCounter, prefix_tokens: int) -> int:
    images = len(_IMAGE_MARKDOWN.findall(text))
    return await count(_IMAGE_MARKDOWN.sub("", text)) + images * prefix_tokens


def _with_placeholder(exchange: Exchange) -> str:
    return f"{IMAGE_PLACEHOLDER}\n{exchange.user}" if exchange.had_images else exchange.user
