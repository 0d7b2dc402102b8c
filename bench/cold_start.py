"""Cold start: spawn -> initialize -> tools/list answered over stdio, against the SDK's floor (bare MCPServer).

Driven with raw newline-delimited JSON-RPC on the pipes, so that only the server's start-up is timed (no
client library on the clock). The two servers are started alternately, so drift on the machine hits both.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path

from common import (
    BENCH_DIR,
    PYTHON,
    Row,
    child_env,
    evolink_argv,
    median,
    ms,
    ratio,
    stdio_tools_list,
    time_to_tools_list,
)

RUNS = 10
TARGET = 1.10
# What the stdio server does not need before its first call (the issue names these).
NOT_ON_STARTUP = ("PIL", "aiohttp", "evolink_mcp.sandbox", "uvicorn", "starlette", "sqlite3", "_sqlite3")
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def imports(argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """Modules loaded by the time tools/list is answered, with their own import time (µs, -X importtime)."""
    with tempfile.TemporaryFile() as log:
        time_to_tools_list([PYTHON, "-X", "importtime", *argv], env, stderr=log)
        log.seek(0)
        text = log.read().decode(errors="replace")
    return {m.group(4): int(m.group(1)) for m in map(IMPORT_LINE.match, text.splitlines()) if m}


def _unneeded(modules: dict[str, int]) -> list[str]:
    return sorted(
        {
            name.split(".")[0] if not name.startswith("evolink_mcp.") else name
            for name in modules
            if name.startswith(NOT_ON_STARTUP)
        }
    )


def import_rows(env: dict[str, str]) -> list[Row]:
    ours = imports(["-m", "evolink_mcp"], env)
    floor = imports([str(BENCH_DIR / "floor_server.py")], env)
    extra = {name: us for name, us in ours.items() if name not in floor}
    by_package = Counter[str]()
    for name, us in extra.items():
        by_package[name.split(".")[0]] += us
    top = ", ".join(f"{name} {us / 1000:.1f} ms" for name, us in by_package.most_common(6))
    everything = Counter[str]()
    for name, us in ours.items():
        everything[name.split(".")[0]] += us
    offenders = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in everything.most_common(8))
    unneeded = _unneeded(extra)
    return [
        Row(
            "imports before tools/list (-X importtime, self time)",
            f"{sum(ours.values()) / 1000:.0f} ms, {len(ours)} modules",
            f"{sum(floor.values()) / 1000:.0f} ms, {len(floor)} modules (floor)",
            ratio(sum(ours.values()), sum(floor.values())),
            note=f"beyond the floor: {top}",
        ),
        Row("importtime top offenders (self time by package)", offenders),
        Row(
            "unneeded imports beyond the floor's (Pillow, aiohttp, sandbox, uvicorn, Starlette, sqlite3)",
            ", ".join(unneeded) or "none",
            "SDK itself: " + (", ".join(_unneeded(floor)) or "none"),
            target="none",
            met=not unneeded,
            note="sqlite3: the journal, opened by a worker thread as the server starts (resuming unfinished tasks)"
            if any(n.startswith("sqlite3") for n in unneeded)
            else "",
        ),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        home = Path(tmp)
        env = child_env(home, EVOLINK_API_KEY="sk-bench-not-used")
        ours_argv = evolink_argv()
        floor_argv = [PYTHON, str(BENCH_DIR / "floor_server.py")]
        # One untimed start of each: compiles .pyc files the way an installed package already has them.
        time_to_tools_list(ours_argv, env)
        time_to_tools_list(floor_argv, env)
        ours_runs, floor_runs = [], []
        for _ in range(RUNS):
            floor_runs.append(stdio_tools_list(floor_argv, env))
            ours_runs.append(stdio_tools_list(ours_argv, env))
        ours, floor = [r.wall for r in ours_runs], [r.wall for r in floor_runs]
        ours_cpu, floor_cpu = median([r.cpu for r in ours_runs]), median([r.cpu for r in floor_runs])
        sandbox = [time_to_tools_list([*ours_argv, "--sandbox"], env) for _ in range(3)]
        imported = import_rows(env)
    ours_median, floor_median = median(ours), median(floor)
    rows = [
        Row(
            "cold start: spawn -> tools/list (stdio, median of 10)",
            ms(ours_median),
            ms(floor_median) + " (bare MCPServer)",
            ratio(ours_median, floor_median),
            f"<= {TARGET:.2f}x",
            ours_median <= floor_median * TARGET,
            f"ours {ms(min(ours))}-{ms(max(ours))}, floor {ms(min(floor))}-{ms(max(floor))}",
        ),
        Row(
            "  CPU time used by then (median of 10, info)",
            ms(ours_cpu),
            ms(floor_cpu),
            ratio(ours_cpu, floor_cpu),
            note="steadier than wall time when other processes share the machine",
        ),
        Row(
            "cold start with --sandbox (median of 3, info)",
            ms(median(sandbox)),
            ms(floor_median),
            ratio(median(sandbox), floor_median),
            note="starts the simulator (uvicorn, Starlette) before serving: a demo mode",
        ),
        *imported,
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
