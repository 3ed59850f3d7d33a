"""The Docker deployment in a real container engine: `make docker-test` (tests/docker_stack/run.py)
as part of the test suite, so CI builds the images, runs the stack and uses it as a user would.

Needs root (or sudo) for podman and apt-get; about 15 minutes on a fresh 2-core machine, a few
minutes once the base images are in podman's store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(2700)
def test_docker_deployment_end_to_end() -> None:
    proc = subprocess.run([sys.executable, "-m", "tests.docker_stack.run"], cwd=REPO, timeout=2600, check=False)
    assert proc.returncode == 0, "make docker-test failed: its output above says at which stage"
