"""A local model folder as a target: model_server's own app on a free loopback port, in this process.

The answers then come through exactly the code that serves the folder in production (prompt
template from the folder, UTF-8-safe detokenisation, stop strings), not a second generation path.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from evalchat.targets import OpenAITarget, Target, TargetError, TargetSpec, TGITarget
from kovr.settings import Settings

START_TIMEOUT_S = 600.0  # loading a 1.3B model from disk on CPU takes a while


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalTarget(TGITarget):
    """Serves ``spec.location`` with model_server (settings otherwise as given) until :meth:`close`."""

    def __init__(self, spec: TargetSpec, settings: Settings) -> None:
        import uvicorn

        from model_server.app import create_model_app

        folder = Path(spec.location).expanduser()
        if not (folder / "config.json").is_file():
            raise TargetError(f"{spec.name}: {folder} is not a model folder (no config.json)")
        served = settings.model_copy(update={"model": str(folder), "adapter": None, "vr_checkpoint": None,
                                             "tgi_upstream_url": None})
        port = _free_port()
        config = uvicorn.Config(create_model_app(served), host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"eval-chat-{spec.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise TargetError(f"{spec.name}: model_server did not start for {folder}")
            time.sleep(0.05)
        super().__init__(spec, url=f"http://127.0.0.1:{port}")

    def close(self) -> None:
        super().close()
        self._server.should_exit = True
        self._thread.join(timeout=60)


def open_target(spec: TargetSpec, settings: Settings, api_key: str | None = None) -> Target:
    """The client for a spec (local folders are served first)."""
    if spec.kind == "openai":
        return OpenAITarget(spec, api_key)
    if spec.kind == "tgi":
        return TGITarget(spec)
    return LocalTarget(spec, settings)
