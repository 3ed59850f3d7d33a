"""Particles follow the final consonant of the word before them."""

from __future__ import annotations

import pytest

from research.vr.korean import Noun, has_final_consonant, particle


@pytest.mark.parametrize(
    ("word", "pair", "expected"),
    [
        ("원", "이/가", "원이"), ("네모", "이/가", "네모가"), ("별", "은/는", "별은"), ("세모", "은/는", "세모는"),
        ("빨간 원", "을/를", "빨간 원을"), ("파란 세모", "을/를", "파란 세모를"),
        ("초록색 별", "와/과", "초록색 별과"), ("노란 네모", "와/과", "노란 네모와"),
        ("3", "이/가", "3이"), ("2", "와/과", "2와"), ("사각형", "은/는", "사각형은"),
    ],
)
def test_particle_by_final_consonant(word: str, pair: str, expected: str) -> None:
    assert particle(word, pair) == expected


def test_noun_forms_for_templates() -> None:
    noun = Noun("보라색 원")
    written = "{a.ig} 있나요? {a.wa} {b.eun}".format(a=noun, b=Noun("빨간 네모"))
    assert written == "보라색 원이 있나요? 보라색 원과 빨간 네모는"
    assert f"{noun.eul}" == "보라색 원을"


def test_unreadable_words_and_pairs_are_errors() -> None:
    assert has_final_consonant("각") and not has_final_consonant("가")
    with pytest.raises(ValueError, match="cannot choose"):
        particle("CLIP", "이/가")
    with pytest.raises(ValueError, match="unknown particle pair"):
        particle("원", "로/으로")
