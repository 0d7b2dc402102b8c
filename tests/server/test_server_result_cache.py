"""Results held in memory are bounded: an evicted task's images come back from the journal and the saved files,
with nothing downloaded again and previews still shown."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from mcp_session import INSTANT

pytestmark = pytest.mark.anyio


async def test_a_task_evicted_from_a_cache_of_one_is_checked_with_the_same_files_no_second_download_and_previews(
    settings_for: Callable[..., Settings],
    connect: Callable[..., AbstractAsyncContextManager[Any]],
    sandbox: SandboxServer,
) -> None:
    deps = build_deps(settings_for(result_cache_size=1), allowed_dirs=None)
    async with connect(build_server(deps)) as mcp:
        made = [await mcp.call("generate_image", {"prompt": f"a lighthouse {i}" + INSTANT}) for i in range(3)]
        assert len(deps.service.results) == 1  # only the newest is held
        downloads, polls = len(sandbox.state.requests("results")), len(sandbox.state.requests("tasks"))

        first = mcp.data(made[0])
        checked = await mcp.call("check_task", {"task_id": first["task_id"]})

        assert not checked.is_error, mcp.text(checked)
        assert mcp.data(checked)["images"] == first["images"]  # same files, same MIME types (read from the bytes)
        assert len(sandbox.state.requests("results")) == downloads == 3  # nothing downloaded again
        assert len(sandbox.state.requests("tasks")) == polls  # read from the journal: upstream not even asked
        assert len(mcp.images(checked)) == 1 and len(mcp.images(made[0])) == 1  # its preview shown again
        assert len(deps.service.results) == 1 and deps.service.results.locks_held == 0
