"""Incoming text: Unicode NFC (macOS sends decomposed Hangul) and length limits, as pydantic types.

`NfcStr` only normalises; `Title`, `DisplayName`, `TokenName` also trim, refuse blank and
multi-line values and cap the length; `Password` keeps spaces. The caps here are hard ceilings;
the settings' own (possibly lower) limits are checked in the routes, so operators can tighten them.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints

# Control characters (tab and newline included) have no place in names and titles.
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def nfc(value: Any) -> Any:
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _nfc_stripped(value: Any) -> Any:
    return unicodedata.normalize("NFC", value).strip() if isinstance(value, str) else value


def _single_line(value: str) -> str:
    if any(ch in _CONTROL for ch in value):
        raise ValueError("must be a single line without control characters")
    return value


def line_text(max_length: int) -> Any:
    """A trimmed, non-blank, single-line NFC string of at most `max_length` characters."""
    return Annotated[
        str,
        BeforeValidator(_nfc_stripped),
        StringConstraints(min_length=1, max_length=max_length),
        AfterValidator(_single_line),
    ]


def search_text(value: str | None) -> str | None:
    """What a search box holds, NFC and trimmed (a decomposed "한" must find a composed one); None if blank."""
    return _nfc_stripped(value) or None


SEARCH_MAX_CHARS = 100
NfcStr = Annotated[str, BeforeValidator(nfc)]
Title = line_text(200)
DisplayName = line_text(64)
TokenName = line_text(100)
# argon2 takes any length, but request bodies stay small: 8..256 characters.
Password = Annotated[str, BeforeValidator(nfc), StringConstraints(min_length=8, max_length=256)]
