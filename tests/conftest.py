"""Shared fixtures: a real MongoDB-wire server (SecantusDB) on a free loopback port for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.db.embedded import EmbeddedMongo

# Keep torch from fighting over the 2 CI cores when several model tests run.
os.environ.setdefault("OMP_NUM_THREADS", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("db-log") / "secantus.log"
    with EmbeddedMongo(":memory:", log_file=log) as server:
        yield server.uri


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = REPO_ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
