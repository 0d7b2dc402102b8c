"""`evolink-mcp [--sandbox]` over stdio, spawned the way desktop clients spawn it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import ByteReceiveStream
from transport_support import (
    CALL_TIMEOUT,
    SECRET_KEY,
    TASK_SECONDS,
    TOOLS,
    ProgressLog,
    assert_image_saved,
    child_env,
    evolink_argv,
    free_port,
    jsonrpc_line,
    stdio_session,
    text_of,
    write_png,
)

from evolink_mcp.sandbox import SandboxServer
from process_support import INITIALIZE_PARAMS

pytestmark = pytest.mark.anyio


def sandbox_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a client config would set: an output folder and a quick sandbox (HOME keeps defaults in tmp)."""
    same_code = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return {
        **same_code,
        "HOME": str(tmp_path / "home"),
        "EVOLINK_OUTPUT_DIR": str(tmp_path / "out"),
        "EVOLINK_STATE_DIR": str(tmp_path / "state"),
        "EVOLINK_SANDBOX_TASK_SECONDS": TASK_SECONDS,
        **extra,
    }


async def test_the_stdio_server_lists_every_tool(tmp_path: Path) -> None:
    async with stdio_session(sandbox_env(tmp_path), tmp_path / "stderr.log", "--sandbox") as client:
        tools = await client.list_tools()

    assert {tool.name for tool in tools.tools} == TOOLS


@pytest.mark.slow
async def test_generate_image_over_stdio_saves_the_image_and_reports_progress(
    tmp_path: Path, progress: ProgressLog
) -> None:
    async with stdio_session(sandbox_env(tmp_path), tmp_path / "stderr.log", "--sandbox") as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a red fox", "size": "16:9"}, progress_callback=progress
        )

    path = assert_image_saved(result, tmp_path / "out")
    assert path.with_name(path.stem.removesuffix("_1") + ".json").is_file()  # the sidecar
    progress.assert_ran_to_completion()


class Lines:
    """Reads a byte stream one line at a time, keeping every line read."""

    def __init__(self, stream: ByteReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.read: list[bytes] = []

    async def next(self) -> bytes | None:
        while b"\n" not in self.buffer:
            try:
                self.buffer += await self.stream.receive()
            except anyio.EndOfStream:
                rest, self.buffer = self.buffer, b""
                if rest:
                    self.read.append(rest)
                return rest or None
        line, _, self.buffer = self.buffer.partition(b"\n")
        self.read.append(line)
        return line

    async def until_response(self, request_id: int) -> dict[str, Any]:
        while (line := await self.next()) is not None:
            message = json.loads(line)
            if message.get("id") == request_id and "method" not in message:
                return dict(message)
        raise AssertionError(f"stdout ended before the response to request {request_id}")


@pytest.mark.slow
async def test_stdout_carries_only_json_rpc_messages_from_start_to_exit_even_at_debug_level(
    tmp_path: Path,
) -> None:
    env = child_env(
        tmp_path / "home",
        EVOLINK_OUTPUT_DIR=str(tmp_path / "out"),
        EVOLINK_SANDBOX_TASK_SECONDS=TASK_SECONDS,
        EVOLINK_LOG_LEVEL="DEBUG",
    )
    generate = {"name": "generate_image", "arguments": {"prompt": "a fox"}, "_meta": {"progressToken": "p1"}}
    with (tmp_path / "stderr.log").open("wb") as errlog, anyio.fail_after(CALL_TIMEOUT):
        process = await anyio.open_process(evolink_argv("--sandbox"), env=env, stderr=errlog)
        try:
            assert process.stdin is not None and process.stdout is not None
            stdout = Lines(process.stdout)
            await process.stdin.send(jsonrpc_line(1, "initialize", INITIALIZE_PARAMS))
            await stdout.until_response(1)
            await process.stdin.send(jsonrpc_line(None, "notifications/initialized"))
            await process.stdin.send(jsonrpc_line(2, "tools/call", generate))
            called = await stdout.until_response(2)
            await process.stdin.aclose()  # what a client does to stop the server
            while await stdout.next() is not None:
                pass
            exit_code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                with anyio.CancelScope(shield=True):
                    await process.wait()

    messages = [json.loads(line) for line in stdout.read]  # raises on anything that is not JSON
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    assert called["result"]["isError"] is False
    assert any(m.get("method") == "notifications/progress" for m in messages)
    assert exit_code == 0
    assert "DEBUG" in (tmp_path / "stderr.log").read_text()  # the logs went to stderr, at their most talkative


async def test_without_a_key_tools_are_listed_and_generate_image_says_how_to_set_evolink_api_key(
    tmp_path: Path,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # if anything were sent, it would fail differently
    env = sandbox_env(tmp_path, EVOLINK_BASE_URL=nowhere, EVOLINK_FILES_BASE_URL=nowhere)

    async with stdio_session(env, tmp_path / "stderr.log") as client:
        tools = await client.list_tools()
        result = await client.call_tool("generate_image", {"prompt": "a red fox"})

    assert {tool.name for tool in tools.tools} == TOOLS
    assert result.is_error
    assert "Set EVOLINK_API_KEY" in text_of(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
async def test_the_api_key_never_appears_in_what_the_stdio_server_prints_or_saves(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(api_key=SECRET_KEY)  # a completed generation proves the key was sent
    env = sandbox_env(
        tmp_path,
        EVOLINK_API_KEY=SECRET_KEY,
        EVOLINK_BASE_URL=sandbox.base_url,
        EVOLINK_FILES_BASE_URL=sandbox.base_url,
        EVOLINK_LOG_LEVEL="DEBUG",
    )
    reference = write_png(tmp_path / "reference.png")

    async with stdio_session(env, tmp_path / "stderr.log") as client:
        generated = await client.call_tool("generate_image", {"prompt": "a red fox", "image_urls": [str(reference)]})
        uploaded = await client.call_tool("upload_file", {"file_path": str(reference)})
        unknown = await client.call_tool("check_task", {"task_id": "task-that-does-not-exist"})

    assert_image_saved(generated, tmp_path / "out")
    assert not uploaded.is_error, text_of(uploaded)
    assert unknown.is_error
    stderr = (tmp_path / "stderr.log").read_text()
    assert "DEBUG" in stderr
    assert SECRET_KEY not in stderr
    for result in (generated, uploaded, unknown):
        assert SECRET_KEY not in result.model_dump_json()
    for saved in (tmp_path / "out").iterdir():
        assert SECRET_KEY.encode() not in saved.read_bytes()
