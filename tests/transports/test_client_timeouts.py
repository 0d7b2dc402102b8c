"""A client with a short call time-out (openai-agents' MCPServerStdio gives a call 5 s) on a long generation: it
learns the task id before it gives up, and its retry of the same request pays nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import MCPError
from mcp_types import REQUEST_TIMEOUT
from transport_support import ProgressLog, assert_image_saved, child_env, stdio_session, text_of, upstream_env

from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

CLIENT_TIMEOUT = 5.0  # openai-agents' MCPServerStdio default (client_session_timeout_seconds)
TASK = " [sandbox:duration=30]"


@pytest.mark.slow
async def test_a_client_that_gives_up_after_5_s_and_retries_pays_once_and_gets_the_same_task(
    tmp_path: Path, sandbox: SandboxServer, progress: ProgressLog
) -> None:
    env = child_env(tmp_path / "home", **upstream_env(sandbox.base_url), EVOLINK_OUTPUT_DIR=str(tmp_path / "out"))
    arguments = {"prompt": "a slow sunrise over the sea" + TASK, "size": "16:9"}

    async with stdio_session(env, tmp_path / "stderr.log", seconds=60.0) as client:
        with pytest.raises(MCPError) as gave_up:
            await client.call_tool(
                "generate_image", arguments, progress_callback=progress, read_timeout_seconds=CLIENT_TIMEOUT
            )
        retried = await client.call_tool("generate_image", arguments, read_timeout_seconds=50.0)

    assert gave_up.value.error.code == REQUEST_TIMEOUT
    posts = sandbox.state.requests("generations", "POST")
    assert len(posts) == 1
    task_id = retried.structured_content["task_id"] if retried.structured_content else None
    # What the client heard before it gave up names the task; the server's log says it too.
    assert progress.updates and f"task {task_id} submitted" in (progress.updates[0][2] or "")
    assert f"task {task_id} submitted" in (tmp_path / "stderr.log").read_text()
    assert_image_saved(retried, tmp_path / "out")
    assert "nothing new was sent" in text_of(retried)
