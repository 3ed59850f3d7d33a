"""Shared by test_usage.py, test_quota.py and test_admin.py: a KoVR backend on the tiny model
server (tests/chat/fixtures.py) with settings of the test's own, and its database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

from tests.chat.support import Account, backend, backend_settings, sign_up


@dataclass
class Stack:
    url: str
    db: Any  # pymongo Database of this backend

    def account(self) -> Account:
        return sign_up(self.url)

    def api_token(self, account: Account) -> str:
        created = account.client.post("/api/v1/tokens", json={"name": "테스트 토큰"})
        assert created.status_code == 201, created.text
        return str(created.json()["token"])

    def token_client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {token}"})


@contextmanager
def stack(mongo_uri: str, model_url: str, data_dir: Path, **overrides: Any) -> Iterator[Stack]:
    settings = backend_settings(mongo_uri, model_url, data_dir, **overrides)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    try:
        with backend(settings) as url:
            yield Stack(url, client[settings.mongodb_db])
    finally:
        client.close()


def send(account: Account, conversation: str, content: str = "세종대왕은 무엇을 만들었나요?",
         **parameters: Any) -> httpx.Response:
    """One message over the API, its whole SSE stream read; the response (status, body)."""
    body = {"content": content, "parameters": {"temperature": 0, **parameters}}
    with account.client.stream("POST", f"/api/v1/conversations/{conversation}/messages", json=body) as response:
        response.read()
    return response
