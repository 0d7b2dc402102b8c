"""Background completion: tasks the caller stopped waiting for, or a previous process left, end up saved."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from journal_support import journal_row

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.images.follower import FOLLOW_LIMIT_SECONDS
from evolink_mcp.images.polling import Clock
from evolink_mcp.journal import JOURNAL_FILE
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from mcp_session import Connect, ServerFor, saved_images, until

pytestmark = pytest.mark.anyio


def backdate(state_dir: Path, task_id: str, seconds: float) -> None:
    """Make the journal say the task was submitted `seconds` earlier (as after a long pause)."""
    connection = sqlite3.connect(state_dir / JOURNAL_FILE, isolation_level=None)
    try:
        connection.execute("UPDATE submissions SET created_at = created_at - ? WHERE task_id = ?", (seconds, task_id))
    finally:
        connection.close()


async def test_a_task_outlasting_the_wait_is_saved_by_the_server_and_check_task_then_answers_from_disk(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer, output_dir: Path, state_dir: Path
) -> None:
    async with connect(server_for(wait_seconds=0.2)) as mcp:
        pending = await mcp.call("generate_image", {"prompt": "a slow mural [sandbox:duration=1]"})
        task_id = mcp.data(pending)["task_id"]

        saved = await saved_images(output_dir)  # no further call: the server finishes the task itself
        await until(lambda: journal_row(state_dir, task_id)["finished"] == 1)
        polls, downloads = len(sandbox.state.requests("tasks")), len(sandbox.state.requests("results"))
        checked = await mcp.call("check_task", {"task_id": task_id})

    assert not pending.is_error and mcp.data(pending)["status"] in ("pending", "processing")
    assert mcp.data(pending)["followed_in_background"] is True
    assert "keeps following" in mcp.text(pending)
    row = journal_row(state_dir, task_id)
    assert row["status"] == "completed" and row["saved_paths"] == [str(p) for p in saved]
    assert not checked.is_error and mcp.data(checked)["status"] == "completed"
    assert [i["path"] for i in mcp.data(checked)["images"]] == [str(p) for p in saved]
    assert len(sandbox.state.requests("tasks")) == polls  # answered from the journal: no poll upstream
    assert len(sandbox.state.requests("results")) == downloads == 1  # and no second download


async def test_unfinished_tasks_of_a_previous_process_are_resumed_and_saved_on_start_up(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer, output_dir: Path, state_dir: Path
) -> None:
    async with connect(server_for(wait_seconds=0)) as mcp:
        pending = await mcp.call("generate_image", {"prompt": "a harbour at dusk [sandbox:duration=0.6]"})
    task_id = mcp.data(pending)["task_id"]
    assert journal_row(state_dir, task_id)["finished"] == 0  # the first process ended before the task did
    assert [p async for p in anyio.Path(output_dir).glob("*.png")] == []

    async with connect(server_for()) as mcp:  # starting is enough: nobody calls a tool
        saved = await saved_images(output_dir)
        await until(lambda: journal_row(state_dir, task_id)["finished"] == 1)
        polls = len(sandbox.state.requests("tasks"))
        checked = await mcp.call("check_task", {"task_id": task_id})

    assert len(saved) == 1 and len(sandbox.state.requests("generations")) == 1
    assert journal_row(state_dir, task_id)["saved_paths"] == [str(saved[0])]
    assert [i["path"] for i in mcp.data(checked)["images"]] == [str(saved[0])]
    assert len(sandbox.state.requests("tasks")) == polls


@pytest.mark.real_time  # the second server must start and look while the first one's task runs: real seconds
async def test_a_second_server_sharing_the_journal_leaves_the_first_ones_running_task_to_it(
    settings_for: Callable[..., Settings],
    connect: Connect,
    sandbox: SandboxServer,
    output_dir: Path,
    state_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two clients each launching the server on one state folder: neither the second server's start-up nor a
    check_task there makes it follow the first one's task, which is downloaded and saved once."""

    async def logged(text: str) -> None:
        await until(lambda: any(text in r.getMessage() for r in caplog.records))

    async with connect(build_server(build_deps(settings_for(wait_seconds=0), allowed_dirs=None))) as first:
        pending = await first.call("generate_image", {"prompt": "a harbour at dusk [sandbox:duration=3]"})
        task_id = first.data(pending)["task_id"]
        second_deps = build_deps(settings_for(wait_seconds=0), allowed_dirs=None)
        async with connect(build_server(second_deps)) as second:
            await logged("adopting 0 unfinished task(s) no running process follows; 1 followed by other running")
            checked = await second.call("check_task", {"task_id": task_id})
            await logged(f"not following {task_id}")
            still_running = sandbox.state.task_status(task_id) != "completed"
            followed_by_second = second_deps.service.is_followed(task_id)
            saved = await saved_images(output_dir)
            await until(lambda: journal_row(state_dir, task_id)["finished"] == 1)

    assert second.data(checked)["status"] in ("pending", "processing")
    assert still_running and not followed_by_second  # left alone while the task ran, not once it was done
    assert len(saved) == 1 and len(sandbox.state.requests("results")) == 1  # one download, by the first server
    assert journal_row(state_dir, task_id)["owner"] != second_deps.service.journal.owner


