"""Submissions under faults: fifty concurrent generations through a storm of 429s, 5xx and dropped connections
on every endpoint, and a lost answer retried under a client_request_id that no HTTP header could carry."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio
import pytest
from fault_support import Session, is_png, text_of
from mcp_types import CallToolResult

from evolink_mcp.journal import REFUSED, SUBMITTED, UNKNOWN, TaskRecord
from evolink_mcp.sandbox import Sandbox, SandboxServer

if TYPE_CHECKING:
    Connect = Callable[..., AbstractAsyncContextManager[Session]]

pytestmark = pytest.mark.anyio

CALLS = 50
SETTLE_SECONDS = 40.0
# Each fault answers one request; per endpoint they come in a shuffled order, so which call meets which
# fault (and whether a retry meets another) varies with the seed, while the mix stays the same.
STORM: dict[str, list[dict[str, Any]]] = {
    "generations": [
        *[{"status": 429, "retry_after": 0}] * 4,
        *[{"status": 429, "retry_after": 1}] * 2,
        {"status": 429, "retry_after": 30},  # longer than the client waits: reported, never created
        *[{"status": 402}] * 2,  # out of credits: certainly nothing created
        *[{"status": 500}] * 3,
        *[{"status": 502}] * 3,
        *[{"status": 503}] * 4,
        *[{"drop": "before"}] * 3,
        *[{"drop": "after"}] * 3,
    ],
    "tasks": [
        *[{"status": 429, "retry_after": 0}] * 3,
        *[{"status": 500}] * 4,
        *[{"status": 502}] * 3,
        *[{"status": 503}] * 3,
        *[{"drop": "before"}] * 3,
        *[{"drop": "after"}] * 3,
    ],
    "results": [
        *[{"status": 500}] * 3,
        *[{"status": 503}] * 2,
        *[{"drop": "before"}] * 2,
        *[{"drop": "after"}] * 2,
    ],
}


def script_storm(state: Sandbox, seed: int) -> int:
    """Queue every fault of STORM on the sandbox; returns how many generation faults there are."""
    shuffle = random.Random(seed).shuffle
    for endpoint, faults in STORM.items():
        faults = list(faults)
        shuffle(faults)
        for fault in faults:
            if "drop" in fault:
                state.drop_next(endpoint, when=fault["drop"])
            else:
                state.fail_next(endpoint, fault["status"], retry_after=fault.get("retry_after"))
    return len(STORM["generations"])


def request_for(index: int) -> dict[str, Any]:
    """Small images from tasks of a few durations, waited for fully, briefly or not at all."""
    duration = (0, 0.05, 0.4)[index % 3]
    return {
        "prompt": f"storm study number {index} [sandbox:duration={duration}]",
        "quality": "0.5K",
        "client_request_id": f"storm-{index:02d}",
        "wait_seconds": (3, 0.3, 0)[index // 3 % 3],
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_storm_of_429_5xx_and_drops_over_50_generations_saves_or_reports_each_and_never_charges_twice(
    seed: int, connect: Connect, sandbox: SandboxServer
) -> None:
    generation_faults = script_storm(sandbox.state, seed)
    results: dict[str, CallToolResult] = {}

    async with connect(preview_max_bytes=0) as mcp:
        journal = mcp.deps.service.journal

        async def generate(index: int) -> None:
            arguments = request_for(index)
            results[arguments["client_request_id"]] = await mcp.call("generate_image", arguments)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for index in range(CALLS):
                    group.start_soon(generate, index)

        # Every result is well formed (Session.call checked it); now what each says against what happened.
        created = [r for r in sandbox.state.requests("generations") if r.task_id]
        task_by_key = {r.header("idempotency-key"): r.task_id for r in created}
        assert len(task_by_key) == len(created), "a request key created two tasks"
        assert set(task_by_key) <= set(results)
        submitted: dict[str, str] = {}  # request key -> task id, for every call that returned a task
        outcomes: Counter[str] = Counter()
        for key, result in results.items():
            entry = await journal.by_request_key(key)
            assert entry is not None, f"{key} was never journaled"
            outcome = outcome_of(key, result, entry, task_by_key)
            outcomes[outcome] += 1
            if outcome == "task":
                submitted[key] = entry.task_id or ""
        assert len(created) == outcomes["task"] + outcomes["unknown with a task"]
        assert outcomes["refused"] >= 3 and outcomes["unknown with a task"] >= 1, outcomes
        assert outcomes["task"] >= CALLS - generation_faults
        assert not [f for f in sandbox.state.faults if f.endpoint == "generations"], "the storm did not blow"

        # Every task a call returned ends saved: by the call, by background following, or by check_task
        # when the result said saving failed (as its next_step asks).
        with anyio.fail_after(SETTLE_SECONDS):
            while unsaved := [k for k, t in submitted.items() if not await saved(mcp, t)]:
                for key in unsaved:
                    task_id = submitted[key]
                    entry = await journal.by_task_id(task_id)
                    if entry is not None and entry.save_error and not mcp.deps.service.is_followed(task_id):
                        await mcp.call("check_task", {"task_id": task_id})
                await anyio.sleep(0.1)

        for task_id in submitted.values():
            entry = await journal.by_task_id(task_id)
            assert entry is not None
            paths = [Path(p) for p in entry.saved_paths]
            assert len(paths) == 1 and is_png(paths[0]) and task_id in paths[0].name


def outcome_of(key: str, result: CallToolResult, entry: TaskRecord, task_by_key: dict[str, str]) -> str:
    """What one call's result says happened, checked against the journal and the tasks upstream created."""
    data = result.structured_content
    assert data is not None
    if not result.is_error:
        assert task_by_key.get(key) == data["task_id"], f"{key}: the task it reports is not the one created"
        assert entry.state == SUBMITTED and entry.task_id == data["task_id"]
        return "task"
    error = data["error"]
    if error["charged"] == "no":
        assert key not in task_by_key, f"{key} said charged=no but a task was created"
        assert error["category"] in ("rate_limit", "service_unavailable", "insufficient_credits"), error
        assert entry.state == REFUSED
        return "refused"
    assert error["charged"] == "unknown" and error["category"] == "outcome_unknown", error
    assert error["client_request_id"] == key and key in text_of(result)
    assert entry.state == UNKNOWN
    return "unknown with a task" if key in task_by_key else "unknown, nothing created"


