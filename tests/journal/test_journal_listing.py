"""What the journal shows: list_tasks, the evolink://tasks/{task_id} resource and `evolink-mcp tasks`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from journal_support import DEFAULT_MODEL
from mcp.shared.exceptions import MCPError

from evolink_mcp.journal import JOURNAL_FILE
from evolink_mcp.sandbox import SandboxServer
from mcp_session import INSTANT

pytestmark = pytest.mark.anyio

LONG_PROMPT = "a very detailed scene of a market, " * 10 + INSTANT


@dataclass
class History:
    """Four submissions, oldest first: completed, failed, outcome unknown, completed."""

    first: dict[str, Any]
    failed: dict[str, Any]
    unknown: dict[str, Any]
    last: dict[str, Any]


async def make_history(mcp: Any, sandbox: SandboxServer) -> History:
    first = await mcp.call("generate_image", {"prompt": LONG_PROMPT})
    failed = await mcp.call(
        "generate_image", {"prompt": "a forbidden thing [sandbox:fail=content_policy_violation]" + INSTANT}
    )
    sandbox.state.fail_next("generations", 500)
    unknown = await mcp.call("generate_image", {"prompt": "a lost castle" + INSTANT})
    last = await mcp.call("generate_image", {"prompt": "a small boat" + INSTANT, "model": "z-image-turbo"})
    assert [r.is_error for r in (first, failed, unknown, last)] == [False, True, True, False]
    return History(mcp.data(first), mcp.data(failed), mcp.error(unknown), mcp.data(last))


async def test_list_tasks_shows_recent_tasks_newest_first_with_status_prompt_model_credits_and_files(
    mcp: Any, sandbox: SandboxServer, state_dir: Path
) -> None:
    history = await make_history(mcp, sandbox)

    listed = await mcp.call("list_tasks")

    data = mcp.data(listed)
    assert data["count"] == 4 and data["journal"] == str(state_dir / JOURNAL_FILE)
    last, unknown, failed, first = data["tasks"]
    assert [last["task_id"], failed["task_id"], first["task_id"]] == [
        history.last["task_id"],
        history.failed["task_id"],
        history.first["task_id"],
    ]
    assert (last["status"], last["model"], last["prompt"]) == ("completed", "z-image-turbo", "a small boat" + INSTANT)
    assert last["credits_reserved"] == history.last["credits_reserved"]
    assert last["saved_paths"] == [image["path"] for image in history.last["images"]]
    assert all([await anyio.Path(p).is_file() for p in last["saved_paths"]])
    assert last["client_request_id"] and last["created"] <= last["updated"]
    assert "task_id" not in unknown and unknown["state"] == "unknown"
    assert unknown["client_request_id"] == history.unknown["client_request_id"]
    assert (failed["status"], failed["error_code"]) == ("failed", "content_policy_violation")
    assert first["model"] == DEFAULT_MODEL and len(first["prompt"]) == 200 and first["prompt"].endswith("…")
    text = mcp.text(listed)
    assert text.startswith("4 task(s):")
    for task in (last, failed, first):
        assert task["task_id"] in text
    assert last["saved_paths"][0] in text and "content_policy_violation" in text


FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"status": "completed"}, ["last", "first"]),
    ({"status": "failed"}, ["failed"]),
    ({"status": "unknown"}, ["unknown"]),
    ({"limit": 1}, ["last"]),
    ({"limit": 2}, ["last", "unknown"]),
    ({"status": "completed", "limit": 1}, ["last"]),
    ({"status": "processing"}, []),
]


async def test_list_tasks_filters_by_status_and_limits_the_count_newest_first(mcp: Any, sandbox: SandboxServer) -> None:
    history = await make_history(mcp, sandbox)

    for arguments, expected in FILTERS:
        listed = await mcp.call("list_tasks", arguments)

        keys = [t["client_request_id"] for t in mcp.data(listed)["tasks"]]
        assert keys == [getattr(history, name)["client_request_id"] for name in expected], arguments
        assert mcp.data(listed)["count"] == len(expected)


async def test_list_tasks_refuses_a_limit_outside_one_to_two_hundred(mcp: Any) -> None:
    for limit in (0, 201):
        assert (await mcp.call("list_tasks", {"limit": limit})).is_error


async def test_the_task_resource_returns_the_journal_entry_as_json(mcp: Any, sandbox: SandboxServer) -> None:
    history = await make_history(mcp, sandbox)

    read = await mcp.client.read_resource(f"evolink://tasks/{history.last['task_id']}")
    failed = await mcp.client.read_resource(f"evolink://tasks/{history.failed['task_id']}")

    (contents,) = read.contents
    assert contents.mime_type == "application/json"
    body = json.loads(contents.text)
    assert (body["task_id"], body["status"], body["model"]) == (history.last["task_id"], "completed", "z-image-turbo")
    assert body["prompt"] == "a small boat" + INSTANT and body["credits_reserved"] == history.last["credits_reserved"]
    assert body["saved_paths"] == [image["path"] for image in history.last["images"]]
    assert json.loads(failed.contents[0].text)["error_code"] == "content_policy_violation"


async def test_the_task_resource_of_an_unknown_task_is_an_error_pointing_at_list_tasks(mcp: Any) -> None:
    with pytest.raises(MCPError, match=r"No task 'task-unified-1-nosuch'.*list_tasks"):
        await mcp.client.read_resource("evolink://tasks/task-unified-1-nosuch")


def _cli(*args: str) -> list[str]:
    script = shutil.which("evolink-mcp", path=str(Path(sys.executable).parent))
    return [script, *args] if script else [sys.executable, "-m", "evolink_mcp", *args]


async def test_the_tasks_command_prints_the_journal_in_a_terminal_and_as_json(
    mcp: Any, sandbox: SandboxServer, state_dir: Path, tmp_path: Path
) -> None:
    history = await make_history(mcp, sandbox)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "XDG_"))}
    env.update(HOME=str(tmp_path / "home"), EVOLINK_STATE_DIR=str(state_dir))

    async def run(*args: str) -> tuple[str, str]:
        with anyio.fail_after(60):
            done = await anyio.run_process(_cli("tasks", *args), env=env, check=False)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode(), done.stderr.decode()

    outputs: dict[str, tuple[str, str]] = {}

    async def collect(name: str, *args: str) -> None:
        outputs[name] = await run(*args)

    async with anyio.create_task_group() as group:  # side by side: each start-up takes a while
        group.start_soon(collect, "table")
        group.start_soon(collect, "json", "--status", "completed", "--limit", "1", "--json")
    table, table_err = outputs["table"]
    newest_completed = json.loads(outputs["json"][0])

    assert (
        table.index(history.last["task_id"])
        < table.index(history.failed["task_id"])
        < table.index(history.first["task_id"])
    )
    assert history.last["images"][0]["path"] in table and "content_policy_violation" in table
    assert f"4 task(s); journal: {state_dir / JOURNAL_FILE}" in table_err
    (entry,) = newest_completed
    assert (entry["task_id"], entry["status"], entry["model"]) == (
        history.last["task_id"],
        "completed",
        "z-image-turbo",
    )
    assert entry["saved_paths"] == [image["path"] for image in history.last["images"]]
    assert entry["credits_reserved"] == history.last["credits_reserved"]
