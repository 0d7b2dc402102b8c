"""Polling efficiency: upstream polls per task and the delay from 'ready' to 'reported', vs a fixed 3 s cadence.

In-process, against the sandbox, whose tasks finish at a known time ('ready' = the task's start on the sandbox
clock + its duration; both clocks are this process's monotonic clock). Ours is `ImageService.wait` (adaptive,
`next_poll_delay`); the reference polls every 3 s with the same client. Every task of both runs at once;
polls are counted from the sandbox's own request log.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from common import Row, ratio
from evolink_mcp.catalog import load_catalog
from evolink_mcp.evolink import EvolinkClient, Task
from evolink_mcp.images import ImageService
from evolink_mcp.journal import Journal, TaskRecord
from evolink_mcp.sandbox import SandboxConfig, SandboxServer
from evolink_mcp.settings import Settings

DURATIONS = (4.0, 8.0, 15.0, 30.0, 45.0)  # seconds: the sandbox default, then typical image-model times
FIXED_CADENCE = 3.0
POLL_RATIO_TARGET = 0.6
DELAY_TARGET = 1.0


@dataclass
class Outcome:
    duration: float
    polls: int
    delay: float  # seconds from the task being ready to the waiter returning it


async def _fixed_cadence(client: EvolinkClient, first: Task) -> Task:
    task = first
    while not task.is_terminal:
        await anyio.sleep(FIXED_CADENCE)
        task = await client.get_task(task.id)
    return task


async def _measure(home: Path) -> tuple[list[Outcome], list[Outcome]]:
    with SandboxServer(SandboxConfig(task_seconds=4.0)) as sandbox:
        settings = Settings.from_env({}, state_dir=home / "state", output_dir=home / "out")
        catalog = load_catalog(None, None)
        async with EvolinkClient("sandbox-key", base_url=sandbox.base_url, files_base_url=sandbox.base_url) as client:
            service = ImageService(settings, catalog, client, Journal(None))
            ours: list[Outcome] = []
            fixed: list[Outcome] = []

            async def one(duration: float, adaptive: bool) -> None:
                body = {"model": catalog.default.id, "prompt": f"a lighthouse [sandbox:duration={duration:g}]"}
                first = await client.submit_generation(body)
                if adaptive:
                    record = TaskRecord.of_task(first)
                    record.apply(first)
                    await service.wait(record, duration + 60)
                    status = record.status
                else:
                    status = (await _fixed_cadence(client, first)).status
                reported = time.monotonic()
                assert status == "completed", status
                sandbox_task = sandbox.state.tasks[first.id]
                ready = sandbox_task.started + sandbox_task.duration
                polls = sum(1 for r in sandbox.state.requests("tasks") if r.path.endswith("/" + first.id))
                (ours if adaptive else fixed).append(Outcome(duration, polls, reported - ready))

            async with anyio.create_task_group() as group:
                for duration in DURATIONS:
                    group.start_soon(one, duration, True)
                    group.start_soon(one, duration, False)
            service.journal.close()
    return sorted(ours, key=lambda o: o.duration), sorted(fixed, key=lambda o: o.duration)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-polling-") as tmp:
        ours, fixed = anyio.run(_measure, Path(tmp))
    our_polls, fixed_polls = sum(o.polls for o in ours), sum(o.polls for o in fixed)
    our_delays, fixed_delays = [o.delay for o in ours], [o.delay for o in fixed]
    per_task = ", ".join(f"{o.duration:g}s: {o.polls} vs {f.polls}" for o, f in zip(ours, fixed, strict=True))
    per_delay = ", ".join(f"{o.duration:g}s: {o.delay:.2f} vs {f.delay:.2f}" for o, f in zip(ours, fixed, strict=True))
    return [
        Row(
            f"polls per task ({len(DURATIONS)} tasks of {'/'.join(f'{d:g}' for d in DURATIONS)} s)",
            f"{our_polls / len(ours):.1f}",
            f"{fixed_polls / len(fixed):.1f} (every {FIXED_CADENCE:g} s)",
            ratio(our_polls, fixed_polls),
            f"<= {POLL_RATIO_TARGET}x",
            our_polls <= fixed_polls * POLL_RATIO_TARGET,
            f"ours vs fixed: {per_task}",
        ),
        Row(
            "delay ready -> reported (max over tasks)",
            f"{max(our_delays):.2f} s (mean {sum(our_delays) / len(our_delays):.2f})",
            f"{max(fixed_delays):.2f} s (mean {sum(fixed_delays) / len(fixed_delays):.2f})",
            ratio(max(our_delays), max(fixed_delays)),
            f"<= {DELAY_TARGET:g} s",
            max(our_delays) <= DELAY_TARGET,
            f"ours vs fixed: {per_delay}",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
