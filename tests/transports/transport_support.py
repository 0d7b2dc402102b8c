"""Driving `evolink-mcp` as subprocesses: the command, a clean environment, ports, polling, results."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent
from PIL import Image

from mcp_session import TOOLS as PUBLISHED_TOOLS
from mcp_session import CheckedClient
from process_support import (  # also for the tests here
    child_env,
    evolink_argv,
    free_port,
    stop,
    wait_until_answering,
)

CALL_TIMEOUT = 30.0
TASK_SECONDS = "0.05"
SECRET_KEY = "sk-test-SECRET-7f3c9a1e5b2d4c6e8a0f"
MCP_TOKEN = "mcp-token-3b8e1d9f4a6c2e7b"
TOOLS = set(PUBLISHED_TOOLS)


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], errlog: Path, *args: str, seconds: float = CALL_TIMEOUT
) -> AsyncIterator[Client]:
    """The SDK's stdio client (which spawns the server on pipes) on `evolink-mcp *args`; stderr to `errlog`; the
    whole session bounded by `seconds`."""
    command, *argv = evolink_argv(*args)
    params = StdioServerParameters(command=command, args=argv, env=env)
    with errlog.open("w") as log, anyio.fail_after(seconds):
        async with CheckedClient(stdio_client(params, errlog=log)) as client:
            yield client


def jsonrpc_line(request_id: int | None, method: str, params: dict[str, Any] | None = None) -> bytes:
    """One newline-delimited JSON-RPC message, as a client writes it to the server's stdin (no id: a
    notification)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        message["id"] = request_id
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode() + b"\n"


def write_png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 40, 40)).save(path, format="PNG")
    return path


@dataclass
class HttpServer:
    base_url: str
    port: int
    token: str
    output_dir: Path
    allowed_dir: Path
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def upstream_env(sandbox_url: str) -> dict[str, str]:
    """The settings that point a server at the sandbox at `sandbox_url`, with the test key."""
    return {"EVOLINK_API_KEY": SECRET_KEY, "EVOLINK_BASE_URL": sandbox_url, "EVOLINK_FILES_BASE_URL": sandbox_url}


@contextmanager
def serving(
    root: Path,
    *args: str,
    host: str = "127.0.0.1",
    log_name: str = "server.log",
    preexec_fn: Callable[[], None] | None = None,
    **evolink: str,
) -> Iterator[HttpServer]:
    """`evolink-mcp serve --transport streamable-http *args` on a free port, with `evolink` settings and its home,
    output folder (`out`) and log in `root`, once it answers; stopped at the end."""
    port = free_port()
    log = root / log_name
    env = child_env(root / "home", EVOLINK_OUTPUT_DIR=str(root / "out"), **evolink)
    argv = evolink_argv("serve", "--transport", "streamable-http", "--host", host, "--port", str(port), *args)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=preexec_fn
        )
    try:
        base_url = f"http://{host}:{port}"
        wait_until_answering(f"{base_url}/healthz", process, log)
        token = evolink.get("EVOLINK_MCP_TOKEN", "")
        yield HttpServer(base_url, port, token, root / "out", root / "allowed", log)
    finally:
        stop(process)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def assert_image_saved(result: CallToolResult, output_dir: Path) -> Path:
    """The call completed; its image is a PNG in `output_dir`, named in the text and structured content."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["status"] == "completed"
    path = Path(result.structured_content["images"][0]["path"])
    assert path.parent == output_dir
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert str(path) in text_of(result)
    return path


class ProgressLog:
    """A progress callback for `call_tool` that records every notification."""

    def __init__(self) -> None:
        self.updates: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.updates.append((progress, total, message))

    def assert_ran_to_completion(self) -> None:
        assert self.updates, "no progress notification arrived"
        values = [progress for progress, _, _ in self.updates]
        assert values == sorted(values), f"progress went backwards: {values}"
        assert values[0] < 100, f"nothing was reported before the end: {self.updates}"
        progress, total, message = self.updates[-1]
        assert (progress, total) == (100.0, 100.0)
        assert message and "completed" in message
