"""The journal file itself: WAL on disk, every stage of a submission kept, corrupt or locked files handled."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from journal_support import LockHolder

from evolink_mcp.journal import JOURNAL_FILE, OWNERS_DIR, SUBMITTED, SUBMITTING, UNKNOWN, Journal, JournalError

pytestmark = pytest.mark.anyio

SHORT_LOCK_WAIT = 0.2  # seconds a journal waits for another process's lock in these tests


async def test_the_journal_is_a_wal_mode_sqlite_file_in_the_state_directory(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    await journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {"size": "1:1"})
    journal.close()

    path = tmp_path / "state" / JOURNAL_FILE
    assert journal.location == str(path)
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


async def test_every_stage_of_a_submission_is_kept_and_read_back_by_a_later_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    await journal.record_intent("key-1", "fp-1", "z-image-turbo", "a lamp", {"size": "1:1", "n": 2})
    assert (await journal.by_request_key("key-1")).state == SUBMITTING  # type: ignore[union-attr]
    await journal.record_submitted("key-1", "task-unified-1-abc", "pending", 0.4)
    await journal.record_status("task-unified-1-abc", "processing", 40)
    await journal.record_status("task-unified-1-abc", "completed", 100, result_urls=["https://cdn/1.png"])
    await journal.record_saved("task-unified-1-abc", ["https://cdn/1.png"], ["/pictures/1.png"], None)
    journal.close()

    later = Journal(tmp_path / "state")
    entry = await later.by_request_key("key-1")
    later.close()

    assert entry is not None
    assert (entry.state, entry.task_id, entry.status, entry.progress) == (
        SUBMITTED,
        "task-unified-1-abc",
        "completed",
        100,
    )
    assert (entry.model, entry.prompt, entry.request) == ("z-image-turbo", "a lamp", {"size": "1:1", "n": 2})
    assert entry.credits == 0.4 and entry.fingerprint == "fp-1"
    assert entry.result_urls == ["https://cdn/1.png"] and entry.saved_paths == ["/pictures/1.png"]
    assert entry.finished and entry.save_error is None


async def test_a_submission_left_mid_post_by_a_dead_process_is_marked_outcome_unknown(tmp_path: Path) -> None:
    dead = Journal(tmp_path / "state")
    await dead.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})
    await dead.record_intent("key-2", "fp", "z-image-turbo", "a vase", {})
    await dead.record_submitted("key-2", "task-unified-1-abc", "pending", 0.2)
    dead.close()

    journal = Journal(tmp_path / "state")
    started = time.time()
    await journal.record_intent("key-3", "fp", "z-image-turbo", "a cup", {})  # this process's own, mid-POST
    assert await journal.mark_interrupted(before=started) == 1
    assert (await journal.by_request_key("key-1")).state == UNKNOWN  # type: ignore[union-attr]
    assert (await journal.by_request_key("key-2")).state == SUBMITTED  # type: ignore[union-attr]
    assert (await journal.by_request_key("key-3")).state == SUBMITTING  # type: ignore[union-attr]
    journal.close()


def _garbage(path: Path) -> bytes:
    data = b"this is not a database\n" * 200
    path.write_bytes(data)
    return data


def _damaged_pages(path: Path) -> bytes:
    """A real journal whose header survives but whose pages do not."""

    async def fill() -> None:
        journal = Journal(path.parent)
        for i in range(40):
            await journal.record_intent(f"key-{i}", "fp", "z-image-turbo", "p" * 200, {"x": "y" * 100})
        journal.close()

    anyio.run(fill)
    with path.open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xff" * 8192)
    return path.read_bytes()


@pytest.mark.parametrize("corrupt", [_garbage, _damaged_pages], ids=["garbage", "damaged-pages"])
def test_a_corrupt_journal_is_kept_aside_and_a_fresh_one_started_with_a_warning(
    corrupt: Callable[[Path], bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / JOURNAL_FILE
    old = corrupt(path)

    journal = Journal(state)
    location = journal.location

    (aside,) = state.glob(f"{JOURNAL_FILE}.corrupt-*[0-9]")
    assert aside.read_bytes() == old
    assert location == str(path)
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "evolink_mcp.journal"
    ]
    assert any("corrupt" in w and aside.name in w for w in warnings), warnings

    anyio.run(lambda: journal.record_intent("new-key", "fp", "z-image-turbo", "a lamp", {}))
    journal.close()
    again = Journal(state)  # the next start finds a healthy journal: no second file set aside
    assert anyio.run(lambda: again.by_request_key("new-key")) is not None
    again.close()
    assert len(list(state.glob(f"{JOURNAL_FILE}.corrupt-*[0-9]"))) == 1


def test_a_journal_corrupt_twice_in_a_row_keeps_both_old_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / JOURNAL_FILE
    kept = []
    for generation in (b"first", b"second"):
        path.write_bytes(generation * 1000)
        kept.append(path.read_bytes())
        journal = Journal(state)
        assert journal.location == str(path)
        journal.close()

    assert sorted(p.read_bytes() for p in state.glob(f"{JOURNAL_FILE}.corrupt-*[0-9]")) == sorted(kept)


def test_the_write_ahead_log_of_a_corrupt_journal_is_kept_aside_with_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _garbage(state / JOURNAL_FILE)
    (state / f"{JOURNAL_FILE}-wal").write_bytes(b"pending pages of the old journal")

    journal = Journal(state)
    assert journal.location == str(state / JOURNAL_FILE)
    journal.close()

    (aside,) = state.glob(f"{JOURNAL_FILE}.corrupt-*[0-9]")
    assert (state / f"{aside.name}-wal").read_bytes() == b"pending pages of the old journal"


def test_a_state_directory_that_cannot_be_created_keeps_the_journal_in_memory_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory's parent should be")
    journal = Journal(blocker / "state")

    location = journal.location

    assert location.startswith("memory only") and str(blocker / "state") in location
    assert "not writable" in location
    assert any("memory only" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    anyio.run(lambda: journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {}))
    assert anyio.run(lambda: journal.by_request_key("key-1")) is not None  # it still works, for this process
    journal.close()
    assert blocker.read_text().startswith("a file")


async def test_a_journal_held_exclusively_by_another_process_at_start_up_falls_back_to_memory_with_the_reason(
    tmp_path: Path, hold_lock: Callable[..., LockHolder]
) -> None:
    state = tmp_path / "state"
    previous = Journal(state)
    assert previous.location == str(state / JOURNAL_FILE)  # the file exists, as another server left it
    previous.close()
    hold_lock(state / JOURNAL_FILE, "exclusive-mode")

    journal = Journal(state, timeout=SHORT_LOCK_WAIT)
    with anyio.fail_after(5):
        location = await anyio.to_thread.run_sync(lambda: journal.location)

    assert location.startswith("memory only") and "locked by another process" in location
    assert str(state / JOURNAL_FILE) in location
    assert list(state.glob("*.corrupt-*")) == []  # locked is not corrupt: nothing moved aside
    journal.close()


async def test_a_journal_write_blocked_by_another_process_fails_with_a_clear_error_and_updates_carry_on(
    tmp_path: Path, hold_lock: Callable[..., LockHolder], caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    journal = Journal(state, timeout=SHORT_LOCK_WAIT)
    await journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})
    await journal.record_submitted("key-1", "task-unified-1-abc", "pending", 0.2)
    holder = hold_lock(state / JOURNAL_FILE)

    with anyio.fail_after(5), pytest.raises(JournalError) as raised:
        await journal.record_intent("key-2", "fp", "z-image-turbo", "a vase", {})
    with anyio.fail_after(5):
        await journal.record_status("task-unified-1-abc", "processing", 50)  # an update never raises
        still_readable = await journal.by_request_key("key-1")

    assert str(state / JOURNAL_FILE) in raised.value.message and "locked" in raised.value.message
    assert raised.value.charged == "no" and raised.value.retryable
    assert any(str(state / JOURNAL_FILE) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert still_readable is not None and still_readable.status == "pending"
    holder.release()
    await journal.record_intent("key-2", "fp", "z-image-turbo", "a vase", {})
    assert await journal.by_request_key("key-2") is not None
    journal.close()


async def test_a_journal_write_waiting_on_a_lock_does_not_block_the_event_loop(
    tmp_path: Path, hold_lock: Callable[..., LockHolder]
) -> None:
    state = tmp_path / "state"
    journal = Journal(state)  # the default lock wait: seconds
    await journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})
    holder = hold_lock(state / JOURNAL_FILE)
    written = anyio.Event()
    ticks = 0

    async def write() -> None:
        await journal.record_intent("key-2", "fp", "z-image-turbo", "a vase", {})
        written.set()

    with anyio.fail_after(4):
        async with anyio.create_task_group() as group:
            group.start_soon(write)
            for _ in range(10):  # the loop keeps running while the write waits for the lock
                await anyio.sleep(0.01)
                ticks += 1
            assert not written.is_set()
            await anyio.to_thread.run_sync(holder.release)
            await written.wait()

    assert ticks == 10
    assert await journal.by_request_key("key-2") is not None
    journal.close()


async def test_unfinished_tasks_to_resume_are_only_those_recorded_before_this_process_started(tmp_path: Path) -> None:
    earlier = Journal(tmp_path / "state")
    await earlier.record_intent("key-1", "fp", "z-image-turbo", "earlier", {})
    await earlier.record_submitted("key-1", "task-earlier", "processing", 0.2)
    started = time.time()
    await earlier.record_intent("key-2", "fp", "z-image-turbo", "since", {})  # as if by a third, stopped process
    await earlier.record_submitted("key-2", "task-since", "processing", 0.2)
    earlier.close()

    journal = Journal(tmp_path / "state")
    adopted, _ = await journal.adopt_unfinished(newer_than=started - 3600, before=started)
    journal.close()

    assert [entry.task_id for entry in adopted] == ["task-earlier"]


# -- processes sharing one journal ----------------------------------------------------------------------


async def submitted_by(journal: Journal, key: str) -> None:
    await journal.record_intent(key, "fp", "z-image-turbo", "a lamp", {})
    await journal.record_submitted(key, f"task-{key}", "processing", 0.2)


async def test_a_running_process_keeps_its_tasks_and_a_stopped_ones_are_adopted_once(tmp_path: Path) -> None:
    first, second, third = (Journal(tmp_path / "state") for _ in range(3))
    await submitted_by(first, "key-1")
    later = time.time() + 1

    kept = await second.adopt_unfinished(newer_than=0, before=later)
    first.close()  # the first process stops with its task unfinished
    adopted = await second.adopt_unfinished(newer_than=0, before=later)
    again = await third.adopt_unfinished(newer_than=0, before=later)
    row = await third.by_request_key("key-1")
    for journal in (second, third):
        journal.close()

    assert kept == ([], 1)  # followed by the running first process: left alone
    assert [entry.task_id for entry in adopted[0]] == ["task-key-1"] and adopted[1] == 0
    assert again == ([], 1)  # the second process follows it now
    assert row is not None and row.owner == second.owner


async def test_processes_starting_together_adopt_each_stopped_task_once(tmp_path: Path) -> None:
    stopped = Journal(tmp_path / "state")
    for number in range(20):
        await submitted_by(stopped, f"key-{number}")
    stopped.close()
    starting = [Journal(tmp_path / "state") for _ in range(4)]
    later = time.time() + 1
    adopted: list[str] = []

    async def adopt(journal: Journal) -> None:
        entries, _ = await journal.adopt_unfinished(newer_than=0, before=later)
        adopted.extend(entry.request_key for entry in entries)

    async with anyio.create_task_group() as group:
        for journal in starting:
            group.start_soon(adopt, journal)
    for journal in starting:
        journal.close()

    assert sorted(adopted) == sorted(f"key-{number}" for number in range(20))


async def test_a_running_process_mid_post_is_not_marked_interrupted_by_another(tmp_path: Path) -> None:
    running, starting = Journal(tmp_path / "state"), Journal(tmp_path / "state")
    await running.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})  # its POST is under way
    later = time.time() + 1

    while_running = await starting.mark_interrupted(before=later)
    running.close()  # it stopped before the answer came
    once_stopped = await starting.mark_interrupted(before=later)
    row = await starting.by_request_key("key-1")
    starting.close()

    assert (while_running, once_stopped) == (0, 1)
    assert row is not None and row.state == UNKNOWN


async def test_an_owner_lock_file_left_by_a_killed_process_is_cleared(tmp_path: Path) -> None:
    owners = tmp_path / "state" / OWNERS_DIR
    owners.mkdir(parents=True)
    stale = owners / "0123456789abcdef.lock"
    stale.write_bytes(b"")  # nobody holds it: its process was killed two minutes ago
    os.utime(stale, (time.time() - 120, time.time() - 120))
    fresh = owners / "fedcba9876543210.lock"
    fresh.write_bytes(b"")  # nobody holds it yet: a process may be about to lock it

    journal = Journal(tmp_path / "state")
    await journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})
    held = sorted(path.name for path in owners.iterdir())
    journal.close()

    assert held == sorted([f"{journal.owner}.lock", fresh.name])
    assert list(owners.iterdir()) == [fresh]  # and its own goes when it closes


def test_processes_creating_the_journal_together_all_keep_it_on_disk(tmp_path: Path) -> None:
    opened: list[str] = []
    at_once = threading.Barrier(6)

    def open_one(journal: Journal) -> None:
        at_once.wait()
        opened.append(journal.location)  # opens the file (or falls back to memory, saying why)
        journal.close()

    for attempt in range(40):  # switching a new file to WAL is where they collided, now and then
        state = tmp_path / f"state-{attempt}"
        threads = [threading.Thread(target=open_one, args=(Journal(state),)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(opened) == 240 and all(location.endswith(JOURNAL_FILE) for location in opened), set(opened)


async def test_a_process_whose_new_lock_file_another_is_probing_still_holds_it(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    journal = Journal(tmp_path / "state")
    own = tmp_path / "state" / OWNERS_DIR / f"{journal.owner}.lock"
    own.parent.mkdir(parents=True)
    probe = own.open("a+b")  # another process starting now, checking whether this new file's owner runs
    fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    # Released while the journal opens (should the journal open later, the test checks nothing it would miss).
    prober = threading.Timer(0.5, probe.close)
    prober.start()

    await submitted_by(journal, "key-1")
    prober.join()  # the probe is over
    other = Journal(tmp_path / "state")
    ours, entry = await other.take("task-key-1")
    other.close()
    journal.close()

    assert ours is False and entry is not None and entry.owner == journal.owner  # it runs: its task stays its own


async def test_a_journal_from_before_owners_were_recorded_gains_the_column_and_its_tasks_are_adopted(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").mkdir()
    old = sqlite3.connect(tmp_path / "state" / JOURNAL_FILE)
    old.executescript(OLD_SCHEMA)
    old.execute(
        "INSERT INTO submissions (request_key, fingerprint, state, task_id, request_json, created_at, updated_at)"
        " VALUES ('key-1', 'fp', 'submitted', 'task-old', '{}', ?, ?)",
        (time.time() - 60, time.time() - 60),
    )
    old.commit()
    old.close()

    journal = Journal(tmp_path / "state")
    adopted, running = await journal.adopt_unfinished(newer_than=0, before=time.time())
    journal.close()

    assert [entry.task_id for entry in adopted] == ["task-old"] and running == 0
    assert adopted[0].owner == journal.owner


OLD_SCHEMA = """
CREATE TABLE submissions (
    request_key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL, task_id TEXT UNIQUE,
    status TEXT, progress REAL, model TEXT, prompt TEXT, request_json TEXT NOT NULL, credits REAL,
    result_urls TEXT, saved_paths TEXT, save_error TEXT, error_code TEXT, error_message TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, finished INTEGER NOT NULL DEFAULT 0
);
"""
