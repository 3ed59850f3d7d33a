"""Backend latency on loopback: health, JWT and API-token auth, conversation list/search/create, login.

Runs the real app under uvicorn on an in-memory SecantusDB and times sequential requests with httpx.
Usage: python bench/bench_backend.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn

from backend.app import create_app
from backend.db import messages
from backend.db.embedded import EmbeddedMongo, free_port
from backend.server import server_config
from kovr.settings import load_settings


async def _time(n: int, call: Callable[[], Awaitable[httpx.Response]]) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        resp = await call()
        samples.append((time.perf_counter() - started) * 1000)
        assert resp.status_code < 300, resp.text
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def _messages(db: Any, conversation_id: str, index: int) -> None:
    """20 messages of a few hundred characters in each conversation, for the search rows."""
    from bson import ObjectId

    conversation = await db.conversations.find_one({"_id": ObjectId(conversation_id)})
    for k in range(20):
        text = f"세종대왕은 1443년에 훈민정음 {index}-{k}을 만들었습니다. " * 8
        await messages.create_message(db=db, conversation_id=conversation["_id"], user_id=conversation["user_id"],
                                      role="user" if k % 2 == 0 else "assistant", content=text)


async def run(uri: str, n: int) -> None:
    settings = load_settings(profile="test", mongodb_uri=uri, mongodb_db="bench", jwt_secret="b" * 48)
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(server_config(app, settings, port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        user = {"email": "bench@example.com", "password": "bench-password", "display_name": "벤치"}
        await client.post("/api/v1/auth/signup", json=user)
        form = {"username": user["email"], "password": user["password"]}
        jwt = (await client.post("/api/v1/auth/token", data=form)).json()["access_token"]
        bearer = {"Authorization": f"Bearer {jwt}"}
        token = (await client.post("/api/v1/tokens", json={"name": "b"}, headers=bearer)).json()["token"]
        for i in range(50):
            made = await client.post("/api/v1/conversations", json={"title": f"대화 {i}"}, headers=bearer)
            await _messages(app.state.db, made.json()["id"], i)
        cases: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "GET /healthz": lambda: client.get("/healthz"),
            "GET /api/v1/users/me (JWT)": lambda: client.get("/api/v1/users/me", headers=bearer),
            "GET /api/v1/users/me (API token)": lambda: client.get(
                "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            ),
            "GET /api/v1/conversations?limit=20": lambda: client.get("/api/v1/conversations", headers=bearer),
            "GET /api/v1/conversations?q= (matches 20 of 1,000 messages)": lambda: client.get(
                "/api/v1/conversations", params={"q": "훈민정음 7"}, headers=bearer),
            "GET /api/v1/conversations?q= (no match)": lambda: client.get(
                "/api/v1/conversations", params={"q": "없는 말"}, headers=bearer),
            "POST /api/v1/conversations": lambda: client.post(
                "/api/v1/conversations", json={"title": "새 대화"}, headers=bearer
            ),
            "POST /api/v1/auth/token (argon2id verify)": lambda: client.post("/api/v1/auth/token", data=form),
        }
        print(f"| request | p50 ms | p95 ms |  (n={n}, sequential, loopback)")
        print("|---|---:|---:|")
        for name, call in cases.items():
            count = min(n, 30) if "auth/token" in name else n
            p50, p95 = await _time(count, call)
            print(f"| {name} | {p50:.1f} | {p95:.1f} |")
    server.should_exit = True
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with EmbeddedMongo(":memory:") as db:
        asyncio.run(run(db.uri, args.requests))


if __name__ == "__main__":
    main()
