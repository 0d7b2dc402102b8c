"""The journal in SQLite: the embedded default, on one machine.

SQLite (stdlib) in WAL mode, in the per-user state directory. Calls run in a worker thread so the event
loop never waits on a lock or a slow disk. A corrupt file is kept aside and a fresh journal started; a journal
that cannot be opened at all degrades to memory with a logged warning, never a crash loop.

Several processes may share one journal (a desktop app and a coding agent, say). Each submission names the
process that follows it (its owner), and each process holds a lock file under `owners/` while it runs: a
process that starts adopts only what stopped processes left, never a running one's tasks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio

from .base import LOCK_WAIT_SECONDS, Journal, JournalError
from .records import REFUSED, SUBMITTED, SUBMITTING, UNKNOWN, TaskRecord, tenant_of

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger(__package__)

T = TypeVar("T")
JOURNAL_FILE = "journal.sqlite3"
OWNERS_DIR = "owners"  # one lock file per running process that has the journal open
STALE_OWNER_LOCK_SECONDS = 60.0

_TABLE = """
CREATE TABLE IF NOT EXISTS submissions (
    tenant        TEXT NOT NULL DEFAULT '',
    request_key   TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL,
    task_id       TEXT UNIQUE,
    status        TEXT,
    progress      REAL,
    model         TEXT,
    prompt        TEXT,
    request_json  TEXT NOT NULL,
    credits       REAL,
    result_urls   TEXT,
    saved_paths   TEXT,
    save_error    TEXT,
    error_code    TEXT,
    error_message TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    finished      INTEGER NOT NULL DEFAULT 0,
    owner         TEXT,
    output_dir    TEXT,
    UNIQUE (tenant, request_key)
)"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS submissions_unfinished ON submissions (finished, created_at);
CREATE INDEX IF NOT EXISTS submissions_updated ON submissions (updated_at);
CREATE INDEX IF NOT EXISTS submissions_tenant_created ON submissions (tenant, created_at);
CREATE INDEX IF NOT EXISTS submissions_fingerprint ON submissions (fingerprint, created_at);
"""


def _record(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        request_key=row["request_key"],
        fingerprint=row["fingerprint"],
        state=row["state"],
        model=row["model"],
        prompt=row["prompt"],
        request=json.loads(row["request_json"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        task_id=row["task_id"],
        status=row["status"],
        progress=row["progress"],
        credits=row["credits"],
        result_urls=json.loads(row["result_urls"] or "[]"),
        saved_paths=json.loads(row["saved_paths"] or "[]"),
        save_error=row["save_error"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        finished=bool(row["finished"]),
        owner=row["owner"],
        output_dir=row["output_dir"],
        tenant=row["tenant"],
    )


def _open(path: Path | None, timeout: float = LOCK_WAIT_SECONDS) -> sqlite3.Connection:
    import sqlite3  # imported on first use: the stdio server's start-up does not pay for it

    target = ":memory:" if path is None else str(path)
    if path is not None:
        _make_private(path)
    connection = sqlite3.connect(target, timeout=timeout, check_same_thread=False, isolation_level=None)
    connection.row_factory = sqlite3.Row
    if path is not None:
        _use_wal(connection, timeout)
        connection.execute("PRAGMA synchronous=NORMAL")
    check = connection.execute("PRAGMA quick_check").fetchone()
    if check is None or check[0] != "ok":
        connection.close()
        raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
    connection.execute(_TABLE)
    if "tenant" not in _columns(connection):
        _add_tenants(connection)
    connection.executescript(_INDEXES)
    return connection


def _use_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """WAL mode. Switching a new file to it takes a lock SQLite does not wait for (no busy handler), so processes
    opening a new journal together try again here, for as long as they would wait for any other lock."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _columns(connection: sqlite3.Connection) -> set[str]:
    return {column["name"] for column in connection.execute("PRAGMA table_info(submissions)")}


