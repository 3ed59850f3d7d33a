"""The edges of the HTTP API: health, one error shape everywhere, body limit, request log lines, docs."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.backend.conftest import signup_and_login


@pytest.fixture(scope="module")
def server_overrides() -> dict[str, Any]:
    return {"max_image_bytes": 1024}  # body limit = this + 1 MiB


async def test_health_and_readiness(client: httpx.AsyncClient, live: Any) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True}

    async def model_down() -> bool:
        return False

    live.app.state.readiness_checks["model"] = model_down
    try:
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "not_ready"
        assert down.json()["checks"] == {"database": True, "model": False}
    finally:
        del live.app.state.readiness_checks["model"]


async def test_unknown_paths_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "요청한 항목을 찾을 수 없습니다."}}
    wrong_method = await client.put("/api/v1/conversations")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_oversized_bodies_are_413(client: httpx.AsyncClient) -> None:
    big = b"x" * (1024 * 1024 + 2048)
    resp = await client.post("/api/v1/auth/signup", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"y" * 65536

    streamed = await client.post(
        "/api/v1/auth/signup", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


async def test_one_log_line_per_request_without_secrets(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kovr.access"):
        user = await signup_and_login(client)
        resp = await client.get("/api/v1/users/me", headers={"X-Request-ID": "test-request-0001"})
    assert resp.headers["x-request-id"] == "test-request-0001"
    lines = [r.kovr for r in caplog.records if r.name == "kovr.access"]  # type: ignore[attr-defined]
    assert [line["path"] for line in lines] == [
        "/api/v1/auth/signup",
        "/api/v1/auth/token",
        "/api/v1/users/me",
    ]
    me_line = lines[-1]
    assert me_line["request_id"] == "test-request-0001"
    assert me_line["user_id"] == user["id"] and me_line["status"] == 200 and me_line["duration_ms"] >= 0
    everything = caplog.text + repr(lines)
    for secret in (user["password"], user["access_token"], user["refresh_token"]):
        assert secret not in everything


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in (
        "/api/v1/auth/signup",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/users/me",
        "/api/v1/users/me/password",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/messages",
        "/healthz",
        "/readyz",
    ):
        assert path in schema["paths"], path
    assert {"OAuth2PasswordBearer", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])
    assert (await client.get("/redoc")).status_code == 404  # ReDoc would load from a CDN


async def test_api_docs_load_everything_from_our_origin(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text and "http://" not in page.text
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css"),
                        ("swagger-favicon-32x32.png", "png")):
        assert f'"/static/vendor/{asset}"' in page.text
        resp = await client.get(f"/static/vendor/{asset}")
        assert resp.status_code == 200 and kind in resp.headers["content-type"] and len(resp.content) > 500
    assert "/openapi.json" in page.text
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and "oauth2" in redirect.text.lower()


async def test_baseline_security_headers(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/api/v1/nothing-here"):
        headers = (await client.get(path)).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
