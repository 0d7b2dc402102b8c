"""Fault tests' helpers: the sandbox and the stdio server as separate processes, and well-formed results.

Subprocesses get a clean environment (no EVOLINK_*/XDG_* of the developer), write their logs to files in
tmp, and are always stopped: the stdio server by the SDK's client on exit, the sandbox by `stop`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent, Tool
from pydantic import SecretStr

from evolink_mcp.evolink import RetryPolicy
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from evolink_mcp.tools import Deps
from mcp_session import CheckedClient, assert_valid_result
from process_support import clean_env, evolink_argv, free_port, stop, wait_until_answering

SECRET_KEY = "sk-test-faults-2c7e9a4f1b6d3e8a"
CALL_TIMEOUT = 30.0
RESUME_TIMEOUT = 30.0  # a restarted server finishing what its killed predecessor left
# The client's policy, shrunk: same attempts and rules, milliseconds of backoff, Retry-After up to 2 s honoured.
QUICK_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2.0, deadline=10.0)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def settings_for(sandbox: SandboxServer, root: Path, **overrides: Any) -> Settings:
    """Settings for an in-process server over the in-process sandbox, every directory in `root`."""
    values: dict[str, Any] = {
        "api_key": SecretStr(SECRET_KEY),
        "base_url": sandbox.base_url,
        "files_base_url": sandbox.base_url,
        "output_dir": root / "images",
        "state_dir": root / "state",
        "wait_seconds": 5.0,
        "preview_max_bytes": 20_000,
    }
    return Settings(**{**values, **overrides})


class Session:
    """A connected in-memory client whose every result is checked to be well formed; `deps` are the server's."""

    def __init__(self, client: Client, deps: Deps) -> None:
        self.client = client
        self.deps = deps
        self.tools: dict[str, Tool] = {}

    async def call(self, name: str, arguments: dict[str, Any], *, seconds: float = CALL_TIMEOUT) -> CallToolResult:
        if not self.tools:
            self.tools = {tool.name: tool for tool in (await self.client.list_tools()).tools}
        with anyio.fail_after(seconds):
            result = await self.client.call_tool(name, arguments)
        assert SECRET_KEY not in result.model_dump_json(), f"{name} leaked the API key"
        assert_well_formed(name, result, self.tools[name])
        return result


# -- the sandbox in its own process -------------------------------------------------------------------


