"""The journal's contract, held by both backends: SQLite (the embedded default) and PostgreSQL (a real server:
tests/postgres_server.py). Each `open_journal()` is another process's view of the same journal."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from evolink_mcp.journal import REFUSED, SUBMITTED, SUBMITTING, UNKNOWN, Journal, JournalError
from process_support import clean_env, free_port

pytestmark = pytest.mark.anyio

OpenJournal = Callable[..., Journal]
ALICE, BOB = "tenant-alice-hash", "tenant-bob-hash"
PASSWORD = "pw-Never-Shown-7"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the journals of a test live: a state folder, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return {"url": request.getfixturevalue("postgres_url")}
    return {"directory": tmp_path / "state"}


@pytest.fixture
async def open_journal(backend: dict[str, Any]) -> AsyncIterator[OpenJournal]:
    opened: list[Journal] = []

    def open_one(**options: Any) -> Journal:
        journal = Journal(backend.get("directory"), url=backend.get("url"), **options)
        opened.append(journal)
        return journal

    yield open_one
    for journal in opened:
        await journal.aclose()


async def submitted(journal: Journal, key: str, *, tenant: str | None = None, created: float | None = None) -> str:
    await journal.record_intent(key, f"fp-{key}", "z-image-turbo", f"prompt {key}", {"n": 1}, tenant=tenant)
    await journal.record_submitted(key, f"task-{key}", "pending", 1.5, tenant=tenant)
    return f"task-{key}"


async def test_every_stage_of_a_submission_is_kept_and_read_back_by_another_process(
    open_journal: OpenJournal,
) -> None:
    journal = open_journal()
    record = await journal.record_intent("key-1", "fp-1", "z-image-turbo", "a lamp", {"size": "1:1", "n": 2}, "/o")
    assert (record.state, record.request_key, record.owner, record.output_dir) == (
        SUBMITTING,
        "key-1",
        journal.owner,
        "/o",
    )
    await journal.record_submitted("key-1", "task-1", "pending", 0.4)
    await journal.record_status("task-1", "processing", 40)
    await journal.record_status("task-1", "completed", 100, result_urls=["https://cdn/1.png"])
    await journal.record_output_dir("task-1", "/elsewhere")
    await journal.record_saved("task-1", ["https://cdn/1.png"], ["/pictures/1.png"], None)
    await journal.aclose()

    later = open_journal()
    entry = await later.by_request_key("key-1")
    assert entry is not None and entry == await later.by_task_id("task-1") == later.by_task_id_now("task-1")
    assert (entry.state, entry.task_id, entry.status, entry.progress, entry.finished) == (
        SUBMITTED,
        "task-1",
        "completed",
        100,
        True,
    )
    assert (entry.model, entry.prompt, entry.request, entry.fingerprint) == (
        "z-image-turbo",
        "a lamp",
        {"size": "1:1", "n": 2},
        "fp-1",
    )
    assert (entry.credits, entry.result_urls, entry.saved_paths, entry.output_dir) == (
        0.4,
        ["https://cdn/1.png"],
        ["/pictures/1.png"],
        "/elsewhere",
    )
    assert entry.created_at == record.created_at <= entry.updated_at
    assert await later.credits_seen("z-image-turbo") == [({"size": "1:1", "n": 2}, 0.4)]
    assert [e.task_id for e in await later.recent(status="completed")] == ["task-1"]
    assert (await later.same_request_since("fp-1", time.time() - 60)) == entry
    assert await later.by_task_id("task-unknown") is None and later.by_task_id_now("task-unknown") is None
    await later.ping()


async def test_failed_posts_failed_tasks_and_failed_saves_are_kept_as_they_ended(open_journal: OpenJournal) -> None:
    journal = open_journal()
    for key in ("refused", "lost", "failed", "unsaved"):
        await journal.record_intent(key, f"fp-{key}", "z-image-turbo", None, {})
    await journal.record_outcome("refused", REFUSED)
    await journal.record_outcome("lost", UNKNOWN)
    await journal.record_submitted("failed", "task-failed", "pending", None)
    await journal.record_status("task-failed", "failed", 0, error_code="content_policy_violation", finished=1)
    await journal.record_submitted("unsaved", "task-unsaved", "completed", None)
    await journal.record_saved("task-unsaved", ["https://cdn/u.png"], [], "disk full")

    entries = {e.request_key: e for e in await journal.recent(limit=10)}
    assert (entries["refused"].state, entries["refused"].finished) == (REFUSED, True)
    assert (entries["lost"].state, entries["lost"].finished) == (UNKNOWN, False)
    assert (entries["failed"].error_code, entries["failed"].finished) == ("content_policy_violation", True)
    assert (entries["unsaved"].save_error, entries["unsaved"].finished) == ("disk full", False)
    assert [e.request_key for e in await journal.recent(status=UNKNOWN)] == ["lost"]
    assert await journal.same_request_since("fp-failed", 0) is None  # a failed task is never reused


async def test_the_same_intent_recorded_by_several_processes_at_once_is_one_record(open_journal: OpenJournal) -> None:
    journals = [open_journal() for _ in range(6)]
    records = []

    async def record(journal: Journal) -> None:
        records.append(await journal.record_intent("same-key", "fp", "z-image-turbo", "a lamp", {}))

    async with anyio.create_task_group() as group:
        for journal in journals:
            group.start_soon(record, journal)

    assert len(records) == 6 and len({r.created_at for r in records}) == 1
    assert [e.request_key for e in await journals[0].recent(limit=10)] == ["same-key"]


async def test_each_tenant_sees_only_its_own_tasks_and_client_request_ids(open_journal: OpenJournal) -> None:
    journal = open_journal()
    alice_task = await submitted(journal, "same-key", tenant=ALICE)
    await journal.record_intent("same-key", "fp-bob", "z-image-turbo", "bob's", {"n": 3}, tenant=BOB)
    await journal.record_submitted("same-key", "task-bob", "pending", 9.0, tenant=BOB)
    await submitted(journal, "single")  # the single tenant's

    alice, bob = (
        await journal.by_request_key("same-key", tenant=ALICE),
        await journal.by_request_key("same-key", tenant=BOB),
    )
    assert alice is not None and bob is not None
    assert (alice.task_id, alice.tenant, bob.task_id, bob.tenant) == (alice_task, ALICE, "task-bob", BOB)
    assert await journal.by_task_id(alice_task, tenant=BOB) is None
    assert journal.by_task_id_now(alice_task, tenant=BOB) is None
    assert await journal.by_task_id(alice_task) is None  # nor the single tenant's
    assert [e.task_id for e in await journal.recent(tenant=BOB)] == ["task-bob"]
    assert [e.task_id for e in await journal.recent()] == ["task-single"]
    assert await journal.same_request_since("fp-same-key", 0, tenant=BOB) is None
    assert await journal.credits_seen("z-image-turbo", tenant=BOB) == [({"n": 3}, 9.0)]

    await journal.record_status(alice_task, "failed", 0, tenant=BOB, finished=1)  # not Bob's to write
    await journal.record_saved(alice_task, [], ["/bob/was/here.png"], None, tenant=BOB)
    unchanged = await journal.by_task_id(alice_task, tenant=ALICE)
    assert unchanged is not None and (unchanged.status, unchanged.saved_paths) == ("pending", [])


async def test_a_running_process_keeps_its_tasks_and_a_stopped_ones_task_is_taken_by_one_process(
    open_journal: OpenJournal,
) -> None:
    first, second = open_journal(), open_journal()
    task_id = await submitted(first, "key-1")

    assert (await first.take(task_id))[0] is True
    ours, entry = await second.take(task_id)
    assert ours is False and entry is not None and entry.owner == first.owner
    await first.aclose()  # it stops with the task unfinished

    starting = [open_journal() for _ in range(5)]
    taken: list[Journal] = []

    async def take(journal: Journal) -> None:
        if (await journal.take(task_id))[0]:
            taken.append(journal)

    async with anyio.create_task_group() as group:
        for journal in (second, *starting):
            group.start_soon(take, journal)

    assert len(taken) == 1
    now = await second.by_task_id(task_id)
    assert now is not None and now.owner == taken[0].owner
    assert (await second.take("task-nobody-knows")) == (True, None)  # submitted elsewhere: the caller's


async def test_a_request_key_with_its_task_or_being_submitted_by_a_running_process_is_left_to_it(
    open_journal: OpenJournal,
) -> None:
    first, second = open_journal(), open_journal()
    intent = ("fp-1", "z-image-turbo", "a lamp", {})
    await first.record_intent("key-1", *intent)  # its POST is under way
    in_flight = await second.record_intent("key-1", *intent)
    await first.record_submitted("key-1", "task-1", "pending", 1.0)
    with_task = await second.record_intent("key-1", *intent)
    await first.record_intent("key-2", *intent)
    await first.record_outcome("key-2", UNKNOWN)  # its answer was lost: whoever is asked again sends it again
    lost = await second.record_intent("key-2", *intent)
    await first.record_intent("key-3", *intent)
    await first.aclose()  # it stopped before its POST was answered
    stopped = await second.record_intent("key-3", *intent)

    assert (in_flight.state, in_flight.owner) == (SUBMITTING, first.owner)
    assert (with_task.state, with_task.task_id, with_task.owner) == (SUBMITTED, "task-1", first.owner)
    assert (lost.state, lost.owner) == (SUBMITTING, second.owner)
    assert (stopped.state, stopped.owner) == (SUBMITTING, second.owner)


async def test_of_processes_recording_the_same_intent_at_once_one_gets_it(open_journal: OpenJournal) -> None:
    journals = [open_journal() for _ in range(5)]
    owners: list[str | None] = []

    async def record(journal: Journal) -> None:
        owners.append((await journal.record_intent("key-1", "fp-1", "z-image-turbo", "a lamp", {})).owner)

    async with anyio.create_task_group() as group:
        for journal in journals:
            group.start_soon(record, journal)

    assert len(owners) == 5 and len(set(owners)) == 1  # every one sees the same owner: the one that got it
    assert owners[0] in {journal.owner for journal in journals}


async def test_processes_starting_together_adopt_each_stopped_processs_task_once(open_journal: OpenJournal) -> None:
    stopped = open_journal()
    for number in range(20):
        await submitted(stopped, f"key-{number}", tenant=ALICE if number % 2 else None)
    await stopped.record_saved("task-key-0", [], ["/p.png"], None)  # finished: nothing to adopt
    await stopped.aclose()
    running = open_journal()
    await submitted(running, "key-running")
    later = time.time() + 1
    starting = [open_journal() for _ in range(4)]
    adopted: list[str] = []
    left: list[int] = []

    async def adopt(journal: Journal) -> None:
        entries, others = await journal.adopt_unfinished(newer_than=0, before=later)
        adopted.extend(e.request_key or "" for e in entries)
        assert all(e.owner == journal.owner for e in entries)
        left.append(others)

    async with anyio.create_task_group() as group:
        for journal in starting:
            group.start_soon(adopt, journal)

    assert sorted(adopted) == sorted(f"key-{number}" for number in range(1, 20))
    assert min(left) >= 1  # the running process's task, left to it
    assert (await starting[0].adopt_unfinished(newer_than=later, before=later + 1)) == ([], 0)


async def test_a_running_process_mid_post_is_not_marked_interrupted_by_another(open_journal: OpenJournal) -> None:
    running, starting = open_journal(), open_journal()
    await running.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})  # its POST is under way
    later = time.time() + 1

    while_running = await starting.mark_interrupted(before=later)
    await running.aclose()  # it stopped before the answer came
    once_stopped = await starting.mark_interrupted(before=later)
    row = await starting.by_request_key("key-1")

    assert (while_running, once_stopped) == (0, 1)
    assert row is not None and row.state == UNKNOWN


# PostgreSQL only: leases, migrations, an unreachable server.


@pytest.fixture
def postgres_journal(postgres_url: str) -> Callable[..., Journal]:
    return lambda **options: Journal(None, url=postgres_url, **options)


async def lease_until(journal: Journal, task_id: str) -> Any:
    import psycopg

    async with await psycopg.AsyncConnection.connect(journal.url.conninfo) as db:  # type: ignore[attr-defined]
        row = await (await db.execute("SELECT lease_until FROM submissions WHERE task_id = %s", (task_id,))).fetchone()
        return row[0] if row else None


async def database_now(journal: Journal) -> Any:
    import psycopg

    async with await psycopg.AsyncConnection.connect(journal.url.conninfo) as db:  # type: ignore[attr-defined]
        row = await (await db.execute("SELECT now()")).fetchone()
        return row[0] if row else None


async def test_a_lease_that_is_not_renewed_expires_and_another_replica_adopts_the_task(
    postgres_journal: Callable[..., Journal],
) -> None:
    killed, other = postgres_journal(lease_seconds=0.5), postgres_journal()
    try:
        task_id = await submitted(killed, "key-1")
        assert (await other.take(task_id))[0] is False  # the lease holds at first
        left = await lease_until(killed, task_id) - await database_now(killed)
        await anyio.sleep(left.total_seconds())  # the killed replica renews nothing: its lease runs out then
        adopted = await other.adopt_unfinished(newer_than=0, before=time.time() + 1)
        assert [e.task_id for e in adopted[0]] == [task_id] and adopted[0][0].owner == other.owner
        assert (await killed.take(task_id))[0] is False  # back too late: the task is the other replica's now
    finally:
        await killed.aclose()
        await other.aclose()


async def test_renewed_leases_hold_and_released_ones_are_free_at_once(
    postgres_journal: Callable[..., Journal],
) -> None:
    holder, other = postgres_journal(lease_seconds=60), postgres_journal()
    try:
        task_id = await submitted(holder, "key-1")
        await submitted(holder, "key-done")
        await holder.record_saved("task-key-done", [], ["/p.png"], None)
        first = await lease_until(holder, task_id)
        assert await holder.renew_leases() == 1  # the unfinished task's lease only
        assert await lease_until(holder, task_id) > first
        assert (await other.take(task_id))[0] is False
        await holder.release(task_id)
        assert (await other.take(task_id))[0] is True
        assert await holder.renew_leases() == 0  # not the holder's any more: nothing of it renewed
    finally:
        await holder.aclose()
        await other.aclose()


async def test_replicas_starting_together_on_a_fresh_database_migrate_it_once(
    postgres_journal: Callable[..., Journal],
) -> None:
    import psycopg

    from evolink_mcp.journal.postgres import migrations

    replicas = [postgres_journal() for _ in range(6)]
    try:
        async with anyio.create_task_group() as group:
            for replica in replicas:
                group.start_soon(replica.open)
        async with await psycopg.AsyncConnection.connect(replicas[0].url.conninfo) as db:  # type: ignore[attr-defined]
            applied = await (
                await db.execute("SELECT version, name FROM journal_migrations ORDER BY version")
            ).fetchall()
    finally:
        for replica in replicas:
            await replica.aclose()

    assert applied == [(version, name) for version, name, _ in migrations()]


async def test_an_unreachable_database_is_a_retryable_journal_error_that_names_it_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    journal = Journal(None, url=f"postgresql://evolink:{PASSWORD}@127.0.0.1:{port}/evolink", timeout=0.5)
    try:
        with pytest.raises(JournalError) as at_start:
            await journal.open()
        with pytest.raises(JournalError) as recording:
            await journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {})
        with pytest.raises(JournalError) as reading:
            journal.by_task_id_now("task-1")
        await journal.record_status("task-1", "completed", 100)  # an update is only logged: the task goes on
    finally:
        await journal.aclose()

    for raised in (at_start.value, recording.value, reading.value):
        assert raised.retryable and raised.category == "journal_unavailable"
        assert f"postgresql://evolink@127.0.0.1:{port}/evolink" in raised.message
        assert PASSWORD not in f"{raised.message} {raised.next_step} {raised!r}"
    assert journal.location == f"postgresql://evolink@127.0.0.1:{port}/evolink"
    assert any("not journaled" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if PASSWORD in r.getMessage() or PASSWORD in str(r.exc_info)]


async def test_a_database_that_goes_away_later_is_a_journal_error_and_nothing_is_recorded_as_done(
    postgres_server: str,
    postgres_url: str,
) -> None:
    import psycopg

    journal = Journal(None, url=postgres_url, timeout=0.5)
    try:
        await submitted(journal, "key-1")
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        with pytest.raises(JournalError) as raised:
            await journal.record_intent("key-2", "fp", "z-image-turbo", "a lamp", {})
    finally:
        await journal.aclose()
    assert raised.value.retryable and postgres_url.split("@", 1)[1] in raised.value.message


def test_the_sqlite_journal_and_evolink_mcp_models_never_import_the_postgresql_driver(tmp_path: Path) -> None:
    code = (
        "import sys, anyio\n"
        "from pathlib import Path\n"
        "from evolink_mcp.journal import Journal\n"
        f"journal = Journal(Path({str(tmp_path / 'state')!r}))\n"
        "anyio.run(journal.recent)\n"
        "from evolink_mcp.cli import main\n"
        "try:\n    main(['models'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().splitlines()[-1] == "[]"
