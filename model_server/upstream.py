"""Forwarding text-only requests to a real TGI, streamed through unchanged (status, headers, bytes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.responses import JSONResponse, Response, StreamingResponse

# Hop-by-hop and length headers are the proxy's own business; everything else passes through.
_DROP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class Upstream:
    def __init__(self, url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout_s, connect=10.0), transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def forward(self, method: str, path: str, body: bytes = b"") -> Response:
        request = self._client.build_request(
            method, path, content=body or None, headers={"content-type": "application/json"} if body else None
        )
        try:
            upstream = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"error": f"Request failed during generation: upstream TGI unreachable ({exc})",
                 "error_type": "generation"},
                status_code=424,
            )
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_HEADERS}
        return StreamingResponse(_relay(upstream), status_code=upstream.status_code, headers=headers)

    async def get_json(self, path: str) -> dict[str, object]:
        response = await self._client.get(path)
        response.raise_for_status()
        return dict(response.json())


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come; closed also when our client leaves mid-stream."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()
