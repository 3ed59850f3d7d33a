"""The fixed Korean prompts a run answers at each evaluation (written to RUN_DIR/eval/)."""

from __future__ import annotations

# Used only if the packaged test prompts (kovr/data/test_prompts.jsonl) cannot be read.
FALLBACK_EVAL_PROMPTS: tuple[str, ...] = (
    "건강을 유지하기 위한 세 가지 팁을 알려주세요.",
    "한국의 수도는 어디인가요?",
    "인공지능이 무엇인지 초등학생에게 설명해 주세요.",
    "비 오는 날에 어울리는 점심 메뉴를 추천해 주세요.",
    "다음 문장을 영어로 번역하세요: 오늘은 날씨가 정말 좋네요.",
)


def default_eval_prompts() -> list[dict[str, str]]:
    """KoVR's fixed evaluation prompts ({instruction, input, reference}), never part of the training set."""
    try:
        from kovr.data import load_test_prompts

        return [{"instruction": p["instruction"], "input": p["input"], "reference": p["reference"]}
                for p in load_test_prompts()]
    except (ImportError, ValueError, OSError):
        return [{"instruction": p, "input": ""} for p in FALLBACK_EVAL_PROMPTS]
