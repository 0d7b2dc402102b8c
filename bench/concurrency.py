"""Concurrency: 100 concurrent generate_image calls that wait for their images, over streamable HTTP.

One `evolink-mcp serve --transport streamable-http` process; the sandbox runs in its own process so that the
server's memory and CPU are its own. Each call is a separate MCP session (100 agents), asks for progress
(as desktop clients do) and waits for its image: submit, poll, download, save, preview. Latency is counted
above the sandbox's own task time; the reference is one call alone on the same server, warm, just before. The
same is run again with previews off, to tell the image work from the rest.

The client is a minimal streamable-HTTP driver (JSON-RPC over POST on one keep-alive connection per session,
answers read from the SSE stream), so that the bench process's own CPU takes as little as it can from the
server's cores. CPU seconds of the server, the
sandbox and this process are reported: on a small machine they share the cores.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from common import (
    PROTOCOL,
    Row,
    cpu_seconds,
    http_server,
    memory_kib,
    mib,
    ms,
    percentile,
    sandbox_process,
)

CALLS = 100
TASK_SECONDS = 4.0  # the sandbox default (EVOLINK_SANDBOX_TASK_SECONDS)
TOKEN = "bench-token"
P99_TARGET = 1.5
RSS_TARGET = 250 * 1024 * 1024
CALL_TIMEOUT = 120.0
# One prompt for every call: the sandbox renders a picture once (a CDN serves stored files), so its CPU does
# not crowd out the server's on a small machine. The server still downloads, saves and previews every image.
PROMPT = "a lighthouse at dusk, watercolor"


class HttpSession:
    """One MCP session over streamable HTTP on one keep-alive connection: initialize, then tools/call answered
    on an SSE stream. HTTP/1.1 is written by hand: an HTTP client library cost 10-20 ms of CPU per session,
    taken from the two cores the server under test needs."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
        self.session_id: str | None = None
        self._next_id = 0
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _send(self, method: str, body: dict[str, Any] | None) -> tuple[asyncio.StreamReader, dict[str, str]]:
        """Send a request; (the connection's reader, the answer's headers)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        data = b"" if body is None else json.dumps(body).encode()
        head = [
            f"{method} {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Authorization: Bearer {TOKEN}",
            "Accept: application/json, text/event-stream",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
        ]
        if self.session_id:
            head += [f"mcp-session-id: {self.session_id}", f"mcp-protocol-version: {PROTOCOL}"]
        writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + data)
        status, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        if int(status.split()[1]) >= 400:
            raise RuntimeError(f"{method} {self.path}: {status}")
        self.session_id = headers.get("mcp-session-id", self.session_id)
        return reader, headers

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """The answer's body, read to its end so that the connection can carry the next request."""
        if "content-length" in headers:
            yield await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                yield (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        reader, headers = await self._send("POST", body)
        answers: list[dict[str, Any]] = []
        if headers.get("content-type", "").startswith("application/json"):
            answers = [json.loads(b"".join([chunk async for chunk in self._body(reader, headers)]))]
        else:
            pending = b""
            async for chunk in self._body(reader, headers):
                *events, pending = re.split(rb"\r?\n\r?\n", pending + chunk)
                for event in events:
                    data = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
                    if data and (message := json.loads(b"\n".join(data))).get("id") == request_id:
                        answers.append(message)
        if not answers or "result" not in answers[0]:
            raise RuntimeError(f"{method}: no result in {answers}")
        return dict(answers[0]["result"])

    async def _notify(self, method: str) -> None:
        reader, headers = await self._send("POST", {"jsonrpc": "2.0", "method": method})
        async for _ in self._body(reader, headers):
            pass

    async def open(self) -> None:
        await self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
        )
        await self._notify("notifications/initialized")

    def drop(self) -> None:
        """Close the connection but leave the session on the server, as a client that went away does."""
        if self._streams is not None:
            self._streams[1].close()

    async def close(self) -> None:
        if self._streams is None:
            return
        if self.session_id:
            reader, headers = await self._send("DELETE", None)
            async for _ in self._body(reader, headers):
                pass
        self._streams[1].close()


async def _generate(url: str, number: int) -> tuple[float, str, bool]:
    """(seconds, final status, whether an inline preview came) of one generate_image that waits, in its own
    session."""
    session = HttpSession(url)
    started = time.perf_counter()
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            await session.open()
            result = await session.request(
                "tools/call",
                {
                    "name": "generate_image",
                    "arguments": {"prompt": PROMPT, "wait_seconds": 90},
                    "_meta": {"progressToken": f"bench-{number}"},
                },
            )
        elapsed = time.perf_counter() - started
    finally:
        await session.close()
    status = "error" if result.get("isError") else result["structuredContent"]["status"]
    return elapsed, status, any(block["type"] == "image" for block in result["content"])


