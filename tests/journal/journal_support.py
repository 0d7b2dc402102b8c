"""Helpers for the journal's tests: its file read with a connection of our own, and another process holding
its lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from evolink_mcp.journal import JOURNAL_FILE

DEFAULT_MODEL = "gemini-3.1-flash-image-preview"


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


LOCK_HOLDER_SCRIPT = """
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
