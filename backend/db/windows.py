"""Newest-first reads in time windows: a page costs what falls in the windows it reads, not the
size of the whole history.

The embedded database (SecantusDB) answers `find(...).sort(...).limit(n)` by reading every document
its index matches, sorting them in Python, and cutting the page after that: a list of 20
conversations read all 2,500 of a heavy user's. A range on the index's time field bounds what it
reads. So a newest-first page is read window by window back from its start: an hour first, each
next window sized from how many items the windows so far gave (for the rest, with a margin), eight
times as far back when they gave none, until enough are found; after `MAX_WINDOWS` (or beyond
`MAX_SPAN`) one last read takes everything older. On MongoDB each window is a range scan of the same index.

A user active in the last hours pays for those hours; one back after an absence pays for about as
much history as the absence was long; none pays for the whole history unless they have no
`wanted` items in the last two to three years.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

FIRST_SPAN = dt.timedelta(hours=1)
MAX_WINDOWS = 8
MAX_SPAN = dt.timedelta(days=3 * 365)  # a window reaching further back reads everything older instead
EMPTY_GROWTH = 8  # 1 h, 8 h, 3 days, 3 weeks, 6 months, then all: six reads at most for a sparse history
MIN_GROWTH, MAX_GROWTH = 1.25, 8  # from a few items the density is a rough guess: a window at most 8 times
MARGIN = 1.25


@dataclass(frozen=True)
class Window:
    """Items dated in [since, until): None is unbounded. Every `since` is a whole second, so ObjectId
    bounds (second resolution) and datetime bounds cut at the same place."""

    since: dt.datetime | None
    until: dt.datetime | None


async def newest_first(read: Callable[[Window], Awaitable[int]], *, until: dt.datetime | None,
                       start: dt.datetime, wanted: int) -> None:
    """Call `read` on windows going back from `until` (None: no upper bound), each reaching further
    back from `start`, until the counts it returns add up to `wanted`."""
    found, covered, edge = 0, FIRST_SPAN, until
    for _ in range(MAX_WINDOWS):
        if covered > MAX_SPAN:
            break
        since = (start - covered).replace(microsecond=0)
        found += await read(Window(since, edge))
        if found >= wanted:
            return
        growth = EMPTY_GROWTH if found == 0 else min(MAX_GROWTH, max(MIN_GROWTH, wanted * MARGIN / found))
        covered, edge = covered * growth, since
    await read(Window(None, edge))
