"""Shared fixtures: the anyio backend and one Evolink sandbox server per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evolink_mcp.sandbox import SandboxConfig, SandboxServer

SANDBOX_TASK_SECONDS = 0.05


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(task_seconds=SANDBOX_TASK_SECONDS)) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session's sandbox, reset: no tasks, files, faults or logged requests. `.base_url`, `.state`."""
    sandbox_server.state.reset()
    return sandbox_server
