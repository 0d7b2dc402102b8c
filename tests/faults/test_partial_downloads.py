"""A server killed mid-download leaves no partial file among the images for good: the restart clears it."""

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
    server_env,
    stdio_server,
    wait_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def partial_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.part")) if directory.is_dir() else []


def hidden_entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("."))


async def test_a_server_killed_mid_download_leaves_nothing_lasting_in_the_output_folder(
    remote_sandbox: SandboxProcess, tmp_path: Path
) -> None:
    env = server_env(tmp_path, remote_sandbox.base_url)
    output_dir = tmp_path / "out"
    await remote_sandbox.add_fault(kind="latency", endpoint="results", ms=60_000, count=1)  # the download hangs
    arguments = {"prompt": "a harbour at dawn [sandbox:duration=0]", "client_request_id": "kill-mid-download"}

    async with stdio_server(env, tmp_path, "first") as first, anyio.create_task_group() as group:
        group.start_soon(call_until_killed, first, arguments)
        with anyio.fail_after(20):  # the download has reached the upstream, which holds it
            while not await remote_sandbox.requests("results"):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert partial_files(output_dir)
        os.kill(first.pid, signal.SIGKILL)
        group.cancel_scope.cancel()

    assert images_in(output_dir) == []

    async with stdio_server(env, tmp_path, "second"):
        # The restart resumes the task, saves its image, and clears what the killed download left.
        (image,) = await wait_for(lambda: images_in(output_dir), seconds=RESUME_TIMEOUT)
        await wait_for(lambda: not partial_files(output_dir) and not hidden_entries(output_dir), seconds=RESUME_TIMEOUT)

    assert sorted(p.name for p in output_dir.iterdir()) == sorted([image.name, image.stem[:-2] + ".json"])
