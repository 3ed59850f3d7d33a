"""`kovr serve` on the embedded database, as a real process: data and sessions survive a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backend.db.embedded import free_port


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOVR_")}
    env["HOME"] = str(tmp_path / "home")  # nothing may land in the real per-user folder
    return env


@contextmanager
def kovr_serve(
    data_dir: Path, port: int, env: dict[str, str], stop: signal.Signals = signal.SIGINT
) -> Iterator[str]:
    log = open(data_dir.parent / f"serve-{port}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kovr",
            "serve",
            "--no-model",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        cwd=data_dir.parent,  # outside the repository: a developer's .env cannot leak in
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "kovr serve did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(stop)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
        assert code == (0 if stop == signal.SIGINT else 128 + stop), Path(log.name).read_text()


@pytest.mark.slow
def test_data_and_sessions_survive_a_restart(tmp_path: Path) -> None:
    data_dir, env = tmp_path / "data", _env(tmp_path)
    port = free_port()
    # SIGTERM (what docker and systemd send) must stop the embedded database too, or the second
    # start below could not open the same storage.
    with kovr_serve(data_dir, port, env, stop=signal.SIGTERM) as url:
        signup = httpx.post(
            f"{url}/api/v1/auth/signup",
            json={"email": "restart@example.com", "password": "재시작-비밀번호", "display_name": "재시작"},
        )
        assert signup.status_code == 201
        tokens = httpx.post(
            f"{url}/api/v1/auth/token",
            data={"username": "restart@example.com", "password": "재시작-비밀번호"},
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        conv = httpx.post(f"{url}/api/v1/conversations", json={"title": "다시 켜도 남아요"}, headers=auth)
        assert conv.status_code == 201
    assert (data_dir / "secrets" / "jwt_secret").exists()
    assert any((data_dir / "db").iterdir())

    with kovr_serve(data_dir, free_port(), env) as url:
        # The persisted key keeps the old access token valid; the refresh token still rotates.
        listing = httpx.get(f"{url}/api/v1/conversations", headers=auth)
        assert listing.status_code == 200
        assert [c["title"] for c in listing.json()["items"]] == ["다시 켜도 남아요"]
        refreshed = httpx.post(f"{url}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        login = httpx.post(
            f"{url}/api/v1/auth/token",
            data={"username": "restart@example.com", "password": "재시작-비밀번호"},
        )
        assert login.status_code == 200
