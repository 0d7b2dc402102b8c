"""A SQLite journal from before tenants (client_request_id its primary key): brought to today's table, its entries
the single tenant's. (Processes opening it together are serialized by the copy's BEGIN IMMEDIATE; the copy is too
quick for a test to catch two of them inside it.)"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from evolink_mcp.journal import JOURNAL_FILE, SINGLE_TENANT, Journal

pytestmark = pytest.mark.anyio

BEFORE_TENANTS = """
CREATE TABLE submissions (
    request_key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT UNIQUE,
    status TEXT, progress REAL, model TEXT, prompt TEXT, request_json TEXT NOT NULL, credits REAL,
    result_urls TEXT, saved_paths TEXT, save_error TEXT, error_code TEXT, error_message TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, finished INTEGER NOT NULL DEFAULT 0,
    owner TEXT, output_dir TEXT
);
"""


async def test_a_journal_from_before_tenants_is_brought_over_as_the_single_tenants_and_ids_are_per_tenant(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / JOURNAL_FILE)
    old.executescript(BEFORE_TENANTS)
    for number in range(10):
        old.execute(
            "INSERT INTO submissions (request_key, fingerprint, state, task_id, request_json, created_at,"
            " updated_at, output_dir) VALUES (?, 'fp', 'submitted', ?, '{\"n\": 1}', ?, ?, '/kept')",
            (f"key-{number}", f"task-{number}", time.time() - 60, time.time() - 60),
        )
    old.commit()
    old.close()
    journals = [Journal(state) for _ in range(4)]
    seen: list[list[str]] = []

    async def read(journal: Journal) -> None:
        seen.append(sorted(e.request_key or "" for e in await journal.recent(limit=100)))

    async with anyio.create_task_group() as group:
        for journal in journals:
            group.start_soon(read, journal)
    entry = await journals[0].by_request_key("key-3")
    await journals[0].record_intent("key-3", "fp-other", "z-image-turbo", None, {}, tenant="another-tenant")
    for journal in journals:
        journal.close()

    assert seen == [sorted(f"key-{number}" for number in range(10))] * 4
    assert entry is not None and (entry.tenant, entry.task_id, entry.output_dir) == (SINGLE_TENANT, "task-3", "/kept")
    check = sqlite3.connect(state / JOURNAL_FILE)
    tables = [row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    keys = check.execute("SELECT count(*) FROM submissions WHERE request_key = 'key-3'").fetchone()[0]
    check.close()
    assert tables == ["submissions"] and keys == 2  # the same id, another tenant: its own record
