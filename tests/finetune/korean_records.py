"""A small Korean instruction set written for these tests (the repo's own set may not exist yet)."""

from __future__ import annotations

# Short facts the memorisation test expects a tiny model to reproduce word for word.
FACTS: list[dict[str, str]] = [
    {"instruction": "한국의 수도는 어디인가요?", "output": "한국의 수도는 서울입니다."},
    {"instruction": "김치는 무엇으로 만드나요?", "output": "김치는 배추와 고춧가루로 만듭니다."},
    {"instruction": "하늘은 왜 파란가요?", "output": "햇빛이 공기에 흩어지기 때문입니다."},
    {"instruction": "세종대왕은 무엇을 만들었나요?", "output": "세종대왕은 한글을 만들었습니다."},
    {"instruction": "물은 몇 도에서 끓나요?", "output": "물은 섭씨 백 도에서 끓습니다."},
]

GENERAL: list[dict[str, str]] = [
    {"instruction": "건강을 유지하는 방법을 알려주세요.", "input": "", "output": "규칙적으로 운동하고 충분히 자며 채소를 많이 먹는 것이 좋습니다."},
    {"instruction": "다음 문장을 존댓말로 바꾸세요.", "input": "밥 먹었어?", "output": "식사하셨어요?"},
    {"instruction": "봄에 피는 꽃을 두 가지 말해 주세요.", "input": "", "output": "개나리와 진달래가 봄에 핍니다."},
    {"instruction": "다음 단어의 반대말을 쓰세요.", "input": "높다", "output": "낮다"},
    {"instruction": "부산은 어떤 도시인가요?", "input": "", "output": "부산은 한국 남동쪽의 항구 도시로 바다와 해운대 해수욕장이 유명합니다."},
    {"instruction": "다음 숫자를 더하세요.", "input": "3과 4", "output": "3과 4를 더하면 7입니다."},
    {"instruction": "비빔밥에 들어가는 재료를 알려주세요.", "input": "", "output": "밥, 여러 가지 나물, 고추장, 달걀이 들어갑니다."},
    {"instruction": "한글날은 언제인가요?", "input": "", "output": "한글날은 10월 9일입니다."},
    {"instruction": "다음 문장을 요약하세요.", "input": "오늘은 비가 많이 와서 우산을 챙겨 나갔지만 바람 때문에 옷이 다 젖었다.", "output": "비바람 때문에 우산을 써도 옷이 젖었다."},
    {"instruction": "추석에는 무엇을 하나요?", "input": "", "output": "가족이 모여 차례를 지내고 송편을 먹습니다."},
    {"instruction": "고양이와 개의 차이를 한 문장으로 말해 주세요.", "input": "", "output": "고양이는 독립적인 편이고 개는 사람을 잘 따르는 편입니다."},
    {"instruction": "다음 영어를 한국어로 번역하세요.", "input": "Good morning", "output": "좋은 아침입니다."},
    {"instruction": "잠이 오지 않을 때 어떻게 하면 좋을까요?", "input": "", "output": "따뜻한 우유를 마시고 휴대전화를 멀리 두면 도움이 됩니다."},
    {"instruction": "가장 큰 행성은 무엇인가요?", "input": "", "output": "태양계에서 가장 큰 행성은 목성입니다."},
    {"instruction": "다음 문장의 맞춤법을 고치세요.", "input": "어의가 없네요.", "output": "어이가 없네요."},
    {"instruction": "제주도의 특산물을 알려주세요.", "input": "", "output": "제주도는 감귤과 흑돼지가 유명합니다."},
    {"instruction": "물을 아끼는 방법을 알려주세요.", "input": "", "output": "양치할 때 컵을 쓰고 샤워 시간을 줄이면 물을 아낄 수 있습니다."},
    {"instruction": "다음 단어로 짧은 문장을 만드세요.", "input": "도서관", "output": "나는 주말마다 도서관에서 책을 읽는다."},
    {"instruction": "태극기의 가운데 무늬는 무엇인가요?", "input": "", "output": "가운데에는 빨강과 파랑의 태극 무늬가 있습니다."},
]


def all_records() -> list[dict[str, str]]:
    return FACTS + GENERAL
