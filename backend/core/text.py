"""Incoming text: Unicode NFC (macOS sends decomposed Hangul) and length limits, as pydantic types.

Every text field of every request body goes through :func:`nfc` (directly or through the types
below): it is the one place that refuses text that is not Unicode — a lone surrogate, which JSON's
``"\\ud800"`` escape can smuggle in and which no encoder can write — as 422 ``invalid_text``
(the error handler maps pydantic's error type of that name to the code).

`NfcStr` only normalises; `Title`, `DisplayName`, `TokenName` also trim, refuse blank and
multi-line values and cap the length; `Password` keeps spaces. The caps here are hard ceilings;
the settings' own (possibly lower) limits are checked in the routes, so operators can tighten them.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

# Control characters (tab and newline included) have no place in names and titles.
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


INVALID_TEXT = "invalid_text"


def valid_text(value: str) -> str:
    """`value` if it is writable Unicode; a lone surrogate (from a JSON escape) is refused."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(INVALID_TEXT, "text is not valid Unicode (lone surrogate)") from None
    return value


def nfc(value: Any) -> Any:
    return unicodedata.normalize("NFC", valid_text(value)) if isinstance(value, str) else value


def _nfc_stripped(value: Any) -> Any:
    return nfc(value).strip() if isinstance(value, str) else value


def nfkc_email(value: Any) -> Any:
    """An email address as one account: NFKC (a fullwidth "ａ" is "a"), trimmed."""  # noqa: RUF002 - the example
    return unicodedata.normalize("NFKC", valid_text(value)).strip() if isinstance(value, str) else value


def idna_email(value: str) -> str:
    """Lower case, the domain in its ASCII (IDNA) form, so "사용자@예시.한국" is one account however typed."""
    local, _, domain = value.rpartition("@")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("the domain is not a valid internationalised domain name") from None
    return f"{local}@{ascii_domain}".lower()


def normalise_email(value: str) -> str:
    """The stored form of an address (sign-up, sign-in, rate-limit keys): NFKC, IDNA domain, lower case."""
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        return idna_email(text)
    except ValueError:
        return text.lower()


def _single_line(value: str) -> str:
    if any(ch in _CONTROL for ch in value):
        raise ValueError("must be a single line without control characters")
    return value


# The same rule as a pattern, so the OpenAPI document says it too: no control characters, and at
# least one character that is not white space.
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"


def line_text(max_length: int) -> Any:
    """A trimmed, non-blank, single-line NFC string of at most `max_length` characters."""
    return Annotated[
        str,
        BeforeValidator(_nfc_stripped),
        StringConstraints(min_length=1, max_length=max_length, pattern=LINE_PATTERN),
        AfterValidator(_single_line),
        # pydantic leaves the pattern out of the JSON schema when a validator follows it
        Field(json_schema_extra={"pattern": LINE_PATTERN}),
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
