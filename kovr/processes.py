"""Child processes that never outlive their parent, even when it is killed with SIGKILL.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG): the kernel sends the child a signal when
the thread that started it ends, so `kill -9` of `kovr serve` cannot leave the embedded database,
the model server or a web worker behind to block the next start. Elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    _libc().prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)


def preexec_die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `subprocess.Popen(preexec_fn=...)` that sets the parent-death signal in the child.

    libc is loaded here, in the parent: between fork and exec the child only makes the one
    prctl call (no imports, no locks), which is what makes preexec_fn safe with threads."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = _libc().prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec
