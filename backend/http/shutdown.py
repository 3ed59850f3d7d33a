"""Shutdown that ends streams cleanly: callbacks run the moment uvicorn is told to exit.

uvicorn waits for open connections before the app's lifespan ends, and an SSE stream never ends
by itself: so a SIGTERM must reach the chat at once. `on_server_exit` callbacks run when uvicorn
is asked to exit (its `handle_exit`, from the signal handler), before it drains connections: the
chat then ends every open stream with a terminal event (`backend.services.chat_runtime`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import FrameType

import uvicorn

log = logging.getLogger("kovr.shutdown")
_EXIT_CALLBACKS: list[Callable[[], None]] = []


def on_server_exit(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` (from the signal handler: keep it to a call_soon_threadsafe) when uvicorn is
    told to exit; returns the function that unregisters it."""
    _EXIT_CALLBACKS.append(callback)
    return lambda: _EXIT_CALLBACKS.remove(callback) if callback in _EXIT_CALLBACKS else None


def _install_exit_hook() -> None:
    original = uvicorn.Server.handle_exit
    if getattr(original, "_kovr_hook", False):
        return

    def handle_exit(self: uvicorn.Server, sig: int, frame: FrameType | None) -> None:
        for callback in _EXIT_CALLBACKS:
            try:
                callback()
            except Exception:
                log.exception("exit callback failed")
        original(self, sig, frame)

    handle_exit._kovr_hook = True  # type: ignore[attr-defined]  # marks the wrapper: installed once
    uvicorn.Server.handle_exit = handle_exit  # type: ignore[method-assign]  # wrapping uvicorn's signal entry is the point


_install_exit_hook()
