"""Chat at scale: many concurrent SSE answers through `kovr serve`, against the same upstream called directly.

The upstream is a stand-in written for this bench: it speaks TGI's wire protocol (/info, /health,
/tokenize, /generate_stream) and sends `--tokens` Korean tokens per answer at a fixed cadence
(`--interval-ms`), so what is measured is the backend (and its embedded database), not a model.
It is a load source with a fixed clock, not a test double for behaviour.

Rows:
- load: N concurrent clients (one conversation each, `--rounds` answers in a row) through the backend,
  then N clients straight to the stand-in, same run; added TTFT and added inter-token gap percentiles
  are backend minus direct. Each (workers, N) on a fresh data dir (`kovr serve --workers W` on its
  embedded database).
- history: one user with 1k/10k/50k stored messages (20 per conversation) seeded into the embedded
  database; first-token time for that user and for a fresh user, the conversation list, a search.

The client is raw asyncio (one TCP connection per stream, chunked SSE parsed by hand); its CPU
seconds are reported per row so one can see it is not the bottleneck.

Usage: python bench/bench_chat_load.py [--levels 10,50,100,200,400] [--workers 1,2] [--rounds 3]
       [--history 1000,10000,50000] [--json out.json]
       python bench/bench_chat_load.py upstream --port P    (the stand-in alone)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from backend.core.clock import utcnow
from backend.db.embedded import EmbeddedMongo, free_port

# 64 Korean tokens' worth of text, cycled (syllables and short words, as a Korean model emits them).
PIECES = ("안녕", "하세요", ".", " 제주", "도는", " 한국", "의", " 남쪽", "에", " 있는", " 섬", "입니다",
          ".", " 바다", "와", " 한라", "산", "이", " 아름", "답", "고", ",", " 봄", "에는", " 유채", "꽃", "이",
          " 핍니다", ".")
STREAM_TIMEOUT_S = 30.0


# -- the stand-in upstream ----------------------------------------------------------------------
class StandIn:
    """TGI wire protocol on raw asyncio, HTTP/1.1 keep-alive, chunked SSE at a fixed cadence."""

    def __init__(self, tokens: int, interval_s: float) -> None:
        self.tokens, self.interval_s = tokens, interval_s

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                # TGI's `/` with "stream": true is what the text-generation client calls.
                if path in ("/generate_stream", "/") and method == "POST":
                    await self._stream(writer, json.loads(body or b"{}"))
                elif path == "/info":
                    self._json(writer, {"model_id": "bench-stand-in", "max_input_tokens": 1024,
                                        "max_total_tokens": 2048, "is_demo": False})
                elif path == "/tokenize":
                    text = json.loads(body or b"{}").get("inputs", "")
                    self._json(writer, [{"id": i, "text": "", "start": 0, "stop": 0}
                                        for i in range(max(1, len(text) // 2))])
                elif path == "/health":
                    self._json(writer, {})
                else:
                    self._json(writer, {"error": "not found"}, status="404 Not Found")
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _json(writer: asyncio.StreamWriter, data: Any, status: str = "200 OK") -> None:
        body = json.dumps(data).encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)

    async def _stream(self, writer: asyncio.StreamWriter, request: dict[str, Any]) -> None:
        limit = int(request.get("parameters", {}).get("max_new_tokens") or self.tokens)
        count = min(limit, self.tokens)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        loop = asyncio.get_running_loop()
        start, text = loop.time(), ""
        for i in range(count):
            await asyncio.sleep(max(0.0, start + (i + 1) * self.interval_s - loop.time()))
            piece = PIECES[i % len(PIECES)]
            text += piece
            last = i == count - 1
            item = {"token": {"id": i, "text": piece, "logprob": 0.0, "special": False},
                    "generated_text": text if last else None,
                    "details": {"finish_reason": "length", "generated_tokens": count, "seed": None} if last else None}
            frame = f"data:{json.dumps(item, ensure_ascii=False)}\n\n".encode()
            writer.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")


async def serve_stand_in(port: int, tokens: int, interval_s: float) -> None:
    server = await asyncio.start_server(StandIn(tokens, interval_s).handle, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


# -- the raw asyncio SSE client -------------------------------------------------------------------
@dataclass
class Stream:
    ok: bool = False
    ttft_ms: float | None = None
    gaps_ms: list[float] = field(default_factory=list)
    error: str = ""


async def _read_chunks(reader: asyncio.StreamReader, chunked: bool) -> Any:
    if not chunked:
        while data := await reader.read(65536):
            yield data
        return
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
        if size == 0:
            return
        yield await reader.readexactly(size)
        await reader.readexactly(2)


async def sse_request(port: int, path: str, body: dict[str, Any], headers: dict[str, str], direct: bool) -> Stream:
    """One POST whose answer is SSE; TTFT = first token event, gaps = between token events."""
    result = Stream()
    payload = json.dumps(body, ensure_ascii=False).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    started = time.perf_counter()
    last = None
    try:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(payload)}\r\nConnection: close\r\n{head}\r\n".encode() + payload)
                status_head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                if " 200 " not in status_head.split("\r\n", 1)[0]:
                    result.error = status_head.split("\r\n", 1)[0]
                    return result
                buffer = ""
                async for chunk in _read_chunks(reader, "chunked" in status_head.lower()):
                    buffer += chunk.decode()
                    buffer = buffer.replace("\r\n", "\n")
                    *frames, buffer = buffer.split("\n\n")
                    for frame in frames:
                        event, data = "message", ""
                        for line in frame.split("\n"):
                            if line.startswith("event:"):
                                event = line[6:].strip()
                            elif line.startswith("data:"):
                                data = line[5:].strip()
                        if not data:
                            continue
                        if direct or event == "token":
                            now = time.perf_counter()
                            if last is None:
                                result.ttft_ms = (now - started) * 1000
                            else:
                                result.gaps_ms.append((now - last) * 1000)
                            last = now
                            if direct and json.loads(data).get("generated_text") is not None:
                                result.ok = True
                        elif event == "done":
                            result.ok = True
                        elif event == "error":
                            result.error = data[:120]
            finally:
                writer.close()
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        result.error = result.error or type(exc).__name__
    return result


# -- kovr serve ------------------------------------------------------------------------------------
def _env(model_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOVR_")}
    env.update({"KOVR_MODEL_SERVER_URL": model_url, "KOVR_CHAT_RATE_LIMIT": "1000000",
                "KOVR_SIGNUP_RATE_LIMIT_ADDRESS": "100000", "KOVR_LOGIN_RATE_LIMIT": "100000",
                "KOVR_LOGIN_RATE_LIMIT_ADDRESS": "100000", "KOVR_LOG_LEVEL": "WARNING", **(extra or {})})
    return env


@contextmanager
def kovr_serve(data_dir: Path, model_url: str, workers: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`kovr serve --workers W` with its embedded database under data_dir, as deployed."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kovr", "serve", "--port", str(port), "--data-dir",
                                str(data_dir), "--workers", str(workers)], env=_env(model_url),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kovr serve did not start")
            time.sleep(0.2)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _accounts(port: int, count: int) -> list[dict[str, str]]:
    """Signed-in users: Authorization headers (and user ids)."""
    out = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for i in range(count):
            email, password = f"load-{i}-{random.randrange(10**9)}@example.com", "bench-password-1"
            r = await client.post("/api/v1/auth/signup", json={"email": email, "password": password,
                                                               "display_name": "벤치"})
            r.raise_for_status()
            token = (await client.post("/api/v1/auth/token", data={"username": email, "password": password})).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            me = (await client.get("/api/v1/users/me", headers=auth)).json()
            out.append({**auth, "_user_id": me["id"]})
    return out


async def _conversations(port: int, accounts: list[dict[str, str]], count: int) -> list[tuple[dict[str, str], str]]:
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        async def one(i: int) -> tuple[dict[str, str], str]:
            auth = {"Authorization": accounts[i % len(accounts)]["Authorization"]}
            async with sem:
                r = await client.post("/api/v1/conversations", json={"title": "bench"}, headers=auth)
            r.raise_for_status()
            return auth, r.json()["id"]
        return list(await asyncio.gather(*(one(i) for i in range(count))))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(streams: list[Stream]) -> dict[str, Any]:
    ttfts = [s.ttft_ms for s in streams if s.ok and s.ttft_ms is not None]
    gaps = [g for s in streams if s.ok for g in s.gaps_ms]
    errors = sorted({s.error for s in streams if not s.ok})
    return {"completed": sum(s.ok for s in streams), "failed": sum(not s.ok for s in streams),
            "ttft_p50": _pct(ttfts, 0.5), "ttft_p99": _pct(ttfts, 0.99), "gap_p99": _pct(gaps, 0.99),
            "errors": errors[:3]}


QUESTION = "제주도에서 가 볼 만한 곳을 알려 주세요."


async def _clients(n: int, rounds: int, one: Any) -> tuple[list[Stream], float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()

    async def client(i: int) -> list[Stream]:
        return [await one(i) for _ in range(rounds)]

    results = await asyncio.gather(*(client(i) for i in range(n)))
    return [s for r in results for s in r], time.process_time() - cpu0, time.perf_counter() - wall0


async def load_level(app_port: int, upstream_port: int, n: int, rounds: int, tokens: int,
                     server_pid: int) -> dict[str, Any]:
    accounts = await _accounts(app_port, min(n, 10))
    convs = await _conversations(app_port, accounts, n)
    body = {"content": QUESTION, "parameters": {"temperature": 0, "max_new_tokens": tokens}}
    await sse_request(app_port, f"/api/v1/conversations/{convs[0][1]}/messages", body, convs[0][0], False)  # warm

    def backend(i: int) -> Any:
        return sse_request(app_port, f"/api/v1/conversations/{convs[i][1]}/messages", body, convs[i][0], False)

    def direct(i: int) -> Any:
        return sse_request(upstream_port, "/generate_stream",
                           {"inputs": QUESTION, "parameters": {"max_new_tokens": tokens}}, {}, True)

    before = process_cpu(server_pid)
    b_streams, b_cpu, b_wall = await _clients(n, rounds, backend)
    idle_after_s = await database_idle_after(server_pid)  # what the answers left behind counts too
    after = process_cpu(server_pid)
    d_streams, d_cpu, d_wall = await _clients(n, rounds, direct)
    b, d = _summary(b_streams), _summary(d_streams)
    return {"streams": n, "backend": b, "direct": d,
            "added_ttft_p50": b["ttft_p50"] - d["ttft_p50"], "added_ttft_p99": b["ttft_p99"] - d["ttft_p99"],
            "added_gap_p99": b["gap_p99"] - d["gap_p99"],
            "database_idle_after_s": round(idle_after_s, 2),
            "client_cpu_pct": round(100 * b_cpu / b_wall, 1), "direct_client_cpu_pct": round(100 * d_cpu / d_wall, 1),
            **{f"{part}_cpu_ms_per_answer": round(1000 * (after[part] - before[part]) / len(b_streams), 1)
               for part in ("database", "backend")}}


# -- where the CPU goes -------------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo.extend(int(c) for c in task.read_text().split())
    return out


def process_cpu(root: int) -> dict[str, float]:
    """CPU seconds so far of `kovr serve` and its children, split into the database and the rest."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {"database": 0.0, "backend": 0.0}
    for pid in _descendants(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        out["database" if b"secantusd" in cmdline else "backend"] += (int(stat[11]) + int(stat[12])) / ticks
    return out


async def database_idle_after(server_pid: int, *, interval_s: float = 0.5, busy_share: float = 0.1,
                              limit_s: float = 60.0) -> float:
    """Seconds from now until the database process spends under `busy_share` of a core over an interval:
    the backlog a load left behind (saves, final writes) once its last stream ended."""
    started = time.perf_counter()
    last = process_cpu(server_pid)["database"]
    while (elapsed := time.perf_counter() - started) < limit_s:
        await asyncio.sleep(interval_s)
        now = process_cpu(server_pid)["database"]
        if now - last < busy_share * interval_s:
            return elapsed
        last = now
    return limit_s


# -- history rows --------------------------------------------------------------------------------------
WORDS = ("서울", "부산", "김치", "학교", "회사", "여행", "음식", "날씨", "공부", "친구", "가족", "영화", "음악", "운동",
         "커피", "도서관", "바다", "산", "시장", "병원", "기차", "버스", "사진", "주말", "계획")
PARTICLES = ("에서", "에", "는", "을", "를", "이", "가", "와", "도", "의", "으로")
RARE = "제주도"  # in about 1 message of 200: the search term
SEED_SPACING_S = 40  # 50k messages 40 s apart: 23 days of history
SEED_LAST_ACTIVE_S = 3600  # the heavy user's newest stored message: an hour before the bench
SEED_SESSION = 10_000
SEED_CACHE = "1G"  # the seeding server's only: `kovr serve` measures with its own 256M


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) + rng.choice(PARTICLES) for _ in range(rng.randint(6, 14))]
    if rng.random() < 0.005:
        words.insert(rng.randrange(len(words)), RARE + rng.choice(PARTICLES))
    return " ".join(words) + "."


