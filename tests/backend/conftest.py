"""A real KoVR app under uvicorn on a free loopback port, on the session's SecantusDB.

Each test module gets its own database (named after the module) so modules never see each
other's users; `make_client` gives independent httpx clients (own cookie jars) for two users.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from backend.app import create_app
from backend.db.embedded import free_port
from backend.server import server_config
from kovr.settings import Settings, load_settings

TEST_SECRET = "test-secret-" + "k" * 40


def backend_settings(mongo_uri: str, db_name: str, tmp_path: Any, **overrides: Any) -> Settings:
    return load_settings(
        profile="test",
        mongodb_uri=mongo_uri,
        mongodb_db=db_name,
        jwt_secret=TEST_SECRET,
        data_dir=tmp_path,
        # Every test signs up from 127.0.0.1; test_rate_limit.py sets its own low limit.
        **{"signup_rate_limit_address": 10000, **overrides},
    )


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: Any

    @property
    def db(self) -> Any:
        return self.app.state.db


async def start_server(settings: Settings) -> tuple[LiveServer, uvicorn.Server, asyncio.Task[None]]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(server_config(app, settings, port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", app.state.settings, app), server, task


@pytest.fixture(scope="module")
def db_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1])
    return f"{stem[:40]}_{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    """Override in a test module to change settings (e.g. a low login rate limit)."""
    return {}


@pytest.fixture(scope="module")
async def live(
    mongo_uri: str, db_name: str, server_overrides: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    settings = backend_settings(mongo_uri, db_name, tmp_path_factory.mktemp("data"), **server_overrides)
    live_server, server, task = await start_server(settings)
    yield live_server
    server.should_exit = True
    await task


MakeClient = Callable[[], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(live: LiveServer) -> AsyncIterator[MakeClient]:
    clients: list[httpx.AsyncClient] = []

    async def make() -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=live.url, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> httpx.AsyncClient:
    return await make_client()


async def signup_and_login(
    client: httpx.AsyncClient, email: str | None = None, password: str = "비밀번호-correct-horse"
) -> dict[str, Any]:
    """A new account; returns its email, password, id and a token pair; sets the Bearer header."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    resp = await client.post(
        "/api/v1/auth/signup", json={"email": email, "password": password, "display_name": "테스트"}
    )
    assert resp.status_code == 201, resp.text
    tokens = await client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    pair = tokens.json()
    client.headers["Authorization"] = f"Bearer {pair['access_token']}"
    return {"email": email, "password": password, "id": resp.json()["id"], **pair}
