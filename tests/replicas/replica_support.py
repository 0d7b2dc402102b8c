"""Replicas of `evolink-mcp serve` as real processes on 127.0.0.1 sharing one PostgreSQL journal, one output folder
and one sandbox process; a client that spreads its requests over them as a load balancer would."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_session import CheckedClient
from process_support import child_env, evolink_argv, free_port, stop, wait_until_answering

EVENT_TIMEOUT = 30.0
API_KEY = "sk-replicas-SECRET-5c1e9a7f3b2d"
TOKEN = "replicas-token-8d2f6b1a9c4e"
LEASE_SECONDS = "1.5"  # a killed replica's tasks are adopted within this plus ADOPT_SECONDS
ADOPT_SECONDS = "0.3"


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    base_url: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no clean-up, no lease handed back."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Deployment:
    """What the replicas share: the journal's database, the output folder, the sandbox."""

    root: Path
    journal_url: str
    sandbox_url: str
    sandbox_log: Path
    output_dir: Path
    replicas: list[Process] = field(default_factory=list)

    def created_tasks(self) -> list[str]:
        """The sandbox's log lines of the paid POSTs that created a task."""
        return self._sandbox_lines("sandbox: created")

    def generation_posts(self) -> list[str]:
        """The sandbox's log lines of every generation POST, a repeated Idempotency-Key's included."""
        return self._sandbox_lines("sandbox: created", "sandbox: replayed")

    def _sandbox_lines(self, *marks: str) -> list[str]:
        lines = self.sandbox_log.read_text(errors="replace").splitlines()
        return [line for line in lines if any(mark in line for mark in marks)]

    def start_replica(self, name: str, **env: str) -> Process:
        port = free_port()
        home = self.root / name
        environment = child_env(
            home,
            EVOLINK_API_KEY=API_KEY,
            EVOLINK_BASE_URL=self.sandbox_url,
            EVOLINK_FILES_BASE_URL=self.sandbox_url,
            EVOLINK_JOURNAL_URL=self.journal_url,
            EVOLINK_OUTPUT_DIR=str(self.output_dir),
            EVOLINK_MCP_TOKEN=TOKEN,
            EVOLINK_JOURNAL_LEASE_SECONDS=LEASE_SECONDS,
            EVOLINK_JOURNAL_ADOPT_SECONDS=ADOPT_SECONDS,
            EVOLINK_LOG_LEVEL="DEBUG",
            **env,
        )
        log = self.root / f"{name}.log"
        argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(port))
        with log.open("wb") as out:
            process = subprocess.Popen(argv, env=environment, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        replica = Process(name, process, log, f"http://127.0.0.1:{port}")
        self.replicas.append(replica)
        wait_until_ready(f"{replica.base_url}/readyz", replica)
        return replica


def wait_until_ready(url: str, replica: Process) -> None:
    """Poll `url` until it answers 200; fail with the replica's log if it exits or never does."""
    wait_until_answering(url, replica.process, replica.log, healthy=True)


@contextmanager
def sandbox_process(root: Path, task_seconds: float) -> Iterator[tuple[str, Path]]:
    """`evolink-mcp sandbox` on a free port: (its URL, its log)."""
    port, log = free_port(), root / "sandbox.log"
    argv = evolink_argv("sandbox", "--port", str(port), "--task-seconds", str(task_seconds))
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=child_env(root / "sandbox-home"), stdout=out, stderr=out)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{base_url}/_sandbox/health", process, log, healthy=True)
        yield base_url, log
    finally:
        stop(process)


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer inside the client: each HTTP request goes to the next replica in turn."""

    def __init__(self, base_urls: list[str]) -> None:
        self._next = cycle([httpx2.URL(url) for url in base_urls])
        self._inner = httpx2.AsyncHTTPTransport()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = next(self._next)
        request.url = request.url.copy_with(host=target.host, port=target.port)
        request.headers["host"] = f"{target.host}:{target.port}"
        self.sent.append(f"{target.host}:{target.port}")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def session(*replicas: Process, mode: Any = "legacy") -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP whose requests go to `replicas` in turn (legacy mode: an initialize
    handshake, then the session's requests, which a stateful server would tie to the replica that answered it)."""
    transport = RoundRobin([r.base_url for r in replicas])
    timeout = httpx2.Timeout(30.0, read=60.0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport) as http,
        CheckedClient(streamable_http_client(f"{replicas[0].base_url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


async def wait_for(what: str, check: Callable[[], bool], within: float = EVENT_TIMEOUT) -> None:
    """Until `check()` holds (a file another process writes, its log line, its answer): bounded, failing with
    `what`. Another process's doings give no event to wait on: looked at every 50 ms."""
    try:
        with anyio.fail_after(within):
            while not check():  # noqa: ASYNC110
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within:g} s: {what}") from None