def seed_history(data_dir: Path, user_id: str, count: int, start: int, newest: dt.datetime) -> None:
    """Messages `start`..`count` for one user, 20 per conversation (each a chain, its last message the
    shown leaf), written straight into the database with the repository's own document builders (so
    the stored shape is the one of the code under test). Conversation c's messages end
    `SEED_SPACING_S` * 20c before `newest`, 40 s apart: a history built up over weeks by a user
    active an hour ago, as a heavy user is, not one whose every message sits inside the last minute's
    rate window (which a real user's rate limit bounds). Ids carry their dates, as inserted ids do."""
    from bson import ObjectId
    from pymongo import MongoClient

    rng = random.Random(start)
    # A fresh server per SEED_SESSION messages: one server session inserting 40k messages into the
    # search index ran past 13 minutes (WiredTiger busy outside Python, 256 MB cache); with a 1 GB cache
    # and 10k per session, 50k took 285 to 346 s.
    for first in range(start, count, SEED_SESSION):
        with EmbeddedMongo(data_dir / "db", cache_size=SEED_CACHE) as mongo:
            db: Any = MongoClient(mongo.uri, retryWrites=False, tz_aware=True)["kovr"]
            _seed(db, ObjectId(user_id), newest, rng, first, min(count, first + SEED_SESSION))


