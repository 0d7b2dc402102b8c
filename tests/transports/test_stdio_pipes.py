"""The stdio server (the SDK's transport) on the wire: a clean wire whatever handlers and their children write,
exit on EOF, lines of any length, and stdout that is a file or stdin that is the null device."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from PIL import Image
from transport_support import (
    CALL_TIMEOUT,
    TASK_SECONDS,
    TOOLS,
    child_env,
    evolink_argv,
    jsonrpc_line,
    stdio_session,
    stop,
    text_of,
)

from process_support import INITIALIZE_PARAMS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # a server process per test: .ci/run's slow stage

EXIT_TIMEOUT = 10.0
STRAY_SERVER = Path(__file__).with_name("stray_output_server.py")


HANDSHAKE = jsonrpc_line(1, "initialize", INITIALIZE_PARAMS) + jsonrpc_line(None, "notifications/initialized")


def debug_env(tmp_path: Path) -> dict[str, str]:
    return child_env(
        tmp_path / "home",
        EVOLINK_OUTPUT_DIR=str(tmp_path / "out"),
        EVOLINK_SANDBOX_TASK_SECONDS=TASK_SECONDS,
        EVOLINK_LOG_LEVEL="DEBUG",
    )


@contextmanager
def sandbox_on_pipes(tmp_path: Path, stdout: IO[bytes] | int) -> Iterator[subprocess.Popen[bytes]]:
    """`evolink-mcp --sandbox` with stdin a pipe, stdout to `stdout` and stderr to `tmp_path/stderr.log`, stopped
    at the end: a client's wire, written and read by hand."""
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            evolink_argv("--sandbox"), env=debug_env(tmp_path), stdin=subprocess.PIPE, stdout=stdout, stderr=stderr
        )
    try:
        yield process
    finally:
        stop(process)


class RawStdio:
    """A server on pipes, spoken to in raw JSON-RPC lines; every line it writes to stdout is kept."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.lines: list[bytes] = []

    async def send(self, request_id: int | None, method: str, params: dict[str, Any] | None = None) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(jsonrpc_line(request_id, method, params))

    async def initialize(self) -> None:
        await self.send(1, "initialize", INITIALIZE_PARAMS)
        await self.response(1)
        await self.send(None, "notifications/initialized")

    async def response(self, request_id: int) -> dict[str, Any]:
        while True:
            line = await self.stdout.receive_until(b"\n", 1 << 24)
            self.lines.append(line)
            answer = json.loads(line)
            if answer.get("id") == request_id and "method" not in answer:
                return dict(answer)

    async def close_stdin_and_wait(self) -> int:
        """What a client does to stop the server: close stdin; then read stdout to its end and reap."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with anyio.fail_after(EXIT_TIMEOUT):
            try:
                while True:
                    self.lines.append(await self.stdout.receive_until(b"\n", 1 << 24))
            except anyio.IncompleteRead:
                assert self.stdout.buffer == b"", f"stdout ended mid-line: {self.stdout.buffer[:200]!r}"
            return await self.process.wait()

    def messages(self) -> list[dict[str, Any]]:
        """Every stdout line as JSON-RPC (raises on anything else)."""
        parsed = [json.loads(line) for line in self.lines]
        assert all(m.get("jsonrpc") == "2.0" for m in parsed), parsed
        return parsed


@asynccontextmanager
async def raw_stdio(argv: list[str], env: dict[str, str], errlog: Path) -> AsyncIterator[RawStdio]:
    with errlog.open("wb") as log:
        process = await anyio.open_process(argv, env=env, stderr=log)
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            yield RawStdio(process)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()


async def test_the_sdk_client_initializes_lists_and_calls_tools_over_pipes(tmp_path: Path) -> None:
    errlog = tmp_path / "stderr.log"
    async with stdio_session(debug_env(tmp_path), errlog, "--sandbox") as client:
        tools = await client.list_tools()
        models = await client.call_tool("list_models", {})
        unknown = await client.call_tool("check_task", {"task_id": "task-that-does-not-exist"})

    assert {tool.name for tool in tools.tools} == TOOLS
    assert not models.is_error and "gpt-image-2" in text_of(models)
    assert unknown.is_error


