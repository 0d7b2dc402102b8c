"""A bug of ours after a task is created must not cost the caller the task: its id, what it reserved, and a way
to fetch it stay in the result (not a bare "internal" error)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.images.polling import Clock
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from mcp_session import Connect

pytestmark = pytest.mark.anyio


class BrokenClock(Clock):
    """The use case's clock (its injection point for time): its next sleep once broken fails as a bug of ours would.
    Sleeps already under way (the background follower's, from start-up) are left alone."""

    broken = False

    async def sleep(self, seconds: float) -> None:
        if self.broken:
            self.broken = False
            raise RuntimeError("a bug while waiting")
        await super().sleep(seconds)


async def test_a_failure_of_ours_while_waiting_still_returns_the_task_and_how_to_fetch_it(
    connect: Connect,
    settings_for: Callable[..., Settings],
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = BrokenClock()
    server = build_server(build_deps(settings_for(), allowed_dirs=None, clock=clock))
    async with connect(server) as mcp:
        clock.broken = True  # the call's first poll wait
        result = await mcp.call("generate_image", {"prompt": "a lighthouse", "wait_seconds": 30})

    data: dict[str, Any] = mcp.data(result)
    (posted,) = sandbox.state.requests("generations")
    assert not result.is_error and data["task_id"] == posted.task_id and data["credits_reserved"] is not None
    text = mcp.text(result)
    assert "the server failed while handling it" in text and "the task itself is safe" in text
    assert f"check_task with task_id={posted.task_id!r}" in data["next_step"]
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert logged and "a bug while waiting" in str(logged[0].exc_info[1])  # type: ignore[index]
