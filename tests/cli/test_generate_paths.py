"""`generate_image` (MCP) and `evolink-mcp generate` (CLI) are one use case: the same cases through both paths
end the same way — the spending cap, client_request_id and the journal alike."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import pytest
from cli_support import run_cli
from mcp.server.mcpserver import MCPServer

from evolink_mcp.journal import Journal
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.tools import Deps
from mcp_session import API_KEY, INSTANT

pytestmark = pytest.mark.anyio

TIGHT_CAP = 0.001  # below any model's credits


@dataclass
class Said:
    """What one generation ended with, whichever path it took."""

    ok: bool
    category: str | None = None  # of a refusal
    charged: str | None = None  # of a refusal: "no" or "unknown"
    text: str = ""


class GeneratePath(Protocol):
    state_dir: Path

    async def generate(self, prompt: str, *, request_id: str | None = None, cap: float | None = None) -> Said: ...


class ToolPath:
    """generate_image through an MCP client; a server per call over one state directory (as restarts are)."""

    def __init__(self, server_for: Callable[..., MCPServer[Deps]], connect: Any, state_dir: Path) -> None:
        self.server_for, self.connect, self.state_dir = server_for, connect, state_dir

    async def generate(self, prompt: str, *, request_id: str | None = None, cap: float | None = None) -> Said:
        arguments = {"prompt": prompt, **({"client_request_id": request_id} if request_id else {})}
        async with self.connect(self.server_for(max_credits_per_call=cap)) as mcp:
            result = await mcp.call("generate_image", arguments)
        if not result.is_error:
            return Said(ok=True, text=mcp.text(result))
        error = mcp.error(result)
        return Said(ok=False, category=error["category"], charged=error.get("charged"), text=mcp.text(result))


class CliPath:
    """`evolink-mcp generate` as a subprocess, against the same sandbox."""

    def __init__(self, env: dict[str, str], sandbox: SandboxServer, tmp_path: Path) -> None:
        self.state_dir = Path(env["EVOLINK_STATE_DIR"])
        self.env = {
            **env,
            "EVOLINK_API_KEY": API_KEY,
            "EVOLINK_BASE_URL": sandbox.base_url,
            "EVOLINK_FILES_BASE_URL": sandbox.base_url,
            "EVOLINK_OUTPUT_DIR": str(tmp_path / "cli-images"),
        }

    async def generate(self, prompt: str, *, request_id: str | None = None, cap: float | None = None) -> Said:
        env = {**self.env, **({"EVOLINK_MAX_CREDITS_PER_CALL": str(cap)} if cap else {})}
        args = ["generate", prompt, *(["--request-id", request_id] if request_id else [])]
        finished = await anyio.to_thread.run_sync(lambda: run_cli(env, *args))
        assert API_KEY not in finished.stdout + finished.stderr
        if finished.returncode == 0:
            return Said(ok=True, text=finished.stdout)
        assert finished.returncode in (2, 3), finished.stderr  # refused, or an error before any task
        category = "spending_cap" if "over the cap" in finished.stderr else finished.stderr.partition("(")[2]
        charged = "unknown" if "charged: unknown" in finished.stderr else "no"
        return Said(ok=False, category=category.partition(")")[0], charged=charged, text=finished.stderr)


@pytest.fixture(params=["tool", "cli"])
def path(
    request: pytest.FixtureRequest,
    server_for: Callable[..., MCPServer[Deps]],
    connect: Callable[..., AbstractAsyncContextManager[Any]],
    env: dict[str, str],
    sandbox: SandboxServer,
    tmp_path: Path,
) -> GeneratePath:
    if request.param == "tool":
        return ToolPath(server_for, connect, tmp_path / "state")
    return CliPath(env, sandbox, tmp_path)


async def task_of(path: GeneratePath, request_id: str) -> str | None:
    journal = Journal(path.state_dir)
    try:
        record = await journal.by_request_key(request_id)
    finally:
        journal.close()
    return None if record is None else record.task_id


async def test_over_the_spending_cap_both_paths_refuse_before_sending_anything(
    path: GeneratePath, sandbox: SandboxServer
) -> None:
    paid = await path.generate("a lighthouse" + INSTANT)  # the journal now knows what this model costs
    assert paid.ok, paid.text

    refused = await path.generate("another lighthouse" + INSTANT, cap=TIGHT_CAP)

    assert not refused.ok
    assert (refused.category, refused.charged) == ("spending_cap", "no")
    assert "over the cap of 0.001" in refused.text
    assert len(sandbox.state.requests("generations")) == 1


async def test_the_same_request_id_twice_gives_the_same_task_from_one_post_on_both_paths(
    path: GeneratePath, sandbox: SandboxServer
) -> None:
    first = await path.generate("a teapot" + INSTANT, request_id="teapot-1")
    again = await path.generate("a teapot" + INSTANT, request_id="teapot-1")

    assert first.ok and again.ok, first.text + again.text
    (posted,) = sandbox.state.requests("generations")
    assert posted.header("idempotency-key") == "teapot-1"
    assert await task_of(path, "teapot-1") == posted.task_id
    assert len(sandbox.state.requests("results")) == 1  # its image saved once


async def test_a_lost_answer_is_charged_unknown_and_the_retry_finds_the_task_with_one_paid_post_on_both_paths(
    path: GeneratePath, sandbox: SandboxServer
) -> None:
    sandbox.state.drop_next("generations", when="after")  # the task is created, its answer lost

    lost = await path.generate("a paper crane" + INSTANT, request_id="crane-1")
    retried = await path.generate("a paper crane" + INSTANT, request_id="crane-1")

    assert not lost.ok and (lost.category, lost.charged) == ("outcome_unknown", "unknown"), lost.text
    assert "crane-1" in lost.text  # how to retry without paying twice
    assert retried.ok, retried.text
    posts = sandbox.state.requests("generations")
    assert [p.header("idempotency-key") for p in posts] == ["crane-1", "crane-1"]
    assert len(sandbox.state.tasks) == 1  # one task, paid once
    assert await task_of(path, "crane-1") == next(iter(sandbox.state.tasks))
