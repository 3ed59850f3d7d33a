from __future__ import annotations

from pathlib import Path

import pytest

from kovr.prompt import KULLM, Turn, load_template


def test_single_turn_matches_kullm_template() -> None:
    prompt = KULLM.render("김치찌개 끓이는 법을 알려줘")
    assert prompt.startswith("아래는 작업을 설명하는 명령어입니다.")
    assert prompt.endswith("### 명령어:\n김치찌개 끓이는 법을 알려줘\n\n### 응답:\n")
    with_input = KULLM.render("요약해 줘", "긴 글")
    assert "### 입력:\n긴 글\n\n### 응답:\n" in with_input


def test_chat_repeats_blocks_and_leaves_last_open() -> None:
    prompt = KULLM.render_chat([Turn("안녕", "안녕하세요!"), Turn("이름이 뭐야?")])
    assert prompt.count("아래는 작업을") == 1
    assert prompt.count("### 명령어:") == 2
    assert prompt.endswith("### 명령어:\n이름이 뭐야?\n\n### 응답:\n")
    assert KULLM.response_of(prompt + "저는 KoVR입니다.") == "저는 KoVR입니다."


def test_chat_requires_open_last_turn() -> None:
    with pytest.raises(ValueError):
        KULLM.render_chat([Turn("안녕", "네")])


def test_template_round_trips_through_folder(tmp_path: Path) -> None:
    assert load_template(tmp_path) == KULLM
    KULLM.save(tmp_path)
    assert load_template(tmp_path) == KULLM
