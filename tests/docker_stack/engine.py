"""The container engine as `make docker-test` drives it: podman with the project's own settings
(docker/containers.conf), podman-compose, the tools installed from Debian when missing, and a
stopwatch that prints every stage's time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "docker" / "containers.conf"
# Kept between runs on one machine: the stand-in base images' rootfs work, the demo model, the
# CPU torch wheel. The images themselves live in podman's store.
CACHE = Path.home() / ".cache" / "kovr-docker-test"
DEBIAN_TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}


def engine_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: the caller's KOVR_* or compose variables never leak into the stack."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "TERM", "TMPDIR") if key in os.environ}
    env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
    env.update(CONTAINERS_CONF=str(CONTAINERS_CONF), LANG="C.UTF-8")
    env.update(extra or {})
    return env


def run(cmd: Sequence[str | Path], *, env: dict[str, str] | None = None, check: bool = True,
        capture: bool = False, timeout: float | None = None, cwd: Path = REPO,
        stdin: int | None = subprocess.DEVNULL, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    words = [str(c) for c in cmd]
    print("$ " + " ".join(words), flush=True)
    proc = subprocess.run(words, env=env or engine_env(), cwd=cwd, timeout=timeout, check=False,
                          stdin=None if input is not None else stdin, input=input,
                          stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        detail = (proc.stderr or b"").decode(errors="replace")[-3000:]
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(words)}\n{detail}")
    return proc


def output(cmd: Sequence[str | Path], **kwargs: object) -> str:
    return run(cmd, capture=True, **kwargs).stdout.decode()  # type: ignore[arg-type]


def podman(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return run(["podman", *args], **kwargs)  # type: ignore[arg-type]


def image_exists(ref: str) -> bool:
    return run(["podman", "image", "exists", ref], check=False).returncode == 0


def ensure_tools() -> None:
    """podman, runc and debootstrap from Debian (as scripts/bootstrap.sh installs Chromium)."""
    path = engine_env()["PATH"]
    missing = [package for tool, package in DEBIAN_TOOLS.items() if shutil.which(tool, path=path) is None]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run([*sudo, "apt-get", "update", "-qq"], env={**os.environ})
        run([*sudo, "apt-get", "install", "-y", "-qq", *missing],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if compose_binary() is None:
        run([sys.executable, "-m", "pip", "install", "-q", "podman-compose>=1.6"], env={**os.environ})


def compose_binary() -> str | None:
    return shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which("podman-compose")


class Stopwatch:
    """Times each stage, prints it as it ends and all of them at the end."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.started = time.monotonic()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"\n=== {name}", flush=True)
        start = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - start
            self.times.append((name, seconds))
            print(f"=== {name}: {seconds:.1f} s", flush=True)

    def summary(self) -> str:
        width = max((len(name) for name, _ in self.times), default=10)
        lines = [f"  {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.times]
        lines.append(f"  {'total':<{width}}  {time.monotonic() - self.started:7.1f} s")
        return "\n".join(lines)
