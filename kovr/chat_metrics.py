"""Judge-free measures of one chat answer (pure Python: no torch, no model, no network).

Shared by `kovr eval-chat` (every answer of every target) and `kovr finetune` (its eval prompts at
each eval step), so both read the same figures:

- ``hangul_share``: Hangul among letters (a Korean model drifting into English or jamo soup shows here);
- ``distinct_2``: distinct word bigrams / word bigrams (low: the answer repeats itself);
- ``longest_repeat``: the longest word n-gram that occurs twice or more (a degenerate loop is long);
- ``chars`` / ``words``: length;
- ``empty`` / ``refused``: no answer, or a stock refusal;
- ``broken_chars``: U+FFFD, a byte sequence cut in the middle of a Hangul syllable;
- ``template_leak``: the prompt template's own markers (``### 명령어`` …) inside the answer;
- ``chrf``: character n-gram F-score (chrF, beta 2, orders 1-6, on 0-100) against a reference.

Reuse::

    from kovr.chat_metrics import answer_metrics, summarize

    rows = [answer_metrics(a, reference=r) for a, r in pairs]
    summarize(rows)   # {"hangul_share": 0.93, "empty_rate": 0.0, "chrf": 31.2, ...}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

# Markers of KoVR's (KULLM's) template; a model that leaks them is continuing the prompt, not answering.
TEMPLATE_MARKERS: tuple[str, ...] = (
    "### 명령어", "### 입력", "### 응답", "아래는 작업을 설명하는", "### Instruction", "### Response",
)
# Stock refusals (Korean first). A heuristic: it flags answers for a look, it does not judge them.
REFUSALS: tuple[str, ...] = (
    "죄송하지만", "답변할 수 없", "답변드릴 수 없", "도와드릴 수 없", "대답할 수 없", "할 수 없습니다",
    "AI 언어 모델로서", "I'm sorry", "I cannot", "I can't", "As an AI",
)
CHRF_ORDER = 6
CHRF_BETA = 2.0


def _is_hangul(ch: str) -> bool:
    code = ord(ch)
    return (0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F
            or 0xA960 <= code <= 0xA97F or 0xD7B0 <= code <= 0xD7FF)


def hangul_share(text: str) -> float | None:
    """Hangul characters among letters; None without letters (digits and punctuation do not count)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return None
    return sum(_is_hangul(ch) for ch in letters) / len(letters)


def _bigrams(words: Sequence[str]) -> list[tuple[str, str]]:
    return list(pairwise(words))


def distinct_2(text: str) -> float | None:
    """Distinct word (eojeol) bigrams over all bigrams; None under two words."""
    bigrams = _bigrams(text.split())
    if not bigrams:
        return None
    return len(set(bigrams)) / len(bigrams)


def longest_repeat(text: str) -> int:
    """Length in words of the longest n-gram that occurs at least twice (0: no word repeats).

    If an n-gram repeats, so do its (n-1)-gram prefixes, so the search grows n until none repeats.
    """
    words = text.split()
    n = 0
    while n < len(words) - 1:
        size = n + 1
        seen: set[tuple[str, ...]] = set()
        found = False
        for i in range(len(words) - size + 1):
            gram = tuple(words[i:i + size])
            if gram in seen:
                found = True
                break
            seen.add(gram)
        if not found:
            break
        n = size
    return n


def is_refusal(text: str) -> bool:
    head = text[:200]
    return any(phrase.lower() in head.lower() for phrase in REFUSALS)


def template_leak(text: str, markers: Iterable[str] = TEMPLATE_MARKERS) -> bool:
    return any(marker in text for marker in markers)


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(hypothesis: str, reference: str, order: int = CHRF_ORDER, beta: float = CHRF_BETA) -> float:
    """chrF (Popović 2015) on 0-100: character n-gram precision and recall averaged over orders 1..order,
    whitespace removed as in sacrebleu's default, combined with recall weighted ``beta`` times."""
    hyp = "".join(hypothesis.split())
    ref = "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, order + 1):
        h, r = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not h or not r:
            continue  # an order longer than either text says nothing either way
        overlap = sum((h & r).values())
        precisions.append(overlap / sum(h.values()))
        recalls.append(overlap / sum(r.values()))
    if not precisions:
        return 0.0
    p, rc = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and rc == 0:
        return 0.0
    b2 = beta * beta
    return 100.0 * (1 + b2) * p * rc / (b2 * p + rc)


def answer_metrics(
    answer: str, reference: str | None = None, markers: Iterable[str] = TEMPLATE_MARKERS
) -> dict[str, Any]:
    """Every judge-free measure of one answer (``chrf`` only with a non-empty reference)."""
    stripped = answer.strip()
    share = hangul_share(stripped)
    distinct = distinct_2(stripped)
    row: dict[str, Any] = {
        "chars": len(stripped),
        "words": len(stripped.split()),
        "hangul_share": None if share is None else round(share, 4),
        "distinct_2": None if distinct is None else round(distinct, 4),
        "longest_repeat": longest_repeat(stripped),
        "empty": not stripped,
        "refused": is_refusal(stripped),
        "broken_chars": stripped.count("\ufffd"),
        "template_leak": template_leak(stripped, markers),
    }
    if reference and reference.strip():
        row["chrf"] = round(chrf(stripped, reference), 2)
    return row


# name in the summary -> (field of answer_metrics, how to aggregate)
SUMMARY_FIELDS: dict[str, tuple[str, str]] = {
    "hangul_share": ("hangul_share", "mean"),
    "distinct_2": ("distinct_2", "mean"),
    "longest_repeat": ("longest_repeat", "mean"),
    "chars": ("chars", "mean"),
    "empty_rate": ("empty", "rate"),
    "refused_rate": ("refused", "rate"),
    "broken_rate": ("broken_chars", "rate"),
    "template_leak_rate": ("template_leak", "rate"),
    "chrf": ("chrf", "mean"),
}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means and rates over answers; a measure no answer has (e.g. chrF without references) is left out."""
    out: dict[str, float] = {}
    for name, (key, how) in SUMMARY_FIELDS.items():
        values = [row[key] for row in rows if row.get(key) is not None]
        if not values:
            continue
        if how == "rate":
            out[name] = round(sum(1 for v in values if v) / len(values), 4)
        else:
            out[name] = round(sum(float(v) for v in values) / len(values), 4)
    return out