async def test_a_task_from_before_a_long_pause_is_still_looked_at_and_saved_on_start_up(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer, output_dir: Path, state_dir: Path
) -> None:
    async with connect(server_for(wait_seconds=0)) as mcp:
        pending = await mcp.call("generate_image", {"prompt": "a harbour at dusk [sandbox:duration=0.3]"})
    task_id = mcp.data(pending)["task_id"]
    backdate(state_dir, task_id, FOLLOW_LIMIT_SECONDS + 600)  # submitted half an hour ago; links live a day
    await until(lambda: sandbox.state.task_status(task_id) == "completed")

    async with connect(server_for()):
        saved = await saved_images(output_dir)
        await until(lambda: journal_row(state_dir, task_id)["finished"] == 1)  # the file is there before the row

    assert journal_row(state_dir, task_id)["saved_paths"] == [str(saved[0])]


async def test_a_task_still_running_past_the_follow_limit_is_looked_at_once_and_then_left_alone(
    settings_for: Callable[..., Settings],
    connect: Connect,
    sandbox: SandboxServer,
    state_dir: Path,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    async with connect(build_server(build_deps(settings_for(wait_seconds=0), allowed_dirs=None, clock=clock))) as mcp:
        pending = await mcp.call("generate_image", {"prompt": "an endless task [sandbox:duration=600]"})
    task_id = mcp.data(pending)["task_id"]
    backdate(state_dir, task_id, FOLLOW_LIMIT_SECONDS + 1)
    polls = len(sandbox.state.requests("tasks"))

    deps = build_deps(settings_for(), allowed_dirs=None, clock=clock)
    async with connect(build_server(deps)):
        await until(lambda: any("stopped following" in r.getMessage() for r in caplog.records))
        followed = deps.service.is_followed(task_id)

    assert len(sandbox.state.requests("tasks")) == polls + 1
    assert not followed
    assert journal_row(state_dir, task_id)["finished"] == 0
    assert any(r.levelno == logging.WARNING and task_id in r.getMessage() for r in caplog.records)


async def test_a_task_that_fails_in_the_background_is_journaled_as_failed_and_finished(
    server_for: ServerFor, connect: Connect, state_dir: Path
) -> None:
    prompt = "forbidden [sandbox:fail=content_policy_violation] [sandbox:duration=0.5]"
    async with connect(server_for(wait_seconds=0)) as mcp:
        pending = await mcp.call("generate_image", {"prompt": prompt})
        task_id = mcp.data(pending)["task_id"]
        await until(lambda: journal_row(state_dir, task_id)["status"] == "failed")
        listed = await mcp.call("list_tasks", {"status": "failed"})

    row = journal_row(state_dir, task_id)
    assert (row["error_code"], row["finished"]) == ("content_policy_violation", 1)  # a restart leaves it be
    assert [t["task_id"] for t in mcp.data(listed)["tasks"]] == [task_id]
    assert mcp.data(listed)["tasks"][0]["error_code"] == "content_policy_violation"
