"""eval-chat fixtures: tiny targets and judges, served for real on loopback.

Servers: model_server for target B (a TGI URL), model_server for the trained judge, and two KoVR
backends whose OpenAI-compatible /v1 (personal API token) front them: the judge's door, and a
"garbage judge" door in front of the untrained model B (its replies are never JSON).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from kovr.settings import Settings, load_settings
from tests.chat.support import (
    backend,
    backend_settings,
    model_settings,
    serve_in_thread,
    sign_up,
    train_tiny_model,
)
from tests.evalchat.support import random_model, train_judge


@dataclass(frozen=True)
class Models:
    a: Path
    b: Path
    judge: Path


@dataclass(frozen=True)
class Door:
    url: str  # the backend's /v1
    token: str


@dataclass(frozen=True)
class Servers:
    b_url: str
    judge: Door
    garbage: Door


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    root = tmp_path_factory.mktemp("evalchat-models")
    train_tiny_model(root / "a")
    train_judge(root / "judge")
    # B shares the judge's tokenizer, which spells the long judge prompts in few tokens: behind the
    # garbage door the whole prompt fits, so what is tested is the reply, not a length limit.
    random_model(root / "judge", root / "b")
    return Models(root / "a", root / "b", root / "judge")


@contextmanager
def _door(mongo_uri: str, model_url: str, data_dir: Path) -> Iterator[Door]:
    with backend(backend_settings(mongo_uri, model_url, data_dir)) as url:
        account = sign_up(url)
        created = account.client.post("/api/v1/tokens", json={"name": "eval-chat 심사"})
        assert created.status_code == 201, created.text
        yield Door(f"{url}/v1", created.json()["token"])


@pytest.fixture(scope="session")
def servers(models: Models, mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    from model_server.app import create_model_app

    tmp = tmp_path_factory.mktemp("evalchat-servers")
    limits = {"max_input_tokens": 1800, "max_total_tokens": 2000}
    with (
        serve_in_thread(create_model_app(model_settings(models.b, tmp, **limits))) as b_url,
        serve_in_thread(create_model_app(model_settings(models.judge, tmp, **limits))) as judge_url,
        _door(mongo_uri, judge_url, tmp / "judge-app") as judge,
        _door(mongo_uri, b_url, tmp / "garbage-app") as garbage,
    ):
        yield Servers(b_url, judge, garbage)


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for local-folder targets (model_server's limits, one torch thread)."""
    return load_settings(data_dir=tmp_path_factory.mktemp("evalchat-data"), device="cpu", torch_threads=1,
                         max_concurrent_requests=2, max_input_tokens=600, max_total_tokens=1000)
