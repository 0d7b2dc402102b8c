"""Driving `evolink-mcp` as subprocesses: the command, a clean environment, ports, polling, results."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent
from PIL import Image

from process_support import child_env, evolink_argv, free_port, stop  # noqa: F401  (re-exported for the tests here)

START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
TASK_SECONDS = "0.05"
SECRET_KEY = "sk-test-SECRET-7f3c9a1e5b2d4c6e8a0f"
MCP_TOKEN = "mcp-token-3b8e1d9f4a6c2e7b"
TOOLS = {
    "generate_image",
    "check_task",
    "estimate_cost",
    "check_balance",
    "upload_file",
    "list_models",
    "list_files",
    "delete_file",
    "list_tasks",
    "upscale_image",
    "remove_background",
}


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], errlog: Path, *args: str, seconds: float = CALL_TIMEOUT
) -> AsyncIterator[Client]:
    """The SDK's stdio client (which spawns the server on pipes) on `evolink-mcp *args`; stderr to `errlog`; the
    whole session bounded by `seconds`."""
    command, *argv = evolink_argv(*args)
    params = StdioServerParameters(command=command, args=argv, env=env)
    with errlog.open("w") as log, anyio.fail_after(seconds):
        async with Client(stdio_client(params, errlog=log)) as client:
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


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until anything answers; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            httpx2.get(url, timeout=2.0)
            return
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered at {url}:\n{log.read_text(errors='replace')}") from None
            time.sleep(0.05)


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
