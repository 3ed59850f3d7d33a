"""backend/core/aio.py `within`: wait_for's contract, without Python 3.11's lost cancel."""

from __future__ import annotations

import asyncio
import sys

import pytest

from backend.core.aio import within


async def test_the_result_comes_back_in_time() -> None:
    async def answer() -> str:
        await asyncio.sleep(0.01)
        return "끝"

    assert await within(answer(), 1.0) == "끝"


async def test_a_timeout_raises_and_cancels_what_it_waited_for() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await within(slow(), 0.05)
    assert started.is_set() and cancelled.is_set()  # cancelled and waited for before the raise


@pytest.mark.parametrize("waiter", ["within", "wait_for"])
async def test_a_cancel_landing_as_the_result_comes_is_never_lost(waiter: str) -> None:
    """The race of CPython gh-86296: the awaited future completes and the caller is cancelled in
    the same loop pass. `within` raises CancelledError; 3.11's wait_for returned the result."""
    done = asyncio.get_running_loop().create_future()

    async def caller() -> str:
        if waiter == "within":
            return await within(done, 10.0)
        return await asyncio.wait_for(done, 10.0)

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)  # the caller waits
    done.set_result("늦은 결과")
    task.cancel()
    await asyncio.wait({task})
    if waiter == "within":
        assert task.cancelled()
    else:  # documents why `within` exists; on 3.12+ wait_for is fixed too
        assert task.cancelled() is (sys.version_info >= (3, 12))
