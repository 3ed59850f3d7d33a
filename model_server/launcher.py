"""`ModelServerProcess`: the model server as a child process of `kovr serve`.

Builds the demo model first when no model is configured and it is missing (through `kovr demo-model`,
whose progress bar shows; model_server never imports the trainer), starts `python -m kovr model-server`
on a free loopback port, waits until /health answers, and stops the child on exit. The child gets the
parent's model_server settings as KOVR_* variables, so both processes agree on limits even when the
parent's settings came from the command line.

Supervised: a child that exits on its own (a crash, an OOM kill, `kill -9`) is started again on
the same port after a backoff (1 s, doubling to 30 s), with a log line each time; meanwhile
/health fails, so the web app's /readyz says "not ready" and answers in flight end with
`model_unavailable`, keeping their text. The child dies with its parent (parent-death signal).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import httpx

from kovr.processes import preexec_die_with_parent
from kovr.settings import Settings

# Settings the child must see exactly as the parent has them.
_FORWARDED = (
    "model", "model_revision", "adapter", "merge_adapter", "vr_checkpoint", "tgi_upstream_url", "device",
    "max_concurrent_requests", "max_queue", "max_batch_size", "max_input_tokens", "max_total_tokens",
    "max_new_tokens_limit", "torch_threads", "ignore_eos", "max_image_bytes", "max_image_pixels", "data_dir",
    "shared_data_dir", "log_level", "profile", "kv_cache", "cuda_graphs", "cuda_graph_batch_sizes",
    "batch_image_prefill",
)


log = logging.getLogger("kovr.model_server.launcher")
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


class ModelServerError(RuntimeError):
    """The model server could not be started; the message says why."""


class ModelServerProcess:
    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 600.0,
        build_demo: Callable[[Settings], None] | None = None,
    ) -> None:
        self.settings = settings
        # How a missing demo model is built; default: `kovr demo-model` as a child process.
        self.build_demo = build_demo or _build_demo_with_cli
        self.host = host
        self.port = _free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        self.ensure_model()
        self._stopping.clear()
        # The supervisor thread starts every child: the parent-death signal follows the thread that
        # forked, so the children must come from a thread that lives as long as the supervision.
        started = threading.Event()
        failure: list[BaseException] = []
        self._supervisor = threading.Thread(target=self._supervise, args=(started, failure), daemon=True,
                                            name="model-server-supervisor")
        self._supervisor.start()
        started.wait()
        if failure:
            self.stop()
            raise failure[0]
        return self

    def _spawn(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kovr", "model-server", "--host", self.host, "--port", str(self.port)],
            env={**os.environ, **self._child_env()},
            preexec_fn=preexec_die_with_parent(signal.SIGTERM),
        )

    def _supervise(self, started: threading.Event, failure: list[BaseException]) -> None:
        try:
            self._spawn()
            self._wait_healthy()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        attempt = 0
        while not self._stopping.wait(0.5):
            process = self._process
            if process is None or process.poll() is None:
                continue
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            log.error("model server exited with code %s; restarting in %.0f s", process.returncode, delay)
            if self._stopping.wait(delay):
                return
            attempt += 1
            self.restarts += 1
            try:
                self._spawn()
                self._wait_healthy()
            except ModelServerError as exc:
                log.error("model server restart failed: %s", exc)
                continue
            log.warning("model server is back at %s (restart %d)", self.url, self.restarts)
            attempt = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def ensure_model(self) -> None:
        """Build the demo model once when it is what would be served and it is missing."""
        s = self.settings
        if s.model or s.vr_checkpoint or s.tgi_upstream_url or (s.demo_model_dir / "config.json").is_file():
            return
        print(f"데모 모델이 없어 새로 만듭니다 (building the demo model into {s.demo_model_dir}) ...", file=sys.stderr)
        self.build_demo(s)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def _child_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for name in _FORWARDED:
            value = getattr(self.settings, name)
            if value is not None:
                env[f"KOVR_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            assert self._process is not None
            if (code := self._process.poll()) is not None:
                raise ModelServerError(f"model server exited with code {code} before it was ready")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ModelServerError(f"model server not healthy after {self.startup_timeout_s:.0f} s at {self.url}")


def _build_demo_with_cli(settings: Settings) -> None:
    """`kovr demo-model` into the settings' demo folder; its report goes to stderr with the progress bar."""
    command = [sys.executable, "-m", "kovr", "demo-model", "--output", str(settings.demo_model_dir),
               "--data-dir", str(settings.data_dir)]
    env = {**os.environ, "KOVR_SHARED_DATA_DIR": str(settings.shared_data_dir)}
    done = subprocess.run(command, env=env, stdout=2, check=False)  # fd 2: the parent's stderr
    if done.returncode != 0:
        raise ModelServerError(f"kovr demo-model exited with code {done.returncode}")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

