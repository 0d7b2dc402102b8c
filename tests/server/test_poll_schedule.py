"""How often a running task is polled: from its own estimate, finer in its last second, never a busy loop."""

from __future__ import annotations

import time
from typing import Any

import pytest

from evolink_mcp.evolink import Task
from evolink_mcp.images.polling import (
    FIRST_POLL_DELAY,
    MAX_POLL_DELAY,
    NEAR_END_POLL_DELAY,
    OVERDUE_POLL_DELAY,
    next_poll_delay,
)
from evolink_mcp.sandbox import SandboxServer
from mcp_session import Session


def task(progress: int, estimated_time: int | None) -> Task:
    info: dict[str, Any] = {"can_cancel": True}
    if estimated_time is not None:
        info["estimated_time"] = estimated_time
    status = "pending" if progress == 0 else "processing"
    return Task.model_validate({"id": "task-1", "status": status, "progress": progress, "task_info": info})


@pytest.mark.parametrize(
    ("progress", "estimated_time", "elapsed", "polls", "expected"),
    [
        (0, 45, 0.0, 0, MAX_POLL_DELAY),  # a long task: a capped sleep, not a tick every 3 s
        (0, 8, 0.0, 0, 8 * 0.85),  # most of the time left
        (85, 1, 3.4, 1, 0.6 + 0.05),  # whole seconds say 1; progress says 0.6: look just after that
        (0, 1, 0.5, 1, 1.05),  # the last second, with no progress to go by: just after it
        (99, 1, 5.0, 2, NEAR_END_POLL_DELAY),  # stuck at 99%: never a busy loop
        (0, 0, 9.0, 3, OVERDUE_POLL_DELAY),  # past the estimate: every second
        (0, None, 0.0, 0, FIRST_POLL_DELAY),  # no estimate at all
        (0, None, 3.0, 1, 2.0),
    ],
)
def test_the_next_poll_follows_the_tasks_own_estimate(
    progress: int, estimated_time: int | None, elapsed: float, polls: int, expected: float
) -> None:
    assert next_poll_delay(task(progress, estimated_time), elapsed, polls) == pytest.approx(expected)


@pytest.mark.anyio
async def test_a_two_minute_task_is_followed_on_the_servers_clock_with_a_handful_of_polls(
    mcp: Session, sandbox: SandboxServer
) -> None:
    """The server sleeps between polls on the clock it was given, and the sandbox's task runs on the same one
    (tests/virtual_time.py): two minutes of polling schedule pass in well under a second, poll by poll."""
    started = time.monotonic()
    result = await mcp.call("generate_image", {"prompt": "a slow fresco [sandbox:duration=120]", "wait_seconds": 300})

    assert mcp.data(result)["status"] == "completed", mcp.text(result)
    assert time.monotonic() - started < 10  # far below the two minutes the task takes on the clock
    assert 12 <= len(sandbox.state.requests("tasks")) <= 25  # capped 10-s sleeps, then finer near the end
