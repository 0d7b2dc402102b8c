"""Fixtures for the fault tests: the sandbox in its own process, and servers in-process with quick retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fault_support import QUICK_RETRY, SandboxProcess, Session, settings_for

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.images.polling import Clock
from evolink_mcp.sandbox import SandboxServer
from mcp_session import CheckedClient


@pytest.fixture(scope="module")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """`evolink-mcp sandbox --task-seconds 3` in its own process, for servers that are killed and restarted."""
    sandbox = SandboxProcess(tmp_path_factory.mktemp("sandbox-process"), task_seconds=3)
    try:
        sandbox.wait_until_serving()
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
async def remote_sandbox(sandbox_process: SandboxProcess, anyio_backend: str) -> SandboxProcess:
    """The sandbox process, reset: no tasks, faults or logged requests."""
    await sandbox_process.reset()
    return sandbox_process


@pytest.fixture
def connect(
    sandbox: SandboxServer, tmp_path: Path, clock: Clock
) -> Callable[..., AbstractAsyncContextManager[Session]]:
    """`async with connect(output_dir=...) as mcp:` a fresh server over the in-process sandbox, on the test's
    clock, with quick retries."""

    @asynccontextmanager
    async def open_session(**overrides: Any) -> AsyncIterator[Session]:
        settings = settings_for(sandbox, tmp_path, **overrides)
        deps = build_deps(settings, allowed_dirs=None, retry=QUICK_RETRY, clock=clock)
        async with CheckedClient(build_server(deps)) as client:
            yield Session(client, deps)

    return open_session
