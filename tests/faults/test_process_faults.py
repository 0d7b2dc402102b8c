"""The stdio server as a real process against the sandbox in another: killed mid-wait, or out of disk space."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest
from fault_support import (
    RESUME_TIMEOUT,
    SandboxProcess,
    call_until_killed,
    images_in,
    is_png,
    journal_row,
    server_env,
    stdio_server,
    text_of,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_server_killed_mid_wait_resumes_on_restart_and_saves_the_image_without_submitting_twice(
    remote_sandbox: SandboxProcess, tmp_path: Path
) -> None:
    env = server_env(tmp_path, remote_sandbox.base_url)
    state_dir, output_dir = tmp_path / "state", tmp_path / "out"
    arguments = {
        "prompt": "a lighthouse in a storm [sandbox:duration=4]",
        "wait_seconds": 120,
        "client_request_id": "kill-9-request",
    }

    async with stdio_server(env, tmp_path, "first") as first, anyio.create_task_group() as group:
        group.start_soon(call_until_killed, first, arguments)
        # Kill once the task id is journaled: from then on, nothing the server knows can be lost.
        task_id = await wait_for(lambda: (journal_row(state_dir, "kill-9-request") or {}).get("task_id"), seconds=20)
        os.kill(first.pid, signal.SIGKILL)
        group.cancel_scope.cancel()

    (posted,) = await remote_sandbox.requests("generations")
    assert posted["task_id"] == task_id and posted["headers"]["idempotency-key"] == "kill-9-request"
    assert images_in(output_dir) == [], "killed before the task could have completed"

    async with stdio_server(env, tmp_path, "second") as second:
        # No tool call: the restarted server finds the unfinished task in its journal and completes it.
        (image,) = await wait_for(lambda: images_in(output_dir), seconds=RESUME_TIMEOUT)
        assert is_png(image) and task_id in image.name
        checked = await second.client.call_tool("check_task", {"task_id": task_id})
        retried = await second.client.call_tool("generate_image", arguments)

    assert not checked.is_error, text_of(checked)
    assert checked.structured_content is not None
    assert checked.structured_content["status"] == "completed"
    assert [i["path"] for i in checked.structured_content["images"]] == [str(image)]
    # The agent retrying its interrupted call gets the same task, not a second charge.
    assert not retried.is_error, text_of(retried)
    assert retried.structured_content is not None and retried.structured_content["task_id"] == task_id
    assert "nothing new was sent" in text_of(retried)
    assert len(await remote_sandbox.requests("generations")) == 1
    assert len(await remote_sandbox.requests("results")) == 1  # downloaded once, by the restarted server
    assert images_in(output_dir) == [image]
    row = journal_row(state_dir, "kill-9-request")
    assert row is not None and row["finished"] == 1 and row["save_error"] is None


# Files over this size cannot be written (EFBIG, like a disk filling up mid-write): the journal and the
# log stay far below it, a 4K result image (about 370 KB from the sandbox) does not.
FILE_SIZE_LIMIT_KB = 256


async def test_a_disk_that_fills_up_mid_download_leaves_no_partial_file_keeps_the_urls_and_a_restart_saves_it(
    remote_sandbox: SandboxProcess, tmp_path: Path
) -> None:
    env = server_env(tmp_path, remote_sandbox.base_url)
    output_dir = tmp_path / "out"
    # An unprivileged stand-in for ENOSPC: mounting a tiny filesystem needs root and a mount namespace.
    limits = f"trap '' XFSZ; ulimit -f {FILE_SIZE_LIMIT_KB * 2}"  # 512-byte blocks; ignored XFSZ -> EFBIG
    arguments = {"prompt": "a glacier at noon [sandbox:duration=0]", "quality": "4K", "client_request_id": "full"}

    async with stdio_server(env, tmp_path, "limited", limits=limits) as limited:
        result = await limited.client.call_tool("generate_image", arguments)

    text = text_of(result)
    assert not result.is_error, text
    data = result.structured_content
    assert data is not None and data["status"] == "completed"
    assert "File too large" in data["save_error"] and f"Saving failed: {data['save_error']}" in text
    url = data["images"][0]["url"]  # the one image (checked whole below), not saved
    assert url in text and data["urls_expire_at"] in text
    assert data["images"] == [{"index": 0, "url": url}]
    assert "check_task" in data["next_step"]
    assert list(output_dir.iterdir()) == [], "a failed write leaves nothing behind: no partial image, no temp file"

    async with stdio_server(env, tmp_path, "unlimited") as unlimited:
        # Space again: the restarted server retries saving on its own, before any tool call.
        (image,) = await wait_for(lambda: images_in(output_dir), seconds=RESUME_TIMEOUT)
        checked = await unlimited.client.call_tool("check_task", {"task_id": data["task_id"]})

    assert is_png(image) and image.stat().st_size > FILE_SIZE_LIMIT_KB * 1024
    assert not checked.is_error and checked.structured_content is not None, text_of(checked)
    assert checked.structured_content["images"][0]["path"] == str(image)
    assert "save_error" not in checked.structured_content
    assert len(await remote_sandbox.requests("generations")) == 1
