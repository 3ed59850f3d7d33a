"""The model_server HTTP app: TGI's routes, bodies, status codes and SSE framing.

POST /generate, /generate_stream and / (TGI's compat route, used by the `text-generation`
client), GET /info, /health, /metrics, POST /tokenize. Errors before output are TGI's JSON
{"error", "error_type"} with 422/424/429; errors after a stream started are one SSE event of the
same shape. With `tgi_upstream_url` set, requests without images are forwarded to that TGI.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from kovr import __version__
from kovr.settings import Settings
from model_server.engine import Overloaded
from model_server.prepare import has_images
from model_server.service import GenerationError, ModelService, Submitted
from model_server.upstream import Upstream
from model_server.wire import CompatGenerateRequest, GenerateRequest, Info, WireValidationError

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0  # axum's default KeepAlive interval, which TGI uses
SSE_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


def error(status: int, message: str, error_type: str) -> JSONResponse:
    return JSONResponse({"error": message, "error_type": error_type}, status_code=status)


def create_model_app(
    settings: Settings,
    *,
    service: ModelService | None = None,
    upstream: Upstream | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> FastAPI:
    """The app; without `service` the model named by settings is loaded at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = service is None and (settings.tgi_upstream_url is None or settings.vr_checkpoint is not None)
        app.state.service = service
        if owned:
            from model_server.build import build_service

            app.state.service = await asyncio.to_thread(build_service, settings)
        if app.state.service is not None and not app.state.service.engine.alive:
            app.state.service.engine.start()
        app.state.upstream = upstream or (
            Upstream(settings.tgi_upstream_url, settings.model_server_timeout_s) if settings.tgi_upstream_url else None
        )
        try:
            yield
        finally:
            if app.state.upstream is not None and upstream is None:
                await app.state.upstream.aclose()
            if owned:
                await asyncio.to_thread(app.state.service.engine.close)

    app = FastAPI(title="KoVR model_server (TGI-compatible)", version=__version__, lifespan=lifespan)
    if settings.model_server_token is not None:
        app.add_middleware(TokenMiddleware, token=settings.model_server_token.get_secret_value())
    app.state.keepalive_s = keepalive_s
    app.state.settings = settings
    _add_error_handlers(app)
    _add_generation_routes(app)
    _add_info_routes(app)
    return app


