"""The embedded default database: SecantusDB (MongoDB wire protocol) as a child process on loopback.

Used by `kovr serve` when no KOVR_MONGODB_URI is set, and by the tests (`:memory:` storage).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from kovr.processes import preexec_die_with_parent


class EmbeddedDatabaseError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def database_answers(uri: str, *, timeout_ms: int) -> bool:
    """One ping: used while the embedded server starts and before serving on any database."""
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _server_command() -> list[str]:
    exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    if not Path(exe).exists():
        raise EmbeddedDatabaseError("secantusd-py not found: install the 'secantusdb' package")
    return [exe]


class EmbeddedMongo:
    """Start SecantusDB on 127.0.0.1 and stop it again; `storage` is a folder or ':memory:'."""

    def __init__(self, storage: Path | str, *, port: int | None = None, log_file: Path | None = None,
                 cache_size: str = "256M"):
        self.storage = storage
        self.cache_size = cache_size
        self.port = port or free_port()
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout_s: float = 30.0) -> str:
        if isinstance(self.storage, Path):
            self.storage.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115 - the child keeps the log open; closed with the process
        cmd = [*_server_command(), "--host", "127.0.0.1", "--port", str(self.port), "--storage-path",
               str(self.storage), "--log-level", "WARNING", "--cache-size", self.cache_size]
        # SIGTERM when its parent dies, even by SIGKILL: WiredTiger still checkpoints and closes.
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      preexec_fn=preexec_die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedDatabaseError(
                    f"embedded database exited with code {self._proc.returncode} "
                    f"(storage {self.storage}; is another kovr using it?)"
                )
            if database_answers(self.uri, timeout_ms=300):
                return self.uri
            time.sleep(0.1)
        self.stop()
        raise EmbeddedDatabaseError(f"embedded database did not answer on port {self.port} in {timeout_s:.0f}s")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()  # SIGTERM lets WiredTiger checkpoint and close cleanly
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