async def at_once(urls: list[str]) -> tuple[float, list[tuple[float, str, bool]]]:
    """CALLS calls at once, each to the next of `urls` in turn: (seconds from the first sent to the last answered,
    every outcome)."""
    outcomes: list[tuple[float, str, bool]] = []

    async def one(number: int) -> None:
        try:
            outcomes.append(await _generate(urls[number % len(urls)], number))
        except Exception as exc:
            outcomes.append((CALL_TIMEOUT, f"{type(exc).__name__}: {exc}", False))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for number in range(1, CALLS + 1):
            group.start_soon(one, number)
    return time.perf_counter() - started, outcomes


async def _drive(url: str) -> tuple[float, list[tuple[float, str, bool]]]:
    """(one call alone on a warm server, then every outcome of CALLS calls at once)."""
    for _ in range(2):  # the first call also pays one-time costs (TLS context, Pillow import, the first render)
        alone, status, _ = await _generate(url, 0)
        if status != "completed":
            raise RuntimeError(f"a single generate_image ended {status}")
    _, outcomes = await at_once([url])
    return alone, outcomes


@dataclass
class Scenario:
    alone: float
    outcomes: list[tuple[float, str, bool]]  # (seconds, status, previewed)
    idle_rss: int  # bytes
    peak_rss: int  # bytes
    cpu: tuple[float, float, float]  # seconds: server, sandbox, this (client) process

    @property
    def above(self) -> list[float]:
        return [seconds - TASK_SECONDS for seconds, status, _ in self.outcomes if status == "completed"]

    @property
    def previewed(self) -> int:
        return sum(previewed for _, _, previewed in self.outcomes)


def _scenario(home: Path, **env: str) -> Scenario:
    with (
        sandbox_process(home / "sandbox", TASK_SECONDS) as sandbox,
        http_server(home / "server", sandbox, TOKEN, **env) as (url, pid),
    ):
        idle_rss = memory_kib(pid)["VmRSS"] * 1024
        pids = (pid, sandbox.process.pid)
        before = (*map(cpu_seconds, pids), time.process_time())
        alone, outcomes = anyio.run(_drive, url)
        after = (*map(cpu_seconds, pids), time.process_time())
        peak_rss = memory_kib(pid)["VmHWM"] * 1024
    cpu = tuple(b - a for a, b in zip(before, after, strict=True))
    return Scenario(alone, outcomes, idle_rss, peak_rss, cpu)  # type: ignore[arg-type]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
        full = _scenario(Path(tmp) / "previews")
        bare = _scenario(Path(tmp) / "no-previews", EVOLINK_PREVIEW_MAX_BYTES="0")
    above = full.above
    failures = sorted({status for _, status, _ in full.outcomes if status != "completed"})
    p50, p99 = (percentile(above, 50), percentile(above, 99)) if above else (float("nan"), float("nan"))
    bare50, bare99 = (percentile(bare.above, 50), percentile(bare.above, 99)) if bare.above else (0.0, 0.0)
    alone = full.alone - TASK_SECONDS
    return [
        Row(
            f"{CALLS} concurrent generate_image, waiting (streamable HTTP): completed",
            f"{len(above)}/{len(full.outcomes)}",
            target="100%",
            met=len(above) == CALLS,
            note="; ".join(failures)[:200],
        ),
        Row(
            f"  latency above the sandbox's {TASK_SECONDS:g} s task time",
            f"p50 +{ms(p50)}, p99 +{ms(p99)}",
            f"one call alone: +{ms(alone)}",
            f"p99 {p99 / alone:.1f}x alone" if alone > 0 else "-",
            f"p99 <= +{P99_TARGET:g} s",
            p99 <= P99_TARGET,
            f"CPU s: server {full.cpu[0]:.1f}, sandbox {full.cpu[1]:.1f}, bench client {full.cpu[2]:.1f}; "
            f"{full.previewed}/{CALLS} results with an inline preview (the rest: server saturated, see README)",
        ),
        Row(
            "  server peak RSS",
            mib(full.peak_rss),
            mib(full.idle_rss) + " (idle, after start)",
            f"{full.peak_rss / full.idle_rss:.2f}x",
            f"<= {mib(RSS_TARGET)}",
            full.peak_rss <= RSS_TARGET,
        ),
        Row(
            "  same without previews (EVOLINK_PREVIEW_MAX_BYTES=0, info)",
            f"p50 +{ms(bare50)}, p99 +{ms(bare99)}; {len(bare.above)}/{len(bare.outcomes)} completed",
            f"one call alone: +{ms(bare.alone - TASK_SECONDS)}",
            note=f"peak RSS {mib(bare.peak_rss)}; CPU s: server {bare.cpu[0]:.1f}, sandbox {bare.cpu[1]:.1f}, "
            f"bench client {bare.cpu[2]:.1f}",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
