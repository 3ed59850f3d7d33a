"""Object ids from URLs: anything that is not a valid id is simply "not found"."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId


def parse_id(value: str | ObjectId | None) -> ObjectId | None:
    if isinstance(value, ObjectId):
        return value
    if not isinstance(value, str) or len(value) != 24:
        return None
    try:
        return ObjectId(value)
    except InvalidId:
        return None
