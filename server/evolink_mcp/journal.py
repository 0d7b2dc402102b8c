"""The local record of every submission: intent before the POST, then task id, status, results, files.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import BaseModel, Field

from .evolink import EvolinkError, Task

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger(__name__)

T = TypeVar("T")
JOURNAL_FILE = "journal.sqlite3"
OWNERS_DIR = "owners"  # one lock file per running process that has the journal open
STALE_OWNER_LOCK_SECONDS = 60.0
LOCK_WAIT_SECONDS = 5.0  # how long a write waits for another process's lock before giving up

# Where a submission stands, before and after the task exists.
SUBMITTING = "submitting"  # intent recorded, POST not answered yet
UNKNOWN = "unknown"  # the POST's answer was lost: a task may exist
REFUSED = "refused"  # the POST certainly created nothing
SUBMITTED = "submitted"  # a task id exists: see `status`

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    request_key   TEXT PRIMARY KEY,
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
    output_dir    TEXT
);
CREATE INDEX IF NOT EXISTS submissions_unfinished ON submissions (finished, created_at);
CREATE INDEX IF NOT EXISTS submissions_updated ON submissions (updated_at);
CREATE INDEX IF NOT EXISTS submissions_fingerprint ON submissions (fingerprint, created_at);
"""


class JournalError(EvolinkError):
    """The journal could not be read or written (another process holds it, or the disk failed)."""

    category = "journal_unavailable"
    retryable = True
    default_next_step = (
        "Nothing was sent. Call again in a moment; if this persists, close the other program using the journal "
        "or set EVOLINK_STATE_DIR to another folder."
    )


@dataclass
class TaskRecord:
    """One submission as the journal knows it, kept up to date by whoever follows the task: the one shape of a
    task from the journal to the outputs (the wire Task stays at the client; see `apply`)."""

    request_key: str | None  # None: a task the journal does not know (submitted elsewhere)
    fingerprint: str
    state: str
    model: str | None
    prompt: str | None
    request: dict[str, Any]
    created_at: float
    updated_at: float
    task_id: str | None = None
    status: str | None = None
    progress: float | None = None
    credits: float | None = None
    result_urls: list[str] = field(default_factory=list)
    saved_paths: list[str] = field(default_factory=list)
    save_error: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    finished: bool = False
    owner: str | None = None  # the process that follows it (see OWNERS_DIR)
    output_dir: str | None = None  # where its images are saved, when not the configured output folder
    estimated_seconds_left: float | None = None  # the last poll's estimate: not stored

    @classmethod
    def of_task(cls, task: Task) -> TaskRecord:
        """A record of a task the journal does not know, for `apply` to fill in from its state upstream."""
        now = time.time()
        plausible = task.created is not None and 0 < task.created < 2**35  # an upstream's word: only a real time
        created = float(task.created) if task.created is not None and plausible else now
        return cls(None, "", SUBMITTED, task.model, None, {}, created, now, task_id=task.id)

    @property
    def is_terminal(self) -> bool:
        """Completed, failed, or any status we do not know (e.g. 'cancelled'): stop polling."""
        return self.status is not None and self.status not in ("pending", "processing")

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    def apply(self, task: Task) -> dict[str, Any]:
        """Take in the task's state upstream; returns the fields the journal should write: those of a status
        change, else none (not every progress tick)."""
        changed = task.status != self.status
        self.status, self.progress = task.status, task.progress
        self.estimated_seconds_left = None if task.is_terminal else task.estimated_seconds_left
        self.model = task.model or self.model
        if task.usage.credits_reserved is not None:
            self.credits = task.usage.credits_reserved
        if not changed:
            return {}
        fields: dict[str, Any] = {"status": task.status, "progress": task.progress}
        if task.error is not None:
            self.error_code, self.error_message = str(task.error.code or ""), task.error.message
            fields.update(error_code=self.error_code, error_message=self.error_message)
        if task.succeeded:
            self.result_urls = fields["result_urls"] = task.image_urls
        elif task.is_terminal:
            self.finished = True  # failed, cancelled, ...: nothing left to fetch
            fields["finished"] = 1
        return fields

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.created_at, timezone.utc).isoformat(timespec="seconds")

    @property
    def updated(self) -> str:
        return datetime.fromtimestamp(self.updated_at, timezone.utc).isoformat(timespec="seconds")


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
    )


