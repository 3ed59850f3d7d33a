"""The backend's one door to the model: a TGI server (model_server or stock TGI) over HTTP.

Streaming goes through the `text-generation` AsyncClient; /info and /tokenize, which that client
does not cover, through httpx. Every upstream failure becomes a :class:`AppError` with a stable
code, so the chat layer never sees aiohttp or TGI exception types.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from text_generation import AsyncClient
from text_generation import errors as tgi_errors
from text_generation.types import StreamResponse

from backend.chat.model_metrics import Snapshot
from backend.chat.model_metrics import parse as parse_metrics
from backend.core.errors import AppError

log = logging.getLogger("kovr.chat.model")

_OVERLOADED = (tgi_errors.OverloadedError, tgi_errors.RateLimitExceededError)
_REJECTED = (tgi_errors.ValidationError, tgi_errors.BadRequestError)
_NOT_READY = (tgi_errors.ShardNotReadyError, tgi_errors.NotFoundError)


@dataclass(frozen=True)
class ModelInfo:
    """What the chat layer needs from /info (TGI fields plus model_server's extras)."""

    model_id: str
    max_input_tokens: int
    max_total_tokens: int
    prompt_template: dict[str, Any] | None = None
    is_demo: bool = False
    supports_images: bool = False
    image_prefix_tokens: int = 0
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        total = int(data.get("max_total_tokens") or 2048)
        # Older TGI calls it max_input_length; stock TGI never sends the model_server extras.
        max_input = int(data.get("max_input_tokens") or data.get("max_input_length") or total // 2)
        template = data.get("prompt_template")
        return cls(
            model_id=str(data.get("model_id", "unknown")),
            max_input_tokens=max_input,
            max_total_tokens=total,
            prompt_template=template if isinstance(template, dict) else None,
            is_demo=bool(data.get("is_demo", False)),
            supports_images=bool(data.get("supports_images") or data.get("images_supported") or False),
            image_prefix_tokens=_prefix_tokens(data),
            raw=data,
        )


# CLIP ViT-L/14 at 224 px gives 256 patch embeddings: the cost of an image when /info is silent.
DEFAULT_IMAGE_PREFIX_TOKENS = 256


def _prefix_tokens(data: dict[str, Any]) -> int:
    given = data.get("image_prefix_tokens") or data.get("num_prefix_tokens")
    if given:
        return int(given)
    return DEFAULT_IMAGE_PREFIX_TOKENS if (data.get("supports_images") or data.get("images_supported")) else 0


def map_model_error(exc: BaseException) -> AppError:
    """One place that turns TGI client / transport failures into user-facing chat errors."""
    if isinstance(exc, AppError):
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, _OVERLOADED):
        return AppError("model_overloaded", detail)
    if isinstance(exc, _REJECTED):
        return AppError("model_rejected", detail)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, tgi_errors.ShardTimeoutError, httpx.TimeoutException)):
        return AppError("model_timeout", detail)
    # A stream cut mid-way (ClientPayloadError) means the model server went away, as a refused connection does.
    unreachable = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, httpx.TransportError, OSError)
    if isinstance(exc, _NOT_READY + unreachable):
        return AppError("model_unavailable", detail)
    return AppError("model_error", detail)


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def client_kwargs(self) -> dict[str, Any]:
        sampling = self.temperature is not None and self.temperature > 0
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": sampling,
            "temperature": self.temperature if sampling else None,
            # The TGI client refuses top_p == 1.0 (it means "off" anyway).
            "top_p": self.top_p if sampling and self.top_p is not None and self.top_p < 1.0 else None,
            "stop_sequences": list(self.stop),
            "seed": self.seed,
            "repetition_penalty": 1.1,
        }


class ModelClient:
    """Talks to one TGI-compatible server; /info is cached after the first success."""

    def __init__(self, base_url: str, timeout_s: float, stall_timeout_s: float, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.stall_timeout_s = stall_timeout_s
        auth = {"Authorization": f"Bearer {token}"} if token else {}  # KOVR_MODEL_SERVER_TOKEN
        self._tgi = AsyncClient(self.base_url, headers=auth)
        # A long answer may stream for minutes: bound the connect and each read, not the whole stream.
        self._tgi.timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout_s, 10.0),
                                                  sock_read=stall_timeout_s)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(min(timeout_s, 30.0)),
                                       headers=auth)
        self._info: ModelInfo | None = None
        self.previous_metrics: Snapshot | None = None
        self.last_metrics: Snapshot | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def info(self, refresh: bool = False) -> ModelInfo:
        if self._info is None or refresh:
            data = await self._get_json("/info")
            self._info = ModelInfo.from_json(data)
        return self._info

    @property
    def cached_info(self) -> ModelInfo | None:
        """The last /info seen, without a request (pages must not wait on the model server)."""
        return self._info

    async def healthy(self) -> bool:
        try:
            response = await self._http.get("/health", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def metrics(self) -> Snapshot:
        """The model server's /metrics, parsed; the reading before it stays in `last_metrics`."""
        try:
            response = await self._http.get("/metrics", timeout=5.0)
        except httpx.HTTPError as exc:
            raise map_model_error(exc) from exc
        if response.status_code != 200:
            raise _status_error(response)
        self.previous_metrics, self.last_metrics = self.last_metrics, parse_metrics(response.text)
        return self.last_metrics

    async def count_tokens(self, text: str) -> int:
        """Token count of a prompt as the served model's tokenizer sees it (TGI /tokenize)."""
        try:
            response = await self._http.post("/tokenize", json={"inputs": text})
        except httpx.HTTPError as exc:
            raise map_model_error(exc) from exc
        if response.status_code != 200:
            raise _status_error(response)
        return len(response.json())

    async def stream(self, prompt: str, params: GenerationParams) -> AsyncGenerator[StreamResponse, None]:
        """Tokens as they come; a silent upstream for longer than stall_timeout_s is a timeout.

        One rescheduled deadline for the whole stream (no task per token): keep-alive comments
        from the server do not count as progress, only tokens do.
        """
        loop = asyncio.get_running_loop()
        upstream = self._tgi.generate_stream(prompt, **params.client_kwargs())
        try:
            async with asyncio.timeout(self.stall_timeout_s) as deadline:
                async for item in upstream:
                    deadline.reschedule(None)  # disarmed while the consumer works on the item
                    yield item
                    deadline.reschedule(loop.time() + self.stall_timeout_s)
        except AppError:
            raise
        except Exception as exc:  # every upstream failure (and the stall timeout), mapped in one place
            raise map_model_error(exc) from exc
        finally:
            await _close_quietly(upstream)

    async def _get_json(self, path: str) -> dict[str, Any]:
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as exc:
            raise map_model_error(exc) from exc
        if response.status_code != 200:
            raise _status_error(response)
        data = response.json()
        if not isinstance(data, dict):
            raise AppError("model_error", f"{path} returned {type(data).__name__}")
        return data


def _status_error(response: httpx.Response) -> AppError:
    try:
        payload = response.json()
        message = str(payload.get("error", ""))
        payload = {"error": message, **({"error_type": payload["error_type"]} if "error_type" in payload else {})}
    except (ValueError, AttributeError):
        payload = {"error": response.text[:200]}
    return map_model_error(tgi_errors.parse_error(response.status_code, payload))


async def _close_quietly(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:  # closing a broken upstream must not hide the original error
        log.debug("closing the upstream stream failed", exc_info=True)
