"""Fixtures for the journal's guarantees: the server fixtures of tests/server, restarts on one state directory,
and readers of the journal file that do not go through the code under test."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from evolink_mcp.journal import JOURNAL_FILE
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings


def _server_fixtures() -> Any:
    """tests/server/conftest.py under its own module name (two modules called `conftest` would collide)."""
    path = Path(__file__).parents[1] / "server" / "conftest.py"
    spec = importlib.util.spec_from_file_location("evolink_server_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_server = _server_fixtures()
Session = _server.Session
API_KEY: str = _server.API_KEY
api_key = _server.api_key
api_key_never_logged = _server.api_key_never_logged  # autouse: the key is in no log record of any test here
settings = _server.settings
deps = _server.deps
server = _server.server
server_for = _server.server_for
connect = _server.connect
mcp = _server.mcp

# The task is finished when submitted: for tests where following it is not the point.
INSTANT = " [sandbox:duration=0]"
DEFAULT_MODEL = "gemini-3.1-flash-image-preview"


@pytest.fixture
def settings_for(sandbox: SandboxServer, tmp_path: Path) -> Callable[..., Settings]:
    """Settings pointing at the sandbox (as in tests/server), without previews unless asked: the journal's
    guarantees do not depend on them, and making them is most of a quick task's time."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_key": SecretStr(API_KEY),
            "base_url": sandbox.base_url,
            "files_base_url": sandbox.base_url,
            "output_dir": tmp_path / "images",
            "wait_seconds": _server.WAIT_SECONDS,
            "preview_max_bytes": 0,
            "state_dir": tmp_path / "state",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The state directory `settings_for` points every server at: one per test, shared by its restarts."""
    return tmp_path / "state"


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


def journal_rows(state_dir: Path) -> list[dict[str, Any]]:
    """Every submission in the journal file, oldest first, read with a connection of our own."""
    path = state_dir / JOURNAL_FILE
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute("SELECT * FROM submissions ORDER BY created_at").fetchall()
    finally:
        connection.close()
    out = []
    for row in rows:
        item = dict(row)
        for name in ("request_json", "result_urls", "saved_paths"):
            item[name] = json.loads(item[name]) if item[name] else None
        out.append(item)
    return out


def journal_row(state_dir: Path, task_id: str) -> dict[str, Any]:
    (row,) = [r for r in journal_rows(state_dir) if r["task_id"] == task_id]
    return row


async def saved_images(directory: Path, count: int = 1, seconds: float = 10.0) -> list[Path]:
    """The images a background follower saves, waited for (bounded) as they appear."""
    # The files appear on disk with no event to wait on: look again briefly, bounded.
    with anyio.fail_after(seconds):
        while len(found := sorted(directory.glob("*.png"))) < count:  # noqa: ASYNC110, ASYNC240
            await anyio.sleep(0.02)
    return found


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) for something another thread or process makes true; for the sandbox's own timing."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)


_LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive-mode":
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
connection.close()
print("released", flush=True)
"""


class LockHolder:
    """Another process holding an exclusive lock on a journal file until `release()`."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"
        self.process.wait(10)


@pytest.fixture
def hold_lock() -> Iterator[Callable[..., LockHolder]]:
    """`hold_lock(path)`: a process with BEGIN EXCLUSIVE on `path`; `mode="exclusive-mode"` also keeps
    SQLite's exclusive locking mode, which shuts out readers and WAL set-up too. Killed at the end."""
    processes: list[subprocess.Popen[str]] = []

    def start(path: Path, mode: str = "transaction") -> LockHolder:
        process = subprocess.Popen(
            [sys.executable, "-c", _LOCK_HOLDER, str(path), mode],
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