def _add_tenants(connection: sqlite3.Connection) -> None:
    """Bring a journal from before tenants (request_key its primary key; owner and output_dir perhaps missing)
    to today's table, its entries the single tenant's. SQLite cannot change a table's keys in place: the table
    is copied, in one transaction that also keeps other processes opening it at once from doing it twice."""
    with _write_transaction(connection):
        old = _columns(connection)
        if "tenant" not in old:
            connection.execute("ALTER TABLE submissions RENAME TO submissions_before_tenants")
            connection.execute(_TABLE)
            kept = ", ".join(sorted(old & _columns(connection)))
            connection.execute(f"INSERT INTO submissions ({kept}) SELECT {kept} FROM submissions_before_tenants")
            connection.execute("DROP TABLE submissions_before_tenants")


def _make_private(path: Path) -> None:
    """Create the journal file readable by its owner alone (it holds prompts and result URLs), or make an
    existing one so. SQLite gives its -wal and -shm files the journal file's permissions."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # missing, or another user's shared journal: left as it is
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def _try_lock(handle: IO[bytes], *, wait: bool = False) -> bool:
    """Lock the open file for this handle alone; False if another handle holds it. With `wait`, wait for it first
    (for as long as flock needs; Windows tries for 10 s): for a file only probes (`_is_held`) may hold a moment.

    flock and Windows byte locks belong to the open file, not the process, and die with their process. Not
    filelock: it would replace only these lines (the probe of other owners' files and their age-based clean-up
    in `_is_held` stay ours), and its release deletes the file on Windows but not elsewhere, which the clean-up
    rule (a file nobody holds is removed once a minute old) would then have to allow for on each platform."""
    try:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)  # LK_LOCK: 10 tries
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _is_held(lock_file: Path) -> bool:
    """Whether a running process holds `lock_file`. One nobody holds is removed once it is a minute old: a
    younger one may belong to a process between creating and locking it (which has recorded nothing yet)."""
    try:
        handle = os.fdopen(os.open(lock_file, os.O_RDWR), "r+b")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: better to leave a task alone than to follow it twice
    with handle:
        if not _try_lock(handle):
            return True
        stale = time.time() - os.fstat(handle.fileno()).st_mtime > STALE_OWNER_LOCK_SECONDS
    if stale:
        with contextlib.suppress(OSError):  # another process may be clearing it too
            lock_file.unlink()
    return False


@contextlib.contextmanager
def _write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A transaction that holds the write lock from its first read, so no other process writes between what it
    reads and what it writes."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _select_one(db: sqlite3.Connection) -> None:
    db.execute("SELECT 1").fetchone()


def _is_locked(exc: Exception) -> bool:
    return "locked" in str(exc).lower() or "busy" in str(exc).lower()


def _aside_name(path: Path) -> Path:
    """A name to keep a corrupt journal under that no earlier corrupt journal already has."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while any(aside.with_name(aside.name + s).exists() for s in ("", "-wal", "-shm")):
        number += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    return aside


