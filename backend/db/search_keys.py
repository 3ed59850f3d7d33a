"""The search index's keys: character bigrams (and single characters) of the NFC, case-folded text.

Korean has no spaces inside words and attaches particles to nouns ("제주도에서"), so a word index
(MongoDB's text index splits on spaces and stems for English) cannot find "제주도" there. Every
substring of two or more characters contains all of its bigrams, so the messages holding one of a
query's bigrams are a superset of those containing it: an equality lookup on an indexed array
field narrows the candidates, and the exact substring check decides. A one-character query is
answered by the single characters, which are kept for that (and need no check).
"""

from __future__ import annotations

import unicodedata

# Bigrams so frequent in Korean (endings, particles) or English that they narrow little: looked up last.
_COMMON = frozenset({"에서", "니다", "습니", "합니", "입니", "하는", "으로", "에게", "하고", "이다", "에는", "지만",
                     "있는",
                     "해요", "세요", "하세", "그리", "the", "th", "he", "in", "er", "an", "re", "on"})


def normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def keys(text: str) -> list[str]:
    """What a document stores for `text`: its distinct bigrams and non-space characters."""
    folded = normalise(text)
    grams = {folded[i:i + 2] for i in range(len(folded) - 1)}
    grams.update(ch for ch in folded if not ch.isspace())
    return sorted(grams)


def lookup_key(needle: str) -> str | None:
    """The key to look up for a normalised query: its rarest-looking bigram (the check covers the rest)."""
    if len(needle) < 2:
        return needle if needle.strip() else None
    grams = {needle[i:i + 2] for i in range(len(needle) - 1)}
    return min(grams, key=lambda g: (any(ch.isspace() for ch in g), g in _COMMON, g))
