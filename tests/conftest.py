"""Shared fixtures: the anyio backend, one Evolink sandbox server per test session, the clock it and the
in-process servers share, a self-signed certificate, and (registered once, for every folder) the MCP session
fixtures."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolink_mcp.images.polling import Clock
from evolink_mcp.sandbox import SandboxConfig, SandboxServer
from virtual_time import VirtualClock

pytest_plugins = ["mcp_session", "postgres_server"]

SANDBOX_TASK_SECONDS = 0.05


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """A command run in-process (the CLI's tests) configures the root logger for a real process: its redacting
    handler folds tracebacks into the message, which later tests' caplog would then never see as exc_info."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(task_seconds=SANDBOX_TASK_SECONDS)) as server:
        yield server


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock:
    """The clock the in-process servers poll on and the sandbox times its tasks by: virtual (a poll 3 s away
    happens at once and finds the task as 3 s later), or real for a test marked `real_time`."""
    return Clock() if request.node.get_closest_marker("real_time") else VirtualClock()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer, clock: Clock) -> Iterator[SandboxServer]:
    """The session's sandbox, reset (no tasks, files, faults or logged requests) and on the test's clock.
    `.base_url`, `.state`."""
    sandbox_server.state.reset()
    sandbox_server.state.clock = clock.now
    yield sandbox_server
    sandbox_server.state.clock = time.monotonic


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """(certificate, key): self-signed, for 127.0.0.1; the test is skipped without the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        ["openssl", *request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
