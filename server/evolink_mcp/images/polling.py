"""How often to look at a running task, and the wait loop that looks: from the task's own estimate, on a clock
that tests can replace."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from ..journal import TaskRecord

FIRST_POLL_DELAY = 3.0
MIN_POLL_DELAY = 0.5
MAX_POLL_DELAY = 10.0
OVERDUE_POLL_DELAY = 1.0  # once the estimate has passed, look every second
NEAR_END_POLL_DELAY = 0.2  # the shortest sleep, for a task whose progress says it is about to end


class Clock:
    """Monotonic time and sleeping, as the use cases see them: real by default, replaceable in tests."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class TaskState(Protocol):
    @property
    def progress(self) -> float | None: ...
    @property
    def estimated_seconds_left(self) -> float | None: ...


def next_poll_delay(task: TaskState, elapsed: float, polls: int) -> float:
    """Seconds until the next poll, from the task's own estimate rather than a fixed tick.

    Sleeps most of the estimated time left, and in the last second until just after the expected end, so a
    task that ends on time is seen within a fraction of a second, with a handful of polls instead of one
    every 3 s.
    """
    left = task.estimated_seconds_left
    progress = task.progress or 0
    by_progress = elapsed * (100 - progress) / progress if 0 < progress < 100 and elapsed > 0 else None
    # The estimate is in whole seconds: once it is past or down to its last one, progress tells the time finer.
    if by_progress is not None and (left is None or left <= 1):
        left = by_progress
    if left is None:
        return FIRST_POLL_DELAY if polls == 0 else 2.0
    if left <= 0:
        return OVERDUE_POLL_DELAY
    if left <= 1:
        return max(NEAR_END_POLL_DELAY, left + 0.05)
    return max(MIN_POLL_DELAY, min(MAX_POLL_DELAY, left * 0.85))


Update = Callable[[TaskRecord], Awaitable[None]]


async def wait_for_end(
    record: TaskRecord,
    look: Callable[[TaskRecord], Awaitable[None]],
    wait_seconds: float,
    *,
    clock: Clock,
    on_update: Update | None = None,
) -> None:
    """Look (`look` updates `record`) until the task ends or `wait_seconds` pass, telling `on_update` each time
    (and once at the start); `record` holds the last state seen."""
    started = clock.now()
    deadline = started + wait_seconds
    if on_update is not None:
        await on_update(record)
    polls = 0
    while not record.is_terminal:
        remaining = deadline - clock.now()
        if remaining <= 0:
            break
        await clock.sleep(min(next_poll_delay(record, clock.now() - started, polls), remaining))
        await look(record)
        polls += 1
        if on_update is not None:
            await on_update(record)
