"""`within`: asyncio.wait_for without the lost cancel of Python 3.11.

Python 3.11's `asyncio.wait_for` returns the awaited result instead of raising when the caller is
cancelled in the same loop pass as the awaited thing completes (CPython gh-86296, fixed in 3.12 by
basing wait_for on asyncio.timeout). A loop that is stopped by cancelling it then runs on: a chat
answer's saver did, renewing the lease of an answer that never ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(aw: Awaitable[T], timeout_s: float) -> T:
    """`aw`'s result, or TimeoutError after `timeout_s` (`aw` is then cancelled and waited for);
    a cancel of the caller always propagates, and cancels `aw`."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})
        raise TimeoutError
    return task.result()
