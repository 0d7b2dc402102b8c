"""How often a running task is polled: from its own estimate, finer in its last second, never a busy loop."""

from __future__ import annotations

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
