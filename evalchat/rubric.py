"""The judge's prompts (Korean, G-Eval style) and the strict reading of its replies.

KULLM scored answers with GPT-4 on six criteria taken from G-Eval's dialogue rubric, on their
own scales: understandability 0-1, naturalness 1-3, context maintenance 1-3, interestingness 1-3,
use of instructions 0-1, overall quality 1-5. Each prompt ends with its output format, so the
last thing a judge reads is what to write. A reply counts only if it is one JSON object with every
key in range (a ```json fence around it is tolerated); anything else is a format failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from evalchat.prompts import Item

RUBRIC_VERSION = "kullm-geval-ko-1"  # part of every judge cache key: a new rubric re-judges


@dataclass(frozen=True)
class Criterion:
    key: str
    korean: str
    english: str
    low: int
    high: int
    question: str


CRITERIA: tuple[Criterion, ...] = (
    Criterion("understandability", "이해 가능성", "understandability", 0, 1,
              "답변을 읽고 뜻을 이해할 수 있으면 1, 알아볼 수 없거나 의미가 통하지 않으면 0"),
    Criterion("naturalness", "자연스러움", "naturalness", 1, 3,
              "사람이 쓴 것처럼 자연스럽고 문법에 맞는 한국어인가 (1: 어색함, 3: 매우 자연스러움)"),
    Criterion("context", "맥락 유지", "context maintenance", 1, 3,
              "질문과 입력의 내용을 이어받아 그에 맞게 답하는가 (1: 엉뚱함, 3: 잘 이어감)"),
    Criterion("interestingness", "흥미로움", "interestingness", 1, 3,
              "답변이 지루하지 않고 유익하거나 흥미로운가 (1: 밋밋함, 3: 흥미로움)"),
    Criterion("instructions", "지시 따르기", "use of instructions", 0, 1,
              "질문이 요구한 작업(형식, 개수, 언어, 길이)을 수행했으면 1, 아니면 0"),
    Criterion("overall", "전반적인 품질", "overall quality", 1, 5,
              "위 기준을 모두 고려한 답변의 전체적인 품질 (1: 매우 나쁨, 5: 매우 좋음)"),
)
CRITERION_KEYS = tuple(c.key for c in CRITERIA)
VERDICTS = ("A", "B", "tie")
RETRY_NOTE = "\n\n주의: 앞선 응답은 형식에 맞지 않았습니다. 설명 없이 JSON 객체 하나만 출력하세요."
_ALLOWED_EXTRA = {"reason"}


def _question_block(item: Item) -> str:
    parts = [f"[질문]\n{item.instruction}"]
    if item.input:
        parts.append(f"[입력]\n{item.input}")
    if item.reference:
        parts.append(f"[참고 답변]\n{item.reference}")
    return "\n\n".join(parts)


def absolute_prompt(item: Item, answer: str) -> str:
    criteria = "\n".join(f"{i}. {c.korean} ({c.key}, {c.low}-{c.high}점): {c.question}"
                         for i, c in enumerate(CRITERIA, start=1))
    keys = ", ".join(f'"{c.key}": {c.low}~{c.high} 사이 정수' for c in CRITERIA)
    return (
        "당신은 한국어 AI 어시스턴트의 답변을 평가하는 심사위원입니다. 아래 [질문]에 대한 [답변]을 읽고 "
        "여섯 가지 기준에 따라 점수를 매기세요.\n\n"
        f"평가 기준:\n{criteria}\n\n"
        "평가 단계:\n1. 질문(과 입력)이 무엇을 요구하는지 파악합니다.\n"
        "2. 답변을 읽고 기준을 하나씩 검토합니다. 참고 답변이 있으면 참고만 하고, 표현이 달라도 감점하지 마세요.\n"
        "3. 기준마다 정해진 범위의 정수 점수를 줍니다.\n\n"
        f"{_question_block(item)}\n\n[답변]\n{answer or '(빈 답변)'}\n\n"
        f"출력 형식: 설명 없이 JSON 객체 하나만 출력하세요. 키: {keys}."
    )


def pairwise_prompt(item: Item, first: str, second: str) -> str:
    return (
        "당신은 한국어 AI 어시스턴트 두 개의 답변을 비교하는 심사위원입니다. 아래 [질문]에 대한 "
        "[답변 A]와 [답변 B] 중 어느 쪽이 더 좋은지 판단하세요.\n\n"
        "기준: 이해 가능성, 자연스러움, 맥락 유지, 흥미로움, 지시 따르기, 전반적인 품질. "
        "답변의 순서나 길이에 휘둘리지 말고, 둘이 비슷하면 무승부(tie)로 판단하세요.\n\n"
        f"{_question_block(item)}\n\n[답변 A]\n{first or '(빈 답변)'}\n\n[답변 B]\n{second or '(빈 답변)'}\n\n"
        '출력 형식: 설명 없이 JSON 객체 하나만 출력하세요. 키: "winner": "A", "B", "tie" 중 하나.'
    )


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):  # json.loads would silently keep the last one
        raise _DuplicateKey
    return dict(pairs)


def _json_object(reply: str) -> dict[str, Any] | None:
    text = reply.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3].removeprefix("json").strip()
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except (json.JSONDecodeError, _DuplicateKey):
        return None
    return value if isinstance(value, dict) else None


def parse_scores(reply: str) -> dict[str, int] | None:
    """Six integer scores in range, or None (missing key, wrong type, out of range, not JSON)."""
    data = _json_object(reply)
    if data is None or set(data) - set(CRITERION_KEYS) - _ALLOWED_EXTRA:
        return None
    scores: dict[str, int] = {}
    for c in CRITERIA:
        value = data.get(c.key)
        if isinstance(value, bool) or not isinstance(value, int) or not c.low <= value <= c.high:
            return None
        scores[c.key] = value
    return scores


def parse_verdict(reply: str) -> str | None:
    """"A", "B" or "tie", or None."""
    data = _json_object(reply)
    if data is None or set(data) - {"winner"} - _ALLOWED_EXTRA:
        return None
    winner = data.get("winner")
    if isinstance(winner, str) and winner.strip().lower() == "tie":
        return "tie"
    return winner.strip().upper() if isinstance(winner, str) and winner.strip().upper() in ("A", "B") else None
