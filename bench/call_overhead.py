"""Per-call overhead over stdio: check_task and list_models, next to what they cannot avoid.

- check_task on a running sandbox task, against a direct httpx2 GET of the same task (an AsyncClient kept
  alive on an event loop): the difference is what the MCP round trip and our tool add on top of the upstream
  call. The same GET through aiohttp, the server's own HTTP client, is shown too.
- list_models (no network), against the SDK's floor server sending the very same result (recorded from
  list_models, replayed by a trivial tool): the difference is what our code adds. The floor's trivial
  `echo` is shown too: the bare MCP round trip.
The client is a minimal JSON-RPC driver on the pipes (see common.StdioSession), so the server is timed, not
a client library. Calls are interleaved, so drift on the machine hits every series alike.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx2

from common import (
    BENCH_DIR,
    PYTHON,
    Row,
    StdioSession,
    child_env,
    evolink_argv,
    ms,
    percentile,
    sandbox_process,
    upstream_env,
)

WARMUP = 30
SAMPLES = 300
TARGET_MS = 2.0
SECONDS_PER_TASK = 3600  # the task stays "processing" throughout


def _stats(values: list[float]) -> str:
    return f"p50 {ms(percentile(values, 50))}, p99 {ms(percentile(values, 99))}"


def _overhead_row(figure: str, ours: list[float], reference: list[float], reference_name: str, note: str = "") -> Row:
    overhead = percentile(ours, 50) - percentile(reference, 50)
    p99_overhead = percentile(ours, 99) - percentile(reference, 99)
    return Row(
        figure,
        _stats(ours),
        f"{reference_name}: {_stats(reference)}",
        f"+{ms(overhead)} p50",
        f"p50 overhead <= {TARGET_MS:g} ms",
        overhead * 1000 <= TARGET_MS,
        f"p99 overhead {p99_overhead * 1000:+.1f} ms" + (f"; {note}" if note else ""),
    )


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    if result.get("isError"):
        raise RuntimeError(f"tool call failed: {result}")
    return result


def _measure(home: Path) -> list[Row]:
    with sandbox_process(home / "sandbox", SECONDS_PER_TASK) as sandbox:
        env = child_env(home / "server", **upstream_env(sandbox))
        loop = asyncio.new_event_loop()
        direct = httpx2.AsyncClient(headers={"Authorization": "Bearer sandbox-key"})
        direct_aiohttp = loop.run_until_complete(_aiohttp_session())
        with StdioSession(evolink_argv(), env) as ours:
            ours.initialize()
            submitted = _ok(
                ours.call_tool("generate_image", {"prompt": "a lighthouse [sandbox:duration=3600]", "wait_seconds": 0})
            )
            task_id = submitted["structuredContent"]["task_id"]
            task_url = f"{sandbox.base_url}/v1/tasks/{task_id}"
            recorded = _ok(ours.call_tool("list_models", {}))
            canned = home / "list_models.json"
            canned.write_text(json.dumps(recorded), "utf-8")
            with StdioSession(
                [PYTHON, str(BENCH_DIR / "floor_server.py")], {**env, "BENCH_CANNED_RESULT": str(canned)}
            ) as floor:
                floor.initialize()

                def check() -> None:
                    status = _ok(ours.call_tool("check_task", {"task_id": task_id}))["structuredContent"]["status"]
                    assert status in ("pending", "processing"), status

                def get() -> None:
                    loop.run_until_complete(direct.get(task_url)).raise_for_status()

                async def aiohttp_get() -> None:
                    async with direct_aiohttp.get(task_url) as response:
                        response.raise_for_status()
                        await response.read()

                calls: dict[str, Callable[[], object]] = {
                    "check_task": check,
                    "direct": get,
                    "direct_aiohttp": lambda: loop.run_until_complete(aiohttp_get()),
                    "list_models": lambda: _ok(ours.call_tool("list_models", {})),
                    "floor_same_result": lambda: _ok(floor.call_tool("canned", {})),
                    "floor_echo": lambda: _ok(floor.call_tool("echo", {"text": "hello"})),
                }
                series: dict[str, list[float]] = {name: [] for name in calls}
                for number in range(WARMUP + SAMPLES):
                    for name, call in calls.items():
                        started = time.perf_counter()
                        call()
                        if number >= WARMUP:
                            series[name].append(time.perf_counter() - started)
        loop.run_until_complete(direct.aclose())
        loop.run_until_complete(direct_aiohttp.close())
        loop.close()
    echo = percentile(series["floor_echo"], 50)
    vs_echo = percentile(series["list_models"], 50) - echo
    size = len(json.dumps(recorded, separators=(",", ":")).encode())
    return [
        Row("MCP round trip over stdio: floor echo tool (info)", _stats(series["floor_echo"])),
        _overhead_row(
            "check_task over stdio (running task)",
            series["check_task"],
            series["direct"],
            "httpx2 AsyncClient GET of the task",
            f"of which the SDK's bare stdio round trip (floor echo) is {ms(echo)}: ours beyond both "
            f"+{ms(percentile(series['check_task'], 50) - percentile(series['direct'], 50) - echo)}",
        ),
        _overhead_row(
            "  same, next to a direct aiohttp GET (the server's client; info)",
            series["check_task"],
            series["direct_aiohttp"],
            "aiohttp ClientSession GET of the task",
        ).informational(),
        _overhead_row(
            "list_models over stdio (63 models)",
            series["list_models"],
            series["floor_same_result"],
            "floor sending the same result",
            f"result {size / 1024:.0f} KiB; vs floor echo +{ms(vs_echo)}",
        ),
    ]


async def _aiohttp_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"Authorization": "Bearer sandbox-key"})


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        return _measure(Path(tmp))


if __name__ == "__main__":
    for row in run():
        print(row)
