"""model_server input handling (issue 39): non-finite or out-of-range parameters, malformed bodies
(deep JSON, invalid UTF-8, lone surrogates) are TGI's 422 before the engine; an engine failure
while a job is being prefilled fails that job instead of leaving it waiting forever; the optional
shared token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from text_generation import AsyncClient
from text_generation.errors import GenerationError

import model_server.engine as engine_module
from model_server.build import build_service
from tests.model_server.conftest import PROMPT, model_server, model_settings

ROUTES = ("/generate", "/generate_stream", "/tokenize")


def _post(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, headers={"content-type": "application/json"}, timeout=20)


def _assert_tgi_422(response: httpx.Response) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.json()["error_type"] == "validation"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "1e-300"])
def test_non_finite_or_tiny_temperature_is_refused_before_the_engine(server_url: str, value: str) -> None:
    body = f'{{"inputs": "안녕", "parameters": {{"do_sample": true, "temperature": {value}, "max_new_tokens": 4}}}}'
    for path in ("/generate", "/generate_stream"):
        _assert_tgi_422(_post(server_url, path, body.encode()))
    for name in ("top_p", "typical_p", "repetition_penalty", "frequency_penalty"):
        other = f'{{"inputs": "안녕", "parameters": {{"{name}": 1e999, "max_new_tokens": 4}}}}'
        _assert_tgi_422(_post(server_url, "/generate", other.encode()))


def test_malformed_bodies_are_tgi_422(server_url: str) -> None:
    deep = b'{"inputs": "x", "parameters": {"grammar": ' + b'[' * 10_000 + b']' * 10_000 + b'}}'
    bad_utf8 = b'{"inputs": "\xff\xfe \xed\xa0\x80"}'
    lone = b'{"inputs": "a\\ud800b"}'
    lone_stop = b'{"inputs": "a", "parameters": {"stop": ["\\udc00"]}}'
    for path in ROUTES:
        for body in (deep, bad_utf8, lone, lone_stop):
            _assert_tgi_422(_post(server_url, path, body))
    # A valid surrogate pair is an ordinary character.
    assert _post(server_url, "/tokenize", b'{"inputs": "\\ud83d\\ude00"}').status_code == 200


async def test_a_failure_while_prefilling_fails_that_job(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first token's choice fails (a sampler error, as NaN probabilities gave): the job being
    prefilled gets an error at once, and the engine serves the next request."""
    settings = model_settings(tiny_model_dir, tmp_path)
    service = build_service(settings)
    real_choose = engine_module.choose  # type: ignore[attr-defined]  # patched where the engine looks it up
    broken = {"on": True}

    def choose(*args: Any, **kwargs: Any) -> tuple[int, float]:
        if broken["on"]:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        return real_choose(*args, **kwargs)

    monkeypatch.setattr(engine_module, "choose", choose)
    try:
        with model_server(settings, service=service) as url:
            client = AsyncClient(url, timeout=20)  # a hang fails here as a timeout
            with pytest.raises(GenerationError, match="probability tensor"):
                await client.generate(PROMPT, max_new_tokens=4, do_sample=True, seed=1)
            broken["on"] = False
            healthy = await client.generate(PROMPT, max_new_tokens=3, do_sample=True, seed=1)
            assert healthy.details.generated_tokens == 3
    finally:
        service.engine.close()


@pytest.fixture(scope="module")
def token_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = model_settings(tiny_model_dir, tmp_path_factory.mktemp("token"), model_server_token="s3cret-token")
    with model_server(settings) as url:
        yield url


def test_the_shared_token_is_required_when_set(token_url: str) -> None:
    body = b'{"inputs": "hi", "parameters": {"max_new_tokens": 2}}'
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-token"}):
        for path in ("/generate", "/tokenize"):
            refused = httpx.post(f"{token_url}{path}", content=body, headers=headers, timeout=20)
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.json()["error_type"] == "authentication"
        assert httpx.get(f"{token_url}/info", headers=headers, timeout=20).status_code == 401
    assert httpx.get(f"{token_url}/health", timeout=20).status_code == 200  # liveness probes stay open
    good = {"authorization": "Bearer s3cret-token"}
    assert httpx.post(f"{token_url}/generate", content=body, headers=good, timeout=60).status_code == 200
    assert httpx.get(f"{token_url}/info", headers=good, timeout=20).status_code == 200


async def test_the_web_app_sends_the_token(token_url: str) -> None:
    from backend.chat.model_client import ModelClient
    from backend.core.errors import AppError

    with_token = ModelClient(token_url, timeout_s=20, stall_timeout_s=20, token="s3cret-token")
    without = ModelClient(token_url, timeout_s=20, stall_timeout_s=20)
    try:
        assert await with_token.count_tokens("안녕하세요") > 0
        assert (await with_token.info()).max_input_tokens == 200
        with pytest.raises(AppError):
            await without.count_tokens("안녕하세요")
    finally:
        await with_token.aclose()
        await without.aclose()
