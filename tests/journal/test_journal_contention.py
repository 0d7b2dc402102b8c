"""A journal another process holds: the server says so clearly, keeps serving, and never loses a task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest
from journal_support import LockHolder
from mcp.server.mcpserver import MCPServer

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.images import ImageService
from evolink_mcp.journal import JOURNAL_FILE, Journal
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from evolink_mcp.tools import Deps
from mcp_session import INSTANT, until

pytestmark = pytest.mark.anyio

SHORT_LOCK_WAIT = 0.2


@pytest.fixture
def impatient_server(settings: Settings) -> MCPServer[Deps]:
    """The default server, but its journal waits only briefly for another process's lock."""
    deps = build_deps(settings, allowed_dirs=None)
    deps.service = ImageService(
        settings, deps.catalog, deps.client, Journal(settings.state_dir, timeout=SHORT_LOCK_WAIT)
    )
    return build_server(deps)


@pytest.fixture
def journal_file(state_dir: Path) -> Path:
    """A journal file as an earlier server left it."""
    journal = Journal(state_dir)
    assert journal.location == str(state_dir / JOURNAL_FILE)
    journal.close()
    return state_dir / JOURNAL_FILE


async def test_a_server_started_while_another_process_locks_the_journal_serves_and_refuses_generation_clearly(
    impatient_server: MCPServer[Deps],
    connect: Callable[..., AbstractAsyncContextManager[Any]],
    sandbox: SandboxServer,
    journal_file: Path,
    hold_lock: Callable[..., LockHolder],
) -> None:
    holder = await anyio.to_thread.run_sync(hold_lock, journal_file)

    async with connect(impatient_server) as mcp:
        listed = await mcp.call("list_tasks")
        refused = await mcp.call("generate_image", {"prompt": "a lamp" + INSTANT})

        assert not listed.is_error and mcp.data(listed)["journal"] == str(journal_file)
        assert refused.is_error
        data = mcp.error(refused)
        assert data["category"] == "journal_unavailable" and data["charged"] == "no" and data["retryable"] is True
        assert str(journal_file) in data["message"] and "locked by another process" in data["message"]
        assert "Charged: no" in mcp.text(refused)
        assert sandbox.state.requests("generations") == []

        await anyio.to_thread.run_sync(holder.release)
        done = await mcp.call("generate_image", {"prompt": "a lamp" + INSTANT})

    assert not done.is_error and mcp.data(done)["status"] == "completed"
    assert len(sandbox.state.requests("generations")) == 1


async def test_a_journal_locked_while_the_post_is_in_flight_never_loses_the_task(
    impatient_server: MCPServer[Deps],
    connect: Callable[..., AbstractAsyncContextManager[Any]],
    sandbox: SandboxServer,
    journal_file: Path,
    hold_lock: Callable[..., LockHolder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox.state.add_latency("generations", 600)
    holders: list[LockHolder] = []
    results: list[Any] = []

    async with connect(impatient_server) as mcp:

        async def generate() -> None:
            results.append(await mcp.call("generate_image", {"prompt": "a vase" + INSTANT}))

        async with anyio.create_task_group() as group:
            group.start_soon(generate)
            await until(lambda: len(sandbox.state.requests("generations")) == 1)
            holders.append(await anyio.to_thread.run_sync(hold_lock, journal_file))
        (result,) = results
        await anyio.to_thread.run_sync(holders[0].release)
        listed = await mcp.call("list_tasks")

    assert not result.is_error, mcp.text(result)
    data = mcp.data(result)
    (posted,) = sandbox.state.requests("generations")
    assert data["task_id"] == posted.task_id and data["status"] == "completed"
    assert await anyio.Path(data["images"][0]["path"]).is_file()
    assert any("not journaled" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert not listed.is_error
