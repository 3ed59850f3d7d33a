"""Korean particles chosen by the preceding word's final consonant (받침).

이/가, 은/는, 을/를, 와/과 follow the last Hangul syllable: with a final consonant the first form,
without one the second. Digits are read as Sino-Korean numbers (1 일, 2 이, ...) for the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
# Whether the Sino-Korean reading of each digit ends in a consonant (영 일 이 삼 사 오 육 칠 팔 구).
_DIGIT_FINAL = {"0": True, "1": True, "2": False, "3": True, "4": False, "5": False,
                "6": True, "7": True, "8": True, "9": False}
PAIRS: dict[str, tuple[str, str]] = {
    "이/가": ("이", "가"),
    "은/는": ("은", "는"),
    "을/를": ("을", "를"),
    "와/과": ("과", "와"),
}


def has_final_consonant(word: str) -> bool:
    """True when the word's last sound has a 받침; raises on words we cannot read."""
    stripped = word.rstrip(" .,!?)\"'")
    if not stripped:
        raise ValueError("empty word has no final sound")
    last = stripped[-1]
    if _HANGUL_FIRST <= ord(last) <= _HANGUL_LAST:
        return (ord(last) - _HANGUL_FIRST) % 28 != 0
    if last in _DIGIT_FINAL:
        return _DIGIT_FINAL[last]
    raise ValueError(f"cannot choose a particle after {word!r}")


def particle(word: str, pair: str) -> str:
    """``word`` followed by the right form of ``pair`` (e.g. ``particle("원", "이/가") == "원이"``)."""
    try:
        with_final, without_final = PAIRS[pair]
    except KeyError:
        raise ValueError(f"unknown particle pair {pair!r}; known: {', '.join(PAIRS)}") from None
    return word + (with_final if has_final_consonant(word) else without_final)


@dataclass(frozen=True)
class Noun:
    """A noun phrase with its particle forms, for ``str.format`` templates: ``"{a.ig} 있나요?"``."""

    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def ig(self) -> str:
        return particle(self.text, "이/가")

    @property
    def eun(self) -> str:
        return particle(self.text, "은/는")

    @property
    def eul(self) -> str:
        return particle(self.text, "을/를")

    @property
    def wa(self) -> str:
        return particle(self.text, "와/과")