class TokenMiddleware:
    """With KOVR_MODEL_SERVER_TOKEN set, every request but /health (liveness probes) must carry
    `Authorization: Bearer <token>`: in a compose stack anything on the network could reach us."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self.expected):
                response = error(401, "Unauthorized: this model server needs its token", "authentication")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WireValidationError)
    async def _validation(_: Request, exc: WireValidationError) -> JSONResponse:
        status = 413 if isinstance(exc, PayloadTooLarge) else 422
        return error(status, f"Input validation error: {exc}", "validation")

    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return error(429, str(exc), "overloaded")

    @app.exception_handler(GenerationError)
    async def _generation(_: Request, exc: GenerationError) -> JSONResponse:
        return error(424, str(exc), "generation")


class PayloadTooLarge(WireValidationError):
    """A body over the payload limit (TGI: 413, like its --payload-limit)."""


def payload_limit(settings: Settings) -> int:
    """2 MB of text (TGI's default) plus room for four images of the allowed size, base64-encoded."""
    return 2 * 1024 * 1024 + 4 * (settings.max_image_bytes * 4 // 3 + 4)


async def _read_body(request: Request, model: type[GenerateRequest]) -> tuple[GenerateRequest, bytes]:
    """The request body as wire type; malformed JSON or fields become TGI's 422 validation error."""
    limit = payload_limit(request.app.state.settings)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise WireValidationError("request body is not valid UTF-8") from None
    try:
        body = model.model_validate(json.loads(text, parse_constant=_no_constant))
    except json.JSONDecodeError as exc:
        raise WireValidationError(f"request body is not valid JSON: {exc.msg}") from None
    except RecursionError:  # nesting deeper than the parser's stack: never a real request
        raise WireValidationError("request body is nested too deeply") from None
    except ValidationError as exc:
        raise WireValidationError(_describe(exc)) from None
    for name, value in (("inputs", body.inputs), *(("stop", s) for s in body.parameters.stop)):
        if not _is_unicode(value):
            raise WireValidationError(f"`{name}` is not valid Unicode (lone surrogate)")
    return body, bytes(raw)


def _no_constant(name: str) -> float:
    """JSON has no NaN or Infinity; Python's parser would accept them."""
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown field `{where}`")
        else:
            problems.append(f"`{where}`: {err['msg']}")
    return "; ".join(problems)


def _service(request: Request) -> ModelService:
    service: ModelService | None = request.app.state.service
    if service is None:
        raise WireValidationError(
            "images are not supported: 이 모델 서버는 이미지를 지원하지 않습니다 (no local model configured)"
        )
    return service


def _upstream(request: Request) -> Upstream:
    """The TGI that serves when no local model is loaded (create_model_app has one or the other)."""
    upstream: Upstream = request.app.state.upstream
    return upstream


def _forward_target(request: Request, body: GenerateRequest) -> Upstream | None:
    upstream: Upstream | None = request.app.state.upstream
    if upstream is None or has_images(body.inputs):
        return None
    return upstream


def _add_generation_routes(app: FastAPI) -> None:
    @app.post("/generate")
    async def generate(request: Request) -> Response:
        body, raw = await _read_body(request, GenerateRequest)
        if upstream := _forward_target(request, body):
            return await upstream.forward("POST", "/generate", raw)
        return await _generate(request, body, route="generate")

    @app.post("/generate_stream")
    async def generate_stream(request: Request) -> Response:
        body, raw = await _read_body(request, GenerateRequest)
        if upstream := _forward_target(request, body):
            return await upstream.forward("POST", "/generate_stream", raw)
        return await _stream(request, body, route="generate_stream")

    @app.post("/")
    async def compat_generate(request: Request) -> Response:
        body, raw = await _read_body(request, CompatGenerateRequest)
        assert isinstance(body, CompatGenerateRequest)
        if upstream := _forward_target(request, body):
            return await upstream.forward("POST", "/", raw)
        if body.stream:
            return await _stream(request, body, route="compat_stream")
        response = await _generate(request, body, route="compat")
        # TGI wraps the compat route's answer in a list (api-inference's shape).
        return Response(b"[" + bytes(response.body) + b"]", media_type="application/json")


async def _submit(request: Request, body: GenerateRequest, route: str) -> tuple[ModelService, Submitted]:
    service = _service(request)
    try:
        return service, await service.submit(body)
    except WireValidationError:
        service.metrics.requests.labels(route, "validation").inc()
        raise
    except Overloaded:
        service.metrics.requests.labels(route, "overloaded").inc()
        raise


async def _generate(request: Request, body: GenerateRequest, route: str) -> JSONResponse:
    service, sub = await _submit(request, body, route)
    try:
        result = await service.generate(sub)
    except GenerationError:
        service.metrics.requests.labels(route, "generation").inc()
        raise
    service.metrics.requests.labels(route, "success").inc()
    return JSONResponse(result.to_wire())


async def _stream(request: Request, body: GenerateRequest, route: str) -> StreamingResponse:
    if body.parameters.decoder_input_details:
        raise WireValidationError("`decoder_input_details` == true is not supported when streaming tokens")
    service, sub = await _submit(request, body, route)
    keepalive: float = request.app.state.keepalive_s
    return StreamingResponse(
        _sse(service, sub, route, keepalive), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _sse(service: ModelService, sub: Submitted, route: str, keepalive_s: float) -> AsyncIterator[bytes]:
    """TGI's framing: `data:{json}` events, `:` keep-alive comments, errors as one last event."""
    outcome = "cancelled"
    events = service.events(sub)
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(anext(events))
            while not (await asyncio.wait({pending}, timeout=keepalive_s))[0]:
                yield b":\n\n"
            try:
                event = pending.result()
            except StopAsyncIteration:
                break
            yield b"data:" + event.model_dump_json().encode() + b"\n\n"
        outcome = "success"
    except GenerationError as exc:
        outcome = "generation"
        yield b"data:" + json.dumps({"error": str(exc), "error_type": "generation"}).encode() + b"\n\n"
    finally:
        service.metrics.requests.labels(route, outcome).inc()
        sub.job.cancel()  # the client left (or we are done): free the slot before anything else
        if pending is not None and not pending.done():
            pending.cancel()
        # Shielded: when the client left, this task is being cancelled and must still clean up.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            await events.aclose()


def _add_info_routes(app: FastAPI) -> None:
    @app.get("/info")
    async def info(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await _info(request))
        except httpx.HTTPError as exc:
            return error(503, f"upstream TGI unreachable ({exc})", "healthcheck")

    @app.get("/health")
    async def health(request: Request) -> Response:
        service: ModelService | None = request.app.state.service
        if service is not None:
            if service.engine.alive:
                return Response(status_code=200)
            return error(503, "unhealthy", "healthcheck")
        return await _upstream(request).forward("GET", "/health")

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Response:
        body, raw = await _read_body(request, GenerateRequest)
        service: ModelService | None = request.app.state.service
        if service is None:
            return await _upstream(request).forward("POST", "/tokenize", raw)
        if not body.inputs:
            raise WireValidationError("`inputs` cannot be empty")
        tokens = await asyncio.to_thread(service.tokenize, body.inputs)
        return JSONResponse([t.model_dump() for t in tokens])

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        service: ModelService | None = request.app.state.service
        if service is None:
            return await _upstream(request).forward("GET", "/metrics")
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")


async def _info(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    service: ModelService | None = request.app.state.service
    upstream: Upstream | None = request.app.state.upstream
    if service is None:
        assert upstream is not None
        remote = await upstream.get_json("/info")
        remote.update(supports_images=False, is_demo=False, upstream=upstream.url)
        return remote
    loaded = service.loaded
    return Info(
        model_id=loaded.model_id,
        model_dtype=str(loaded.dtype).removeprefix("torch."),
        model_device_type=loaded.device.type,
        max_concurrent_requests=settings.max_concurrent_requests,
        max_input_tokens=settings.max_input_tokens,
        max_total_tokens=settings.max_total_tokens,
        version=__version__,
        supports_images=service.align is not None,
        image_prefix_tokens=service.align.num_prefix_tokens if service.align is not None else 0,
        is_demo=loaded.is_demo,
        prompt_template=loaded.template.to_json(),
        max_queue=settings.max_queue,
        upstream=upstream.url if upstream else None,
    ).model_dump(mode="json")
