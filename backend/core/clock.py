"""Time helpers: every stored timestamp is UTC and cut to the millisecond MongoDB keeps."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now in UTC, truncated to milliseconds so a stored value round-trips exactly (cursors rely on it)."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Stored datetimes come back with PyMongo's FixedOffset tz (or naive); normalise to dt.UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
