"""Fixtures for the journal's guarantees: the MCP server fixtures (tests/mcp_session.py) without previews,
restarts on one state directory, and another process holding the journal's lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from journal_support import LOCK_HOLDER_SCRIPT, LockHolder

from mcp_session import WAIT_SECONDS


@pytest.fixture
def settings_defaults() -> dict[str, Any]:
    """Without previews unless asked: the journal's guarantees do not depend on them, and making them is most
    of a quick task's time."""
    return {"wait_seconds": WAIT_SECONDS, "preview_max_bytes": 0}


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The state directory `settings_for` points every server at: one per test, shared by its restarts."""
    return tmp_path / "state"


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def hold_lock() -> Iterator[Callable[..., LockHolder]]:
    """`hold_lock(path)`: a process with BEGIN EXCLUSIVE on `path`; `mode="exclusive-mode"` also keeps
    SQLite's exclusive locking mode, which shuts out readers and WAL set-up too. Killed at the end."""
    processes: list[subprocess.Popen[str]] = []

    def start(path: Path, mode: str = "transaction") -> LockHolder:
        process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER_SCRIPT, str(path), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        return LockHolder(process)

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
