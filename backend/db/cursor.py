"""Opaque page cursors: a (timestamp, id) position, url-safe base64 so clients treat it as a string."""

from __future__ import annotations

import base64
import datetime as dt

from bson import ObjectId
from bson.errors import InvalidId


class InvalidCursor(ValueError):
    pass


def encode_cursor(at: dt.datetime, doc_id: ObjectId) -> str:
    millis = int(at.timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}.{doc_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, ObjectId]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, _, oid = raw.partition(".")
        return dt.datetime.fromtimestamp(int(millis) / 1000, dt.UTC), ObjectId(oid)
    except (ValueError, InvalidId, UnicodeDecodeError, OverflowError, OSError):
        raise InvalidCursor(cursor) from None