class SandboxProcess:
    """`evolink-mcp sandbox` as a subprocess, scripted and inspected through its /_sandbox/ routes."""

    def __init__(self, root: Path, task_seconds: float) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = root / "sandbox.log"
        argv = evolink_argv("sandbox", "--port", str(self.port), "--task-seconds", str(task_seconds))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, env=clean_env(root / "home"), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_serving(self) -> None:
        wait_until_answering(f"{self.base_url}/_sandbox/health", self.process, self.log, healthy=True)

    def stop(self) -> None:
        stop(self.process)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx2.AsyncClient(base_url=self.base_url, timeout=5.0) as http:
            response = await http.request(method, f"/_sandbox/{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    async def reset(self) -> None:
        await self._control("POST", "reset")

    async def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        params = {"endpoint": endpoint} if endpoint else {}
        return (await self._control("GET", "requests", params=params))["requests"]

    async def add_fault(self, **fault: Any) -> None:
        await self._control("POST", "faults", json=fault)


# -- the stdio server, spawned the way desktop clients spawn it -----------------------------------------


def server_env(root: Path, sandbox_url: str) -> dict[str, str]:
    """What a client config would set to run `evolink-mcp` against a sandbox, every directory in `root`."""
    same_code = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return {
        **same_code,
        "HOME": str(root / "home"),
        "EVOLINK_API_KEY": SECRET_KEY,
        "EVOLINK_BASE_URL": sandbox_url,
        "EVOLINK_FILES_BASE_URL": sandbox_url,
        "EVOLINK_STATE_DIR": str(root / "state"),
        "EVOLINK_OUTPUT_DIR": str(root / "out"),
        "EVOLINK_LOG_LEVEL": "INFO",
    }


@dataclass
class StdioServer:
    client: Client
    pid: int
    errlog: Path


@asynccontextmanager
async def stdio_server(
    env: dict[str, str], root: Path, name: str, *, limits: str = "", seconds: float = 60.0
) -> AsyncIterator[StdioServer]:
    """`evolink-mcp` over stdio through the SDK's client, with its pid (a shell writes it, then execs).

    `limits` is shell run before the exec (e.g. `ulimit -f 512`); the whole session is bounded by `seconds`.
    """
    pidfile, errlog = root / f"{name}.pid", root / f"{name}.stderr.log"
    script = f'{limits}\necho $$ > "$1"; shift; exec "$@"'
    params = StdioServerParameters(
        command="/bin/sh", args=["-c", script, "sh", str(pidfile), *evolink_argv()], env=env, cwd=str(root)
    )
    with errlog.open("w") as log, anyio.fail_after(seconds):
        async with CheckedClient(stdio_client(params, errlog=log)) as client:
            yield StdioServer(client, int(pidfile.read_text()), errlog)


async def call_until_killed(server: StdioServer, arguments: dict[str, Any]) -> None:
    """A generate_image whose server is about to die: whatever the client makes of that, the test goes on."""
    with contextlib.suppress(Exception):  # the connection closing under the call is the point of the test
        await server.client.call_tool("generate_image", arguments)


T = TypeVar("T")


async def wait_for(check: Callable[[], T], *, seconds: float) -> T:
    """Poll `check()` (blocking, so run in a thread) until it returns something truthy; fail after `seconds`."""
    with anyio.fail_after(seconds):
        while True:
            if found := await anyio.to_thread.run_sync(check):
                return found
            await anyio.sleep(0.05)


# -- what the server left on disk ---------------------------------------------------------------------


def journal_row(state_dir: Path, request_key: str) -> dict[str, Any] | None:
    """The journal's row for `request_key`, read-only from outside the server; None if not (yet) there."""
    path = state_dir / "journal.sqlite3"
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1.0)) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM submissions WHERE request_key = ?", (request_key,)).fetchone()
    except sqlite3.Error:
        return None
    return dict(row) if row else None


def images_in(directory: Path) -> list[Path]:
    """Saved images (no sidecars, no temp files) in `directory`."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".png", ".jpg", ".webp") and p.is_file())


def is_png(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(8) == b"\x89PNG\r\n\x1a\n"


# -- what every tool result must be -------------------------------------------------------------------


def assert_well_formed(name: str, result: CallToolResult, tool: Tool) -> None:
    """A result any agent can read: text first; errors with category and next step, or the declared schema."""
    assert isinstance(result, CallToolResult), f"{name} returned {type(result).__name__}"
    assert result.content and isinstance(result.content[0], TextContent), f"{name}: no text block first"
    text = text_of(result)
    assert text.strip(), f"{name}: empty text"
    # An exception escaping the tool reaches the client only as this bare, generic text.
    assert text.strip() != f"Error executing tool {name}", f"{name} crashed (see the server log above)"
    assert_valid_result(name, result, tool)  # the one guard every session helper applies
    if result.is_error and name == "generate_image":
        error = (result.structured_content or {})["error"]
        assert error.get("charged") in ("no", "unknown"), f"a submission error must state charged: {error}"
        assert f"Charged: {error['charged']}" in text


def refused_locally(result: CallToolResult) -> bool:
    """The server refused the call itself: argument validation, or an invalid request it never sent."""
    if not result.is_error:
        return False
    error = (result.structured_content or {}).get("error", {})
    # An upstream refusal carries the request id of the answer it came in; ours has none.
    return error.get("category") in ("invalid_request", "spending_cap") and "request_id" not in error


def task_id_in(path: str) -> str | None:
    """The task id a /v1/tasks/ID or /results/ID/... path is about."""
    for prefix in ("/v1/tasks/", "/results/"):
        if path.startswith(prefix):
            return path.removeprefix(prefix).split("/")[0]
    return None


def not_about(requests: Iterable[Any], task_ids: set[str]) -> list[Any]:
    """Requests other than polls and downloads of `task_ids` (what background following does on its own)."""
    return [r for r in requests if task_id_in(r.path) not in task_ids]
