"""Real servers for tests: uvicorn on a free loopback port in its own thread (its own event loop)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, start_timeout_s: float = 120) -> Iterator[str]:
    """Run an ASGI app (lifespan on) until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def round_robin_proxy(backends: list[str]) -> Iterator[str]:
    """A TCP proxy on loopback that sends each new connection to the next backend in turn: with
    clients that open a connection per request, consecutive requests alternate between workers
    (what a load balancer without sticky sessions does). Bytes pass through unbuffered (SSE)."""
    import asyncio

    targets = [url.removeprefix("http://").rsplit(":", 1) for url in backends]
    port = free_port()
    ready = threading.Event()
    state: dict[str, Any] = {"next": 0}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        host, target_port = targets[state["next"] % len(targets)]
        state["next"] += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(target_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    async def main(stop: asyncio.Event) -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await stop.wait()

    loop = asyncio.new_event_loop()
    stop_event: list[asyncio.Event] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        stop_event.append(asyncio.Event())
        loop.run_until_complete(main(stop_event[0]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop_event[0].set)
        thread.join(timeout=10)