class SqliteJournal(Journal):
    """Thread-safe access to the journal, opened on first use; the async methods run in a worker thread."""

    def __init__(
        self, directory: Path | None = None, *, url: str | None = None, timeout: float = LOCK_WAIT_SECONDS
    ) -> None:
        self.directory = directory
        self.timeout = timeout
        self.path: Path | None = None
        self.problem: str | None = None  # why the journal is only in memory, if it is
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self.owner = uuid.uuid4().hex  # this process, in the submissions it records
        self._owner_lock: IO[bytes] | None = None  # held while the journal is open: tells others this owner runs

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect(self.directory)
        return self._connection

    @property
    def location(self) -> str:
        """Where entries are kept, for people: the file, or why only in memory."""
        self._run_sync(lambda db: None)
        return str(self.path) if self.path else f"memory only ({self.problem or 'no state directory'})"

    def _connect(self, directory: Path | None) -> sqlite3.Connection:
        import sqlite3

        if directory is None:
            return _open(None)
        path = directory / JOURNAL_FILE
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder's listing is private too
            db = _open(path, self.timeout)
        except sqlite3.DatabaseError as exc:
            if _is_locked(exc):
                return self._in_memory(f"the journal {path} is locked by another process ({exc})")
            aside = _aside_name(path)
            try:
                path.rename(aside)
                # The old file's write-ahead log goes with it: it may hold its latest entries.
                for suffix in ("-wal", "-shm"):
                    companion = path.with_name(path.name + suffix)
                    if companion.exists():
                        companion.rename(aside.with_name(aside.name + suffix))
                db = _open(path, self.timeout)
            except (OSError, sqlite3.DatabaseError) as again:
                return self._in_memory(f"the journal {path} is unusable ({exc}; {again})")
            log.warning("the journal %s was corrupt (%s); kept it as %s and started a fresh one", path, exc, aside)
        except OSError as exc:
            return self._in_memory(f"the state directory {directory} is not writable ({exc.strerror or exc})")
        self.path = path
        self._hold_owner_lock(directory / OWNERS_DIR)
        return db

    def _hold_owner_lock(self, owners: Path) -> None:
        """Take this process's lock file, and clear those of processes that stopped without removing theirs."""
        try:
            owners.mkdir(exist_ok=True)
            for stale in owners.glob("*.lock"):
                _is_held(stale)
            handle = (owners / f"{self.owner}.lock").open("a+b")
        except OSError as exc:
            log.warning("no owner lock in %s (%s): another process may also follow this one's tasks", owners, exc)
            return
        # Waits: another process starting now may be probing this new file (`_is_held`) for the moment it takes.
        if _try_lock(handle, wait=True):
            self._owner_lock = handle
        else:
            handle.close()
            log.warning("could not lock %s: another process may also follow this one's tasks", handle.name)

    def _owner_running(self, owner: str | None) -> bool:
        """Whether `owner` is this process or another one that is running (a task it follows is not ours)."""
        if owner == self.owner:
            return True
        if owner is None or self.path is None:
            return False
        return _is_held(self.path.parent / OWNERS_DIR / f"{owner}.lock")

    def _in_memory(self, why: str) -> sqlite3.Connection:
        self.problem = why
        log.warning("%s; keeping this session's journal in memory only (set EVOLINK_STATE_DIR)", why)
        return _open(None)

    async def open(self) -> None:
        """Nothing now: opened on first use, in a worker thread, so a server's start-up never waits on it."""

    async def ping(self) -> None:
        # Left to finish on its own when cancelled: a journal locked for a while is "not ready" in time.
        await anyio.to_thread.run_sync(self._run_sync, _select_one, abandon_on_cancel=True)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._owner_lock is not None:
                self._owner_lock.close()
                self._owner_lock = None
                if self.path is not None:
                    (self.path.parent / OWNERS_DIR / f"{self.owner}.lock").unlink(missing_ok=True)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._run_sync, fn)

    def _run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        import sqlite3

        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise self._failure(exc) from exc

    def _failure(self, exc: Exception) -> JournalError:
        where = self.path or "in memory"
        if _is_locked(exc):
            return JournalError(f"The task journal {where} is locked by another process ({exc}).")
        return JournalError(f"The task journal {where} failed ({exc}).")

    # Writes

    async def record_intent(
        self,
        request_key: str,
        fingerprint: str,
        model: str,
        prompt: str | None,
        request: dict[str, Any],
        output_dir: str | None = None,
        *,
        tenant: str | None = None,
    ) -> TaskRecord:
        now, tenant = time.time(), tenant_of(tenant)

        def write(db: sqlite3.Connection) -> sqlite3.Row:
            with _write_transaction(db):
                known: sqlite3.Row | None = db.execute(
                    "SELECT * FROM submissions WHERE tenant = ? AND request_key = ?", (tenant, request_key)
                ).fetchone()
                if known is not None and self._taken(known):
                    return known
                db.execute(
                    "INSERT INTO submissions (tenant, request_key, fingerprint, state, model, prompt, request_json,"
                    " created_at, updated_at, owner, output_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(tenant, request_key)"
                    " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, owner = excluded.owner",
                    (
                        tenant,
                        request_key,
                        fingerprint,
                        SUBMITTING,
                        model,
                        prompt,
                        json.dumps(request),
                        now,
                        now,
                        self.owner,
                        output_dir,
                    ),
                )
                # Read back: a retry under the same key keeps the first attempt's record (its creation time).
                row: sqlite3.Row = db.execute(
                    "SELECT * FROM submissions WHERE tenant = ? AND request_key = ?", (tenant, request_key)
                ).fetchone()
                return row

        return _record(await self._run(write))

    def _taken(self, row: sqlite3.Row) -> bool:
        """Whether the submission in `row` has its task, or is being submitted by another running process."""
        submitting_elsewhere = row["state"] == SUBMITTING and row["owner"] != self.owner
        return row["task_id"] is not None or (submitting_elsewhere and self._owner_running(row["owner"]))

    async def record_outcome(self, request_key: str, state: str, *, tenant: str | None = None) -> None:
        await self._update(request_key, tenant, state=state, finished=1 if state == REFUSED else 0)

    async def record_submitted(
        self, request_key: str, task_id: str, status: str, credits: float | None, *, tenant: str | None = None
    ) -> None:
        await self._update(request_key, tenant, state=SUBMITTED, task_id=task_id, status=status, credits=credits)

    async def record_status(
        self, task_id: str, status: str, progress: float | None, *, tenant: str | None = None, **extra: Any
    ) -> None:
        fields: dict[str, Any] = {"status": status, "progress": progress, **extra}
        if "result_urls" in fields:
            fields["result_urls"] = json.dumps(fields["result_urls"])
        await self._update_task(task_id, tenant, **fields)

    async def record_saved(
        self,
        task_id: str,
        result_urls: Sequence[str],
        saved_paths: Sequence[str],
        save_error: str | None,
        *,
        tenant: str | None = None,
    ) -> None:
        await self._update_task(
            task_id,
            tenant,
            result_urls=json.dumps(list(result_urls)),
            saved_paths=json.dumps(list(saved_paths)),
            save_error=save_error,
            finished=0 if save_error else 1,
        )

    async def record_output_dir(self, task_id: str, output_dir: str | None, *, tenant: str | None = None) -> None:
        await self._update_task(task_id, tenant, output_dir=output_dir)

    async def _update(self, request_key: str, tenant: str | None, **fields: Any) -> None:
        await self._write("request_key", request_key, tenant, fields)

    async def _update_task(self, task_id: str, tenant: str | None, **fields: Any) -> None:
        await self._write("task_id", task_id, tenant, fields)

    async def _write(self, key_column: str, key: str, tenant: str | None, fields: dict[str, Any]) -> None:
        fields = {**fields, "updated_at": time.time()}
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE submissions SET {assignments} WHERE tenant = ? AND {key_column} = ?"
        try:
            await self._run(lambda db: db.execute(sql, (*fields.values(), tenant_of(tenant), key)))
        except JournalError as exc:
            # The task goes on whatever the journal says: an update that cannot be written is only logged.
            log.warning("not journaled (%s = %s: %s): %s", key_column, key, ", ".join(fields), exc.message)

    # Reads

    def _one(self, where: str, *args: Any) -> Callable[[sqlite3.Connection], sqlite3.Row | None]:
        return lambda db: db.execute(f"SELECT * FROM submissions WHERE {where}", args).fetchone()

    async def by_request_key(self, request_key: str, *, tenant: str | None = None) -> TaskRecord | None:
        row = await self._run(self._one("tenant = ? AND request_key = ?", tenant_of(tenant), request_key))
        return _record(row) if row else None

    async def by_task_id(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        row = await self._run(self._one("tenant = ? AND task_id = ?", tenant_of(tenant), task_id))
        return _record(row) if row else None

    def by_task_id_now(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        row = self._run_sync(self._one("tenant = ? AND task_id = ?", tenant_of(tenant), task_id))
        return _record(row) if row else None

    async def same_request_since(
        self, fingerprint: str, since: float, *, tenant: str | None = None
    ) -> TaskRecord | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT * FROM submissions WHERE tenant = ? AND fingerprint = ? AND created_at >= ?"
                " AND task_id IS NOT NULL AND (status IS NULL OR status IN ('pending', 'processing', 'completed'))"
                " ORDER BY created_at DESC LIMIT 1",
                (tenant_of(tenant), fingerprint, since),
            ).fetchone()
        )
        return _record(row) if row else None

    async def credits_seen(
        self, model: str, limit: int = 50, *, tenant: str | None = None
    ) -> list[tuple[dict[str, Any], float]]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT request_json, credits FROM submissions WHERE tenant = ? AND model = ?"
                " AND credits IS NOT NULL ORDER BY created_at DESC LIMIT ?",
                (tenant_of(tenant), model, limit),
            ).fetchall()
        )
        return [(json.loads(r["request_json"]), float(r["credits"])) for r in rows]

    async def recent(
        self, status: str | None = None, limit: int = 20, *, tenant: str | None = None
    ) -> list[TaskRecord]:
        def query(db: sqlite3.Connection) -> list[sqlite3.Row]:
            if status is None:
                return db.execute(
                    "SELECT * FROM submissions WHERE tenant = ? ORDER BY created_at DESC LIMIT ?",
                    (tenant_of(tenant), limit),
                ).fetchall()
            return db.execute(
                "SELECT * FROM submissions WHERE tenant = ? AND (status = ? OR (status IS NULL AND state = ?))"
                " ORDER BY created_at DESC LIMIT ?",
                (tenant_of(tenant), status, status, limit),
            ).fetchall()

        return [_record(r) for r in await self._run(query)]

    # Who follows what

    async def mark_interrupted(self, before: float) -> int:
        def mark(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT rowid, owner FROM submissions WHERE state = ? AND created_at < ?", (SUBMITTING, before)
            ).fetchall()
            marked = 0
            for row in rows:
                if not self._owner_running(row["owner"]):
                    marked += db.execute(
                        "UPDATE submissions SET state = ?, updated_at = ? WHERE rowid = ? AND state = ?",
                        (UNKNOWN, time.time(), row["rowid"], SUBMITTING),
                    ).rowcount
            return marked

        return await self._run(mark)

    async def adopt_unfinished(self, newer_than: float, before: float) -> tuple[list[TaskRecord], int]:
        def adopt(db: sqlite3.Connection) -> tuple[list[TaskRecord], int]:
            rows = db.execute(
                "SELECT rowid, * FROM submissions WHERE finished = 0 AND task_id IS NOT NULL AND created_at > ?"
                " AND created_at < ? ORDER BY created_at",
                (newer_than, before),
            ).fetchall()
            adopted = [replace(_record(row), owner=self.owner) for row in rows if self._take(db, row)]
            return adopted, len(rows) - len(adopted)

        return await self._run(adopt)

    async def take(self, task_id: str, *, tenant: str | None = None) -> tuple[bool, TaskRecord | None]:
        def take(db: sqlite3.Connection) -> tuple[bool, TaskRecord | None]:
            row = db.execute(
                "SELECT rowid, * FROM submissions WHERE tenant = ? AND task_id = ?", (tenant_of(tenant), task_id)
            ).fetchone()
            if row is None:
                return True, None
            return (True, replace(_record(row), owner=self.owner)) if self._take(db, row) else (False, _record(row))

        return await self._run(take)

    async def release(self, task_id: str, *, tenant: str | None = None) -> None:
        """Nothing: the owner lock is the lease, and ends with the process."""

    def _take(self, db: sqlite3.Connection, row: sqlite3.Row) -> bool:
        """Make this process the owner of `row`'s submission unless a running process is: whether it now is.
        Compare and set: of processes taking it together, one does."""
        if row["owner"] == self.owner:
            return True
        if self._owner_running(row["owner"]):
            return False
        return bool(
            db.execute(
                "UPDATE submissions SET owner = ? WHERE rowid = ? AND owner IS ?",
                (self.owner, row["rowid"], row["owner"]),
            ).rowcount
        )
