"""Concurrency: 100 concurrent generate_image calls that wait for their images, over streamable HTTP.

One `evolink-mcp serve --transport streamable-http` process; the sandbox runs in its own process so that the
server's memory and CPU are its own. Each call is a separate MCP session (100 agents), asks for progress
(as desktop clients do) and waits for its image: submit, poll, download, save, preview. Latency is counted
above the sandbox's own task time; the reference is one call alone on the same server, just before. The
same is run again with previews off, to tell the image work from the rest.

The client is a minimal streamable-HTTP driver (JSON-RPC over POST, answers read from the SSE stream), so
that the bench process's own CPU does not count as the server's latency. CPU seconds of the server, the
sandbox and this process are reported: on a small machine they share the cores.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from common import (
    PROTOCOL,
    Row,
    child_env,
    cpu_seconds,
    evolink_argv,
    free_port,
    memory_kib,
    mib,
    ms,
    percentile,
    sandbox_process,
    stop,
    upstream_env,
    wait_until_answering,
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
    """One MCP session over streamable HTTP: initialize, then tools/call answered on an SSE stream."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.session_id: str | None = None
        self._next_id = 0

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        if self.session_id:
            headers.update({"mcp-session-id": self.session_id, "mcp-protocol-version": PROTOCOL})
        return headers

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        async with self.http.stream("POST", self.url, json=body, headers=self._headers()) as response:
            response.raise_for_status()
            self.session_id = response.headers.get("mcp-session-id", self.session_id)
            if response.headers.get("content-type", "").startswith("application/json"):
                message = json.loads(await response.aread())
                return dict(message["result"])
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    message = json.loads("\n".join(data))
                    data = []
                    if message.get("id") == request_id:
                        if "result" not in message:
                            raise RuntimeError(f"{method} failed: {message}")
                        return dict(message["result"])
        raise RuntimeError(f"{method}: the stream ended without an answer")

    async def open(self) -> None:
        await self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
        )
        answer = await self.http.post(
            self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self._headers()
        )
        answer.raise_for_status()

    async def close(self) -> None:
        if self.session_id:
            await self.http.delete(self.url, headers=self._headers())


async def _generate(http: httpx2.AsyncClient, url: str, number: int) -> tuple[float, str]:
    """(seconds, final status) of one generate_image that waits, in its own session."""
    session = HttpSession(http, url)
    started = time.perf_counter()
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
    await session.close()
    status = "error" if result.get("isError") else result["structuredContent"]["status"]
    return elapsed, status


async def _drive(url: str) -> tuple[float, list[tuple[float, str]]]:
    """(one call alone, then every outcome of CALLS calls at once)."""
    limits = httpx2.Limits(max_connections=CALLS * 2, max_keepalive_connections=CALLS * 2)
    async with httpx2.AsyncClient(limits=limits, timeout=CALL_TIMEOUT) as http:
        alone, status = await _generate(http, url, 0)
        if status != "completed":
            raise RuntimeError(f"a single generate_image ended {status}")
        outcomes: list[tuple[float, str]] = []

        async def one(number: int) -> None:
            try:
                outcomes.append(await _generate(http, url, number))
            except Exception as exc:
                outcomes.append((CALL_TIMEOUT, f"{type(exc).__name__}: {exc}"))

        async with anyio.create_task_group() as group:
            for number in range(1, CALLS + 1):
                group.start_soon(one, number)
    return alone, outcomes


@dataclass
class Scenario:
    alone: float
    outcomes: list[tuple[float, str]]
    idle_rss: int  # bytes
    peak_rss: int  # bytes
    cpu: tuple[float, float, float]  # seconds: server, sandbox, this (client) process

    @property
    def above(self) -> list[float]:
        return [seconds - TASK_SECONDS for seconds, status in self.outcomes if status == "completed"]


def _scenario(home: Path, **env: str) -> Scenario:
    with sandbox_process(home / "sandbox", TASK_SECONDS) as sandbox:
        port = free_port()
        log = home / "server.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(
                evolink_argv("serve", "--transport", "streamable-http", "--port", str(port), "--token", TOKEN),
                env=child_env(home / "server", **upstream_env(sandbox), **env),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_answering(f"http://127.0.0.1:{port}/healthz", server, log)
            idle_rss = memory_kib(server.pid)["VmRSS"] * 1024
            pids = (server.pid, sandbox.process.pid)
            before = (*map(cpu_seconds, pids), time.process_time())
            alone, outcomes = anyio.run(_drive, f"http://127.0.0.1:{port}/mcp")
            after = (*map(cpu_seconds, pids), time.process_time())
            peak_rss = memory_kib(server.pid)["VmHWM"] * 1024
        finally:
            stop(server)
    cpu = tuple(b - a for a, b in zip(before, after, strict=True))
    return Scenario(alone, outcomes, idle_rss, peak_rss, cpu)  # type: ignore[arg-type]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
        full = _scenario(Path(tmp) / "previews")
        bare = _scenario(Path(tmp) / "no-previews", EVOLINK_PREVIEW_MAX_BYTES="0")
    above = full.above
    failures = sorted({status for _, status in full.outcomes if status != "completed"})
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
            f"CPU s: server {full.cpu[0]:.1f}, sandbox {full.cpu[1]:.1f}, bench client {full.cpu[2]:.1f}",
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
