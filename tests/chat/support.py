"""Helpers for the chat tests: a tiny Korean model, servers in threads, an SSE reader, accounts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kovr.prompt import KULLM
from kovr.settings import Settings, load_settings
from tests.servers import free_port as free_port  # re-exported for the chat tests
from tests.servers import serve_in_thread as serve_in_thread

TEST_SECRET = "chat-test-secret-" + "s" * 40

# The tiny model memorises these answers to these questions (in the KULLM template the chat uses).
QA = [
    ("안녕하세요? 자기소개를 해 주세요.",
     "안녕하세요! 저는 한국어 인공지능 비서 KoVR입니다. 궁금한 것을 한국어로 물어보시면 차근차근 답해 드릴게요."),
    ("세종대왕은 무엇을 만들었나요?",
     "세종대왕은 1443년에 훈민정음을 만들었습니다. 백성이 쉽게 글을 읽고 쓰도록 하려는 뜻이었습니다."),
]


def train_tiny_model(folder: Path) -> None:
    """A 2-layer GPT-NeoX with a byte-level BPE that has memorised QA (a few seconds on CPU)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from kovr.modeling.bpe import train_byte_level_bpe

    torch.manual_seed(0)
    torch.set_num_threads(1)
    texts = [KULLM.render(q) + a for q, a in QA]
    tokenizer = train_byte_level_bpe(texts * 5, vocab_size=400)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=1024, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    model = GPTNeoXForCausalLM(config)
    batch = [tokenizer(t + tokenizer.eos_token)["input_ids"] for t in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(120):
        ids = torch.tensor([batch[step % len(batch)]])
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    KULLM.save(folder)


def untrained_model(source: Path, folder: Path) -> None:
    """A random GPT-NeoX with the tiny model's tokenizer: greedy output rarely hits EOS, so a
    long request keeps the model server busy for seconds (overload tests)."""
    import torch
    from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(1)
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=192, num_hidden_layers=8, num_attention_heads=4,
        intermediate_size=384, max_position_embeddings=1024, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    KULLM.save(folder)


@dataclass
class StreamKnobs:
    """Shared with a running model server: slows its streamed chunks (a slow model or network)."""

    delay_s: float = 0.0


class SlowStreams:
    """ASGI wrapper that sleeps before each streamed body chunk of the model server."""

    def __init__(self, app: Any, knobs: StreamKnobs) -> None:
        self.app, self.knobs = app, knobs

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def slow_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("more_body") and self.knobs.delay_s:
                await asyncio.sleep(self.knobs.delay_s)
            await send(message)

        await self.app(scope, receive, slow_send)


def model_settings(model_dir: Path, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model": str(model_dir), "data_dir": data_dir, "device": "cpu", "max_concurrent_requests": 4,
        "max_queue": 8, "max_input_tokens": 600, "max_total_tokens": 1000, "max_new_tokens_limit": 400,
        "torch_threads": 1,
    }
    values.update(overrides)
    return load_settings(**values)


def backend_settings(mongo_uri: str, model_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "profile": "test", "mongodb_uri": mongo_uri, "mongodb_db": f"chat_{uuid.uuid4().hex[:8]}",
        "jwt_secret": TEST_SECRET, "data_dir": data_dir, "model_server_url": model_url,
        "chat_save_interval_s": 0.05, "chat_keepalive_s": 1.0, "max_new_tokens_limit": 400,
        "chat_default_max_new_tokens": 120, "chat_rate_limit": 1000, "signup_rate_limit_address": 10000,
    }
    values.update(overrides)
    return load_settings(**values)


@contextmanager
def backend(settings: Settings) -> Iterator[str]:
    from backend.app import create_app

    with serve_in_thread(create_app(settings)) as url:
        yield url


@dataclass
class SseEvent:
    event: str
    data: Any
    id: str | None


@dataclass
class SseReader:
    """Reads text/event-stream as the spec says: fields per line, events end at a blank line."""

    response: httpx.Response
    comments: int = 0
    _lines: Iterator[str] | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[SseEvent]:
        event, data, event_id = "message", list[str](), None
        for line in self.response.iter_lines():
            if line == "":
                if data:
                    raw = "\n".join(data)
                    yield SseEvent(event, raw if raw == "[DONE]" else json.loads(raw), event_id)
                event, data = "message", []
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value


@dataclass
class Account:
    client: httpx.Client
    user_id: str
    email: str
    password: str

    def conversation(self, title: str = "새 대화") -> str:
        response = self.client.post("/api/v1/conversations", json={"title": title})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/v1/conversations/{conversation_id}/messages", params={"limit": 100})
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


def sign_up(base_url: str, name: str = "테스터") -> Account:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    password = "비밀번호-password-1"
    # A connection per request: behind the test balancer consecutive requests alternate workers.
    client = httpx.Client(base_url=base_url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))
    response = client.post("/api/v1/auth/signup", json={"email": email, "password": password, "display_name": name})
    assert response.status_code == 201, response.text
    tokens = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    client.headers["Authorization"] = f"Bearer {tokens.json()['access_token']}"
    return Account(client, response.json()["id"], email, password)


def stream_message(account: Account, conversation_id: str, content: str, **body: Any) -> list[SseEvent]:
    with account.client.stream("POST", f"/api/v1/conversations/{conversation_id}/messages",
                               json={"content": content, **body}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(SseReader(response))


def joined_tokens(events: list[SseEvent]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "token")
