"""Soak: 2,000 generate_image calls with previews through one streamable-HTTP server, its RSS every 100 calls.

One `evolink-mcp serve --transport streamable-http` process, measured from outside as a user runs it: the
sandbox in its own process (tasks done at once, real 2048x2048 PNG results), default settings (previews on),
MCP sessions kept open, each call waiting for its image (submit, poll, download, save, preview). The calls run
in blocks of 100; between blocks nothing is in flight and the server's VmRSS is read, so each sample is what
the server keeps, not a call's transient peak. The target is the growth from the 200th call to the last (the
first 200 warm up imports, pools and allocator arenas); the growth from the 100th to the 400th is printed next
to issue 12's figure for the code before its caches were bounded.

Run twice, each on a fresh server: one session calling one call after another, so that every result carries
its inline preview (a saturated server sends results without one: on two cores, as soon as one preview waits
for another), then PARALLEL_SESSIONS sessions at once, which exercises concurrent calls but keeps few previews.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from common import (
    Row,
    cpu_seconds,
    http_server,
    memory_kib,
    mib,
    sandbox_process,
)
from concurrency import PROMPT, TOKEN, HttpSession

GENERATIONS = 2000
SAMPLE_EVERY = 100
PARALLEL_SESSIONS = 6
TASK_SECONDS = 0.0  # results ready at once: the run measures what the server keeps, not waiting
TARGET_FROM, TARGET_BYTES = 200, 20 * 1024 * 1024
ISSUE_FROM, ISSUE_TO, ISSUE_GROWTH = 100, 400, "+106 MB (issue 12, before bounded caches)"
CALL_TIMEOUT = 120.0
RSS_LIMIT = 4 * 1024**3  # stop early rather than push a shared machine out of memory


@dataclass
class Soak:
    samples: dict[int, int] = field(default_factory=dict)  # calls made -> server VmRSS in bytes (0: idle)
    failures: list[str] = field(default_factory=list)
    stopped: str = ""
    previewed: int = 0
    seconds: float = 0.0
    cpu: tuple[float, ...] = ()  # seconds: server, sandbox, this (client) process

    @property
    def made(self) -> int:
        return max(self.samples)

    def growth(self, start: int, end: int) -> int | None:
        if start in self.samples and end in self.samples:
            return self.samples[end] - self.samples[start]
        return None


async def _call(session: HttpSession, number: int) -> bool:
    """One generate_image that waits for its image; whether an inline preview came. Raises on anything else."""
    with anyio.fail_after(CALL_TIMEOUT):
        result = await session.request(
            "tools/call",
            {
                "name": "generate_image",
                "arguments": {"prompt": PROMPT, "wait_seconds": 60},
                "_meta": {"progressToken": f"soak-{number}"},
            },
        )
    if result.get("isError") or result["structuredContent"].get("status") != "completed":
        raise RuntimeError(result["content"][0].get("text", "")[:200])
    return any(block["type"] == "image" for block in result["content"])


async def _worker(session: HttpSession, numbers: Iterator[int], soak: Soak) -> None:
    for number in numbers:  # shared by the sessions: each takes the next call when its last one is done
        try:
            soak.previewed += await _call(session, number)
        except Exception as exc:
            soak.failures.append(f"{type(exc).__name__}: {exc}")


async def _drive(url: str, pid: int, count: int, soak: Soak) -> None:
    sessions = [HttpSession(url) for _ in range(count)]
    try:
        for session in sessions:
            await session.open()
        soak.samples[0] = memory_kib(pid)["VmRSS"] * 1024
        for block_start in range(0, GENERATIONS, SAMPLE_EVERY):
            numbers = iter(range(block_start + 1, block_start + SAMPLE_EVERY + 1))
            async with anyio.create_task_group() as group:
                for session in sessions:
                    group.start_soon(_worker, session, numbers, soak)
            soak.samples[block_start + SAMPLE_EVERY] = rss = memory_kib(pid)["VmRSS"] * 1024
            print(f"  {block_start + SAMPLE_EVERY} calls: server RSS {mib(rss)}", flush=True)
            if rss > RSS_LIMIT:
                soak.stopped = f"stopped early: server RSS {mib(rss)}"
                return
    finally:
        for session in sessions:
            await session.close()


def _soak(home: Path, sessions: int) -> Soak:
    soak = Soak()
    with (
        sandbox_process(home / "sandbox", TASK_SECONDS) as sandbox,
        http_server(home / "server", sandbox, TOKEN) as (url, pid),
    ):
        pids = (pid, sandbox.process.pid)
        before = (*map(cpu_seconds, pids), time.process_time())
        started = time.monotonic()
        anyio.run(_drive, url, pid, sessions, soak)
        soak.seconds = time.monotonic() - started
        after = (*map(cpu_seconds, pids), time.process_time())
    soak.cpu = tuple(b - a for a, b in zip(before, after, strict=True))
    return soak


def _growth(soak: Soak, start: int, end: int) -> str:
    growth = soak.growth(start, end)
    return "-" if growth is None else f"{'+' if growth >= 0 else '-'}{mib(abs(growth))}"


def _rows(soak: Soak, how: str, short: str) -> list[Row]:
    growth = soak.growth(TARGET_FROM, GENERATIONS)
    per_call = f"{growth / (GENERATIONS - TARGET_FROM) / 1024:.1f} KiB per call" if growth is not None else "-"
    series = ", ".join(f"{n}: {value / 1048576:.0f}" for n, value in sorted(soak.samples.items()))
    failures = sorted(set(soak.failures)) + ([soak.stopped] if soak.stopped else [])
    done = soak.made - len(soak.failures)
    return [
        Row(
            f"soak: {GENERATIONS:,} generate_image, {how} (streamable HTTP): completed",
            f"{done}/{GENERATIONS}",
            target="100%",
            met=done == GENERATIONS,
            note=f"{soak.seconds:.0f} s, {soak.previewed} with an inline preview; CPU s: server {soak.cpu[0]:.0f}, "
            f"sandbox {soak.cpu[1]:.0f}, bench client {soak.cpu[2]:.0f}"
            + (f"; {'; '.join(failures)[:200]}" if failures else ""),
        ),
        Row(
            f"  server RSS growth, call {TARGET_FROM} -> {GENERATIONS:,} ({short})",
            _growth(soak, TARGET_FROM, GENERATIONS),
            f"{mib(soak.samples[TARGET_FROM])} at call {TARGET_FROM}" if TARGET_FROM in soak.samples else "-",
            per_call,
            f"<= +{mib(TARGET_BYTES)}",
            growth is not None and growth <= TARGET_BYTES,
            f"RSS (MiB) after N calls, 0 = idle: {series}",
        ),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        previewed = _soak(Path(tmp) / "one-session", 1)
        parallel = _soak(Path(tmp) / "parallel", PARALLEL_SESSIONS)
    return [
        *_rows(previewed, "one after another, each with its preview", "one session"),
        Row(
            f"  server RSS growth, call {ISSUE_FROM} -> {ISSUE_TO} (one session, info)",
            _growth(previewed, ISSUE_FROM, ISSUE_TO),
            ISSUE_GROWTH,
        ),
        *_rows(parallel, f"{PARALLEL_SESSIONS} sessions in parallel", f"{PARALLEL_SESSIONS} sessions"),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