def _dated_id(at: dt.datetime, rng: random.Random) -> Any:
    from bson import ObjectId

    return ObjectId(int(at.timestamp()).to_bytes(4, "big") + rng.randbytes(8))


def _seed(db: Any, uid: Any, newest: dt.datetime, rng: random.Random, start: int, count: int) -> None:
    from backend.db import conversations as conversations_repo
    from backend.db import messages as messages_repo

    for first in range(start, count, 1000):
        convs, messages = [], []
        for c in range(first // 20, min(count, first + 1000) // 20):
            title = f"대화 {c} " + rng.choice(WORDS)
            conv = conversations_repo.new_conversation(user_id=uid, title=title)
            ended = newest - dt.timedelta(seconds=SEED_SPACING_S * 20 * c)
            started = ended - dt.timedelta(seconds=SEED_SPACING_S * 19)
            conv["_id"] = _dated_id(started, rng)
            parent, at = None, started
            for k in range(20):
                at = started + dt.timedelta(seconds=SEED_SPACING_S * k)
                message = messages_repo.new_message(
                    conversation_id=conv["_id"], user_id=uid,
                    role="user" if k % 2 == 0 else "assistant",
                    content=" ".join(_sentence(rng) for _ in range(2)), parent_id=parent,
                    message_id=_dated_id(at, rng))
                message["created_at"] = message["updated_at"] = at
                messages.append(message)
                parent = message["_id"]
            conv.update(message_count=20, current_leaf_id=parent, created_at=started, updated_at=at)
            convs.append(conv)
        db.conversations.insert_many(convs)
        db.messages.insert_many([dict(m) for m in messages])


async def _timed_get(port: int, path: str, auth: dict[str, str], times: int) -> float:
    samples = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        for _ in range(times):
            t = time.perf_counter()
            r = await client.get(path, headers=auth)
            r.raise_for_status()
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def _ttft(port: int, auth: dict[str, str], conversation: str, times: int) -> float:
    body = {"content": QUESTION, "parameters": {"temperature": 0, "max_new_tokens": 8}}
    samples = []
    for _ in range(times):
        s = await sse_request(port, f"/api/v1/conversations/{conversation}/messages", body, auth, False)
        if s.ok and s.ttft_ms is not None:
            samples.append(s.ttft_ms)
    return statistics.median(samples) if samples else float("nan")


async def history_row(port: int, heavy: dict[str, str], size: int, times: int) -> dict[str, Any]:
    auth = {"Authorization": heavy["Authorization"]}
    fresh = (await _accounts(port, 1))[0]
    fresh_auth = {"Authorization": fresh["Authorization"]}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        page = (await client.get("/api/v1/conversations", params={"limit": 1}, headers=auth)).json()
        heavy_conv = page["items"][0]["id"]
        created = await client.post("/api/v1/conversations", json={"title": "bench"}, headers=fresh_auth)
        fresh_conv = created.json()["id"]
        created = await client.post("/api/v1/conversations", json={"title": "bench"}, headers=auth)
        heavy_new_conv = created.json()["id"]
    return {
        "messages": size,
        "ttft_heavy_ms": await _ttft(port, auth, heavy_conv, times),
        # the same user in a conversation as short as the fresh user's: what the stored history alone costs
        "ttft_heavy_new_ms": await _ttft(port, auth, heavy_new_conv, times),
        "ttft_fresh_ms": await _ttft(port, fresh_auth, fresh_conv, times),
        "list_ms": await _timed_get(port, "/api/v1/conversations?limit=20", auth, times),
        "search_ms": await _timed_get(port, f"/api/v1/conversations?limit=20&q={RARE}", auth, times),
        "search_common_ms": await _timed_get(port, "/api/v1/conversations?limit=20&q=여행", auth, times),
    }


# -- driver ---------------------------------------------------------------------------------------------
@contextmanager
def stand_in(tokens: int, interval_ms: float) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "upstream", "--port", str(port), "--tokens", str(tokens),
                                "--interval-ms", str(interval_ms)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RuntimeError("stand-in did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cpu, {platform.machine()}, python {platform.python_version()}",
                           "tokens": args.tokens, "interval_ms": args.interval_ms, "rounds": args.rounds,
                           "load": [], "history": []}
    with stand_in(args.tokens, args.interval_ms) as upstream:
        model_url = f"http://127.0.0.1:{upstream}"
        for workers in args.workers:
            for n in args.levels:
                with tempfile.TemporaryDirectory() as tmp, kovr_serve(Path(tmp), model_url, workers) as (port, proc):
                    row = {"workers": workers, "loadavg": _loadavg(),
                           **asyncio.run(load_level(port, upstream, n, args.rounds, args.tokens, proc.pid))}
                print(json.dumps(row, ensure_ascii=False), flush=True)
                out["load"].append(row)
        if args.history:
            with tempfile.TemporaryDirectory() as tmp:
                data_dir = Path(tmp)
                with kovr_serve(data_dir, model_url, 1) as (port, _):
                    heavy = asyncio.run(_accounts(port, 1))[0]
                seeded = 0
                newest = utcnow() - dt.timedelta(seconds=SEED_LAST_ACTIVE_S)
                for size in args.history:
                    t = time.perf_counter()
                    seed_history(data_dir, heavy["_user_id"], size, seeded, newest)
                    seeded = size
                    seed_s = time.perf_counter() - t
                    with kovr_serve(data_dir, model_url, 1) as (port, _):
                        row = {"loadavg": _loadavg(), "seed_s": round(seed_s, 1),
                               **asyncio.run(history_row(port, heavy, size, args.samples))}
                    print(json.dumps(row, ensure_ascii=False), flush=True)
                    out["history"].append(row)
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        parser.add_argument("upstream")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--tokens", type=int, default=64)
        parser.add_argument("--interval-ms", type=float, default=20.0)
        a = parser.parse_args()
        asyncio.run(serve_stand_in(a.port, a.tokens, a.interval_ms / 1000))
        return
    parser.add_argument("--levels", type=_ints, default=[10, 50, 100, 200, 400])
    parser.add_argument("--workers", type=_ints, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--history", type=_ints, default=[1000, 10000, 50000])
    parser.add_argument("--samples", type=int, default=5, help="repeats of each history measurement (median)")
    parser.add_argument("--json", type=Path, help="write all rows here too")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
