"""A clock for in-process servers and the in-process sandbox: time that passes at once when slept on.

The server polls on it (`build_deps(clock=...)`) and the sandbox times its tasks by it (`Sandbox.clock`), so a
poll the schedule puts 3 s away happens at once and finds the task as it is 3 s later: the same schedule, the
same answers, no real seconds. Real time passes on it too, so nothing waits forever.
"""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel

from evolink_mcp.images.polling import Clock

OVERTAKEN_POLL = 0.001  # real seconds between looks of a sleeper waiting for earlier ones to wake first


class VirtualClock(Clock):
    """Real monotonic time plus the virtual seconds slept.

    Sleepers wake in the order of their wake times: the earliest moves time on to its own wake at once, the
    others wait (really, briefly) until time reaches theirs. So no sleeper wakes early, and a long sleep in
    the background does not overtake a short one in a tool call. One may wake late, as on a busy machine: one
    that wakes does real work (a poll) before it sleeps again, and time may move on meanwhile. `now` is read
    from the sandbox's thread too.

    Something that sleeps in a loop with no end moves time on as fast as it loops: a test that needs a task to
    keep running while it acts runs on real time (`@pytest.mark.real_time`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._wakes: list[float] = []  # of the sleepers now waiting

    def now(self) -> float:
        return time.monotonic() + self._offset

    async def sleep(self, seconds: float) -> None:
        wake = self.now() + max(0.0, seconds)
        with self._lock:
            self._wakes.append(wake)
        try:
            await anyio.lowlevel.checkpoint()  # as a real sleep is: cancellation and the other tasks get their turn
            while not self._moved_to(wake):  # noqa: ASYNC110  # earlier sleepers may be in other tasks or threads
                await anyio.sleep(OVERTAKEN_POLL)
        finally:
            with self._lock:
                self._wakes.remove(wake)

    def _moved_to(self, wake: float) -> bool:
        """Whether time is at `wake`: moved on to it if no other sleeper is due first."""
        with self._lock:
            if self.now() >= wake:
                return True
            if min(self._wakes) < wake:
                return False
            self._offset += wake - self.now()
            return True