async def saved(mcp: Session, task_id: str) -> bool:
    entry = await mcp.deps.service.journal.by_task_id(task_id)
    return bool(entry and entry.finished and entry.saved_paths and not entry.save_error)


async def test_a_client_request_id_in_any_script_goes_out_as_the_same_header_safe_key_on_every_attempt(
    connect: Connect, sandbox: SandboxServer
) -> None:
    request_id = "é 🦊\n%41 #1"  # non-ASCII, a control character, and what looks like an escape already
    arguments = {"prompt": "a paper crane [sandbox:duration=0]", "client_request_id": request_id}
    sandbox.state.drop_next("generations", when="after")  # the task is created, its answer lost

    async with connect(preview_max_bytes=0) as mcp:
        lost = await mcp.call("generate_image", arguments)
        retried = await mcp.call("generate_image", arguments)

    assert lost.is_error and lost.structured_content is not None
    assert lost.structured_content["error"]["charged"] == "unknown"
    assert lost.structured_content["error"]["client_request_id"] == request_id
    assert not retried.is_error and retried.structured_content is not None, text_of(retried)
    assert "sent again with the same idempotency key" in text_of(retried)
    first, second = (r.header("idempotency-key") for r in sandbox.state.requests("generations"))
    assert first == second and first is not None and first.isascii() and first.isprintable()
    assert unquote(first) == request_id