def _open(path: Path | None, timeout: float = LOCK_WAIT_SECONDS) -> sqlite3.Connection:
    import sqlite3  # imported on first use: the stdio server's start-up does not pay for it

    target = ":memory:" if path is None else str(path)
    if path is not None:
        _make_private(path)
    connection = sqlite3.connect(target, timeout=timeout, check_same_thread=False, isolation_level=None)
    connection.row_factory = sqlite3.Row
    if path is not None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    check = connection.execute("PRAGMA quick_check").fetchone()
    if check is None or check[0] != "ok":
        connection.close()
        raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
    connection.executescript(_SCHEMA)
    columns = {column["name"] for column in connection.execute("PRAGMA table_info(submissions)")}
    for added in ("owner", "output_dir"):  # a journal from before these were recorded
        if added in columns:
            continue
        try:
            connection.execute(f"ALTER TABLE submissions ADD COLUMN {added} TEXT")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another process added it first
                raise
    return connection


def _make_private(path: Path) -> None:
    """Create the journal file readable by its owner alone (it holds prompts and result URLs), or make an
    existing one so. SQLite gives its -wal and -shm files the journal file's permissions."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # missing, or another user's shared journal: left as it is
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def _try_lock(handle: IO[bytes]) -> bool:
    """Lock the open file for this handle alone, without waiting; False if another handle holds it.

    flock and Windows byte locks belong to the open file, not the process, and die with their process. Not
    filelock: it would replace only these lines (the probe of other owners' files and their age-based clean-up
    in `_is_held` stay ours), and its release deletes the file on Windows but not elsewhere, which the clean-up
    rule (a file nobody holds is removed once a minute old) would then have to allow for on each platform."""
    try:
        if sys.platform == "win32":
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
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


class Journal:
    """Thread-safe access to the journal, opened on first use; the async methods run in a worker thread."""

    def __init__(self, directory: Path | None, *, timeout: float = LOCK_WAIT_SECONDS) -> None:
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
        if _try_lock(handle):
            self._owner_lock = handle
        else:
            handle.close()

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
    ) -> TaskRecord:
        """Before the POST: what is about to be submitted, under which idempotency key, and where its images go;
        returns its record (a retry under the same key keeps the first attempt's folder)."""
        now = time.time()

        def write(db: sqlite3.Connection) -> sqlite3.Row:
            db.execute(
                "INSERT INTO submissions (request_key, fingerprint, state, model, prompt, request_json,"
                " created_at, updated_at, owner, output_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(request_key)"
                " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, owner = excluded.owner",
                (
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
            row: sqlite3.Row = db.execute("SELECT * FROM submissions WHERE request_key = ?", (request_key,)).fetchone()
            return row

        return _record(await self._run(write))

    async def record_outcome(self, request_key: str, state: str) -> None:
        """The POST failed: REFUSED (nothing created) or UNKNOWN (a task may exist)."""
        await self._update(request_key, state=state, finished=1 if state == REFUSED else 0)

    async def record_submitted(self, request_key: str, task_id: str, status: str, credits: float | None) -> None:
        await self._update(request_key, state=SUBMITTED, task_id=task_id, status=status, credits=credits)

    async def record_status(self, task_id: str, status: str, progress: float | None, **extra: Any) -> None:
        """A status change seen on a poll (with error code/message or result URLs when there are some)."""
        fields: dict[str, Any] = {"status": status, "progress": progress, **extra}
        if "result_urls" in fields:
            fields["result_urls"] = json.dumps(fields["result_urls"])
        await self._update_task(task_id, **fields)

    async def record_saved(
        self, task_id: str, result_urls: Sequence[str], saved_paths: Sequence[str], save_error: str | None
    ) -> None:
        await self._update_task(
            task_id,
            result_urls=json.dumps(list(result_urls)),
            saved_paths=json.dumps(list(saved_paths)),
            save_error=save_error,
            finished=0 if save_error else 1,
        )

    async def record_output_dir(self, task_id: str, output_dir: str | None) -> None:
        """Where the task's images are to be saved (asked for after it was submitted); None: the output folder."""
        await self._update_task(task_id, output_dir=output_dir)

    async def _update(self, request_key: str, **fields: Any) -> None:
        await self._write("request_key", request_key, fields)

    async def _update_task(self, task_id: str, **fields: Any) -> None:
        await self._write("task_id", task_id, fields)

    async def _write(self, key_column: str, key: str, fields: dict[str, Any]) -> None:
        fields = {**fields, "updated_at": time.time()}
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE submissions SET {assignments} WHERE {key_column} = ?"
        try:
            await self._run(lambda db: db.execute(sql, (*fields.values(), key)))
        except JournalError as exc:
            # The task goes on whatever the journal says: an update that cannot be written is only logged.
            log.warning("not journaled (%s = %s: %s): %s", key_column, key, ", ".join(fields), exc.message)

    # Reads

    async def by_request_key(self, request_key: str) -> TaskRecord | None:
        row = await self._run(
            lambda db: db.execute("SELECT * FROM submissions WHERE request_key = ?", (request_key,)).fetchone()
        )
        return _record(row) if row else None

    async def by_task_id(self, task_id: str) -> TaskRecord | None:
        row = await self._run(
            lambda db: db.execute("SELECT * FROM submissions WHERE task_id = ?", (task_id,)).fetchone()
        )
        return _record(row) if row else None

    async def same_request_since(self, fingerprint: str, since: float) -> TaskRecord | None:
        """The newest task of this request (its fingerprint) submitted since `since` that has not failed."""
        row = await self._run(
            lambda db: db.execute(
                "SELECT * FROM submissions WHERE fingerprint = ? AND created_at >= ? AND task_id IS NOT NULL"
                " AND (status IS NULL OR status IN ('pending', 'processing', 'completed'))"
                " ORDER BY created_at DESC LIMIT 1",
                (fingerprint, since),
            ).fetchone()
        )
        return _record(row) if row else None

    def by_task_id_now(self, task_id: str) -> TaskRecord | None:
        """Synchronous lookup, for resource reads."""
        row = self._run_sync(
            lambda db: db.execute("SELECT * FROM submissions WHERE task_id = ?", (task_id,)).fetchone()
        )
        return _record(row) if row else None

    async def mark_interrupted(self, before: float) -> int:
        """Submissions left SUBMITTING (recorded before `before`) by a process that stopped mid-POST: their
        outcome is unknown. A running process's POST is its own to finish."""

        def mark(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT request_key, owner FROM submissions WHERE state = ? AND created_at < ?", (SUBMITTING, before)
            ).fetchall()
            marked = 0
            for row in rows:
                if not self._owner_running(row["owner"]):
                    marked += db.execute(
                        "UPDATE submissions SET state = ?, updated_at = ? WHERE request_key = ? AND state = ?",
                        (UNKNOWN, time.time(), row["request_key"], SUBMITTING),
                    ).rowcount
            return marked

        return await self._run(mark)

    async def credits_seen(self, model: str, limit: int = 50) -> list[tuple[dict[str, Any], float]]:
        """(request, credits reserved) of recent submissions of `model`: what it has cost so far."""
        rows = await self._run(
            lambda db: db.execute(
                "SELECT request_json, credits FROM submissions WHERE model = ? AND credits IS NOT NULL"
                " ORDER BY created_at DESC LIMIT ?",
                (model, limit),
            ).fetchall()
        )
        return [(json.loads(r["request_json"]), float(r["credits"])) for r in rows]

    async def adopt_unfinished(self, newer_than: float, before: float) -> tuple[list[TaskRecord], int]:
        """(submissions still worth following that stopped processes left, now this process's; how many were
        left to the running processes that follow them): a task id, not finished, submitted between the two
        times."""

        def adopt(db: sqlite3.Connection) -> tuple[list[TaskRecord], int]:
            rows = db.execute(
                "SELECT * FROM submissions WHERE finished = 0 AND task_id IS NOT NULL AND created_at > ?"
                " AND created_at < ? ORDER BY created_at",
                (newer_than, before),
            ).fetchall()
            adopted = [replace(_record(row), owner=self.owner) for row in rows if self._take(db, row)]
            return adopted, len(rows) - len(adopted)

        return await self._run(adopt)

    async def take(self, task_id: str) -> tuple[bool, TaskRecord | None]:
        """(whether this process is to follow `task_id`, its entry): it owns it, or now does as its owner
        stopped; not when another running process follows it. A task the journal does not know is this one's."""

        def take(db: sqlite3.Connection) -> tuple[bool, TaskRecord | None]:
            row = db.execute("SELECT * FROM submissions WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                return True, None
            return (True, replace(_record(row), owner=self.owner)) if self._take(db, row) else (False, _record(row))

        return await self._run(take)

    def _take(self, db: sqlite3.Connection, row: sqlite3.Row) -> bool:
        """Make this process the owner of `row`'s submission unless a running process is: whether it now is.
        Compare and set: of processes taking it together, one does."""
        if row["owner"] == self.owner:
            return True
        if self._owner_running(row["owner"]):
            return False
        return bool(
            db.execute(
                "UPDATE submissions SET owner = ? WHERE request_key = ? AND owner IS ?",
                (self.owner, row["request_key"], row["owner"]),
            ).rowcount
        )

    async def recent(self, status: str | None = None, limit: int = 20) -> list[TaskRecord]:
        """The newest submissions, optionally only those with this task status (or journal state)."""

        def query(db: sqlite3.Connection) -> list[sqlite3.Row]:
            if status is None:
                return db.execute("SELECT * FROM submissions ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
            return db.execute(
                "SELECT * FROM submissions WHERE status = ? OR (status IS NULL AND state = ?)"
                " ORDER BY created_at DESC LIMIT ?",
                (status, status, limit),
            ).fetchall()

        return [_record(r) for r in await self._run(query)]


# How an entry is shown to people and models (list_tasks, `evolink-mcp tasks`, evolink://tasks/{id}).

PROMPT_PREVIEW = 200


class TaskSummary(BaseModel):
    task_id: str | None = None
    client_request_id: str
    state: str
    status: str | None = None
    progress: float | None = None
    model: str | None = None
    prompt: str | None = None
    credits_reserved: float | None = None
    saved_paths: list[str] = Field(default_factory=list)
    result_urls: list[str] = Field(default_factory=list)
    save_error: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created: str
    updated: str


def summarize_entry(entry: TaskRecord) -> TaskSummary:
    """An entry as list_tasks and `evolink-mcp tasks` show it."""
    prompt = entry.prompt
    if prompt and len(prompt) > PROMPT_PREVIEW:
        prompt = prompt[: PROMPT_PREVIEW - 1] + "…"
    return TaskSummary(
        task_id=entry.task_id,
        client_request_id=entry.request_key or "",
        state=entry.state,
        status=entry.status,
        progress=entry.progress,
        model=entry.model,
        prompt=prompt,
        credits_reserved=entry.credits,
        saved_paths=entry.saved_paths,
        result_urls=entry.result_urls,
        save_error=entry.save_error,
        error_code=entry.error_code or None,
        error_message=entry.error_message,
        created=entry.created,
        updated=entry.updated,
    )


def entry_line(task: TaskSummary) -> str:
    """One task in a line, for people and models alike."""
    what = task.status or task.state
    credits = f", {task.credits_reserved:g} credits" if task.credits_reserved is not None else ""
    line = f"{task.created} {task.task_id or '(no task id: ' + task.state + ')'} {what} {task.model or ''}{credits}"
    if task.prompt:
        line += f" — {task.prompt[:60]!r}"
    if task.saved_paths:
        line += f"\n    saved: {', '.join(task.saved_paths)}"
    if task.error_code:
        line += f"\n    error: {task.error_code}: {task.error_message or ''}"
    return line