async def test_stray_output_of_a_handler_and_its_child_goes_to_stderr_and_stdin_reads_as_empty(
    tmp_path: Path,
) -> None:
    errlog = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as clients launch servers
    async with raw_stdio([sys.executable, str(STRAY_SERVER)], env, errlog) as server:
        await server.initialize()
        answers = []
        for request_id in (2, 3):  # the second call: the wire is still in step after the first
            await server.send(request_id, "tools/call", {"name": "scribble", "arguments": {}})
            answers.append(await server.response(request_id))
        exit_code = await server.close_stdin_and_wait()

    server.messages()  # every stdout line is JSON-RPC
    for answer in answers:
        assert answer["result"]["isError"] is False
        assert answer["result"]["content"][0]["text"] == "stdin gave ''"
    stderr = errlog.read_text()
    for stray in ("stray print\n", "stray write to fd 1", "stray child output", "child read ''", "left in the buffer"):
        assert stderr.count(stray) == 2, stray
    assert exit_code == 0


async def test_closing_stdin_stops_the_server_promptly_with_exit_code_0(tmp_path: Path) -> None:
    errlog = tmp_path / "stderr.log"
    async with raw_stdio(evolink_argv("--sandbox"), debug_env(tmp_path), errlog) as server:
        await server.initialize()
        await server.send(2, "tools/list")
        listed = await server.response(2)
        exit_code = await server.close_stdin_and_wait()  # fails after EXIT_TIMEOUT

    assert {tool["name"] for tool in listed["result"]["tools"]} == TOOLS
    assert [m.get("id") for m in server.messages()] == [1, 2]
    assert exit_code == 0


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: about width * height * 3 bytes."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_request_line_of_several_megabytes_round_trips(tmp_path: Path) -> None:
    image = noise_png(1200, 1000)
    assert len(image) > 3_000_000  # a request line of over 4 MB, many times the pipe's buffer

    async with stdio_session(debug_env(tmp_path), tmp_path / "stderr.log", "--sandbox") as client:
        uploaded = await client.call_tool(
            "upload_file", {"base64_data": base64.b64encode(image).decode(), "file_name": "noise.png"}
        )
        listed = await client.list_tools()  # and the session carries on

    assert not uploaded.is_error, text_of(uploaded)
    assert uploaded.structured_content is not None
    assert uploaded.structured_content["file_size"] == len(image)
    assert {tool.name for tool in listed.tools} == TOOLS


def read_lines_when_there(path: Path, count: int, process: subprocess.Popen[bytes]) -> list[bytes]:
    """The first `count` lines of `path` once it has them (polled: a file cannot be waited on)."""
    deadline = time.monotonic() + CALL_TIMEOUT
    while len(lines := path.read_bytes().splitlines(keepends=True)) < count or not lines[count - 1].endswith(b"\n"):
        assert process.poll() is None, f"the server exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} has {lines!r}"
        time.sleep(0.02)
    return lines[:count]


def test_stdout_that_is_a_file_is_served(tmp_path: Path) -> None:
    responses = tmp_path / "responses.jsonl"
    with responses.open("wb") as stdout, sandbox_on_pipes(tmp_path, stdout) as process:
        assert process.stdin is not None
        process.stdin.write(HANDSHAKE + jsonrpc_line(2, "tools/list"))
        process.stdin.flush()
        answers = [json.loads(line) for line in read_lines_when_there(responses, 2, process)]
        process.stdin.close()
        exit_code = process.wait(EXIT_TIMEOUT)

    assert [a["id"] for a in answers] == [1, 2]
    assert {tool["name"] for tool in answers[1]["result"]["tools"]} == TOOLS
    assert exit_code == 0


def test_stdin_from_the_null_device_ends_the_server_at_once(tmp_path: Path) -> None:
    errlog = tmp_path / "stderr.log"
    with errlog.open("wb") as stderr:
        done = subprocess.run(
            evolink_argv("--sandbox"),
            env=debug_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=CALL_TIMEOUT,
        )

    assert (done.returncode, done.stdout) == (0, b"")
