"""`kovr migrate` and `kovr create-user` as real processes against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from backend.db.client import open_client


def _env(mongo_uri: str, db_name: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOVR_")}
    env.update(KOVR_MONGODB_URI=mongo_uri, KOVR_MONGODB_DB=db_name, HOME=str(tmp_path))
    return env


def _kovr(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kovr", *args],
        check=False,
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_two_migrate_processes_at_once_apply_once(mongo_uri: str, tmp_path: Path) -> None:
    db_name = f"cli_{uuid.uuid4().hex[:8]}"
    env = _env(mongo_uri, db_name, tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kovr", "migrate"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied_now = [out for out, _ in outputs if "applied now: 0001_initial" in out]
    assert len(applied_now) == 1, outputs
    status = _kovr(["migrate", "--status"], env, tmp_path)
    assert status.returncode == 0 and "pending: -" in status.stdout


@pytest.mark.slow
async def test_create_user(mongo_uri: str, tmp_path: Path) -> None:
    db_name = f"cli_{uuid.uuid4().hex[:8]}"
    env = _env(mongo_uri, db_name, tmp_path)
    made = _kovr(
        ["create-user", "--email", "Admin@Example.com", "--admin", "--password-stdin"],
        env,
        tmp_path,
        stdin="관리자-비밀번호\n",
    )
    assert made.returncode == 0, made.stderr
    assert "admin@example.com" in made.stdout
    again = _kovr(
        ["create-user", "--email", "admin@example.com", "--password-stdin"],
        env,
        tmp_path,
        stdin="another-password\n",
    )
    assert again.returncode == 1 and "이미 가입된" in again.stderr
    bad = _kovr(["create-user", "--email", "nope", "--password-stdin"], env, tmp_path, stdin="short\n")
    assert bad.returncode == 2 and "email" in bad.stderr and "password" in bad.stderr

    client = open_client(mongo_uri)
    try:
        user = await client[db_name].users.find_one({"email": "admin@example.com"})
    finally:
        await client.close()
    assert user is not None and user["role"] == "admin" and user["display_name"] == "Admin"
    assert user["password_hash"].startswith("$argon2")
