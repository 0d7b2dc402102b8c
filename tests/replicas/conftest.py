"""Fixtures: one sandbox process per module, and per test a deployment (a fresh database on the session's
PostgreSQL server, a shared output folder) whose replicas the test starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from replica_support import Deployment, sandbox_process, stop

SANDBOX_TASK_SECONDS = 0.3


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox"), SANDBOX_TASK_SECONDS) as running:
        yield running


@pytest.fixture
def deployment(tmp_path: Path, postgres_url: str, sandbox: tuple[str, Path]) -> Iterator[Deployment]:
    sandbox_url, sandbox_log = sandbox
    output_dir = tmp_path / "shared-volume"
    output_dir.mkdir()
    deployed = Deployment(tmp_path, postgres_url, sandbox_url, sandbox_log, output_dir)
    try:
        yield deployed
    finally:
        for replica in deployed.replicas:
            stop(replica.process)
