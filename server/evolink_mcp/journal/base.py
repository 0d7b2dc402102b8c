"""The journal's one interface: every backend (SQLite on one machine, PostgreSQL shared by replicas) keeps the
same records under the same rules, and the contract tests (tests/journal/test_journal_contract.py) hold both
to them.

Every operation on a task takes a `tenant` (a keyed hash naming a caller; None or "" for the single tenant):
a tenant sees only its own tasks, and a client_request_id is unique per tenant. Resuming at start-up
(`mark_interrupted`, `adopt_unfinished`) is the process's, across tenants.

Who follows a task: each submission names its follower (`owner`). On SQLite that is a running process
holding its owner lock file; on PostgreSQL a lease with an expiry, kept alive by `renew_leases` while the
process runs, so a replica killed mid-wait loses its tasks at expiry and another adopts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..evolink import EvolinkError
from .records import TaskRecord

if TYPE_CHECKING:
    from ..settings import Settings

LOCK_WAIT_SECONDS = 5.0  # how long a write waits for another process's lock (or a database connection)


class JournalError(EvolinkError):
    """The journal could not be read or written (another process holds it, the disk failed, or its database
    is unreachable)."""

    category = "journal_unavailable"
    retryable = True
    default_next_step = (
        "Nothing was sent. Call again in a moment; if this persists, close the other program using the journal "
        "or set EVOLINK_STATE_DIR to another folder."
    )


class Journal:
    """The task journal. `Journal(directory)` is the SQLite journal in that folder (None: in memory only);
    `Journal(directory, url="postgresql://...")` the PostgreSQL one (imported only then), as pathlib's `Path()`
    gives the platform's kind of path. Every method below is each backend's to implement (not an ABC: mypy would
    refuse `Journal(...)`); tests/journal/test_journal_contract.py holds both to the same behaviour."""

    owner: str  # this process, in the submissions it follows
    # None: a task is followed by its owner for as long as that process runs (one machine); else the seconds a
    # lease lasts unless renewed (`renew_leases` every third of it).
    lease_seconds: float | None = None
    problem: str | None = None  # why the journal is only in memory, if it is (SQLite's fallback)

    def __new__(
        cls,
        directory: Path | None = None,
        *,
        url: str | None = None,
        timeout: float = LOCK_WAIT_SECONDS,
        **options: Any,
    ) -> Journal:
        kind: type[Journal] = cls
        if cls is Journal and url:
            from .postgres import PostgresJournal

            kind = PostgresJournal
        elif cls is Journal:
            from .sqlite import SqliteJournal

            kind = SqliteJournal
        journal: Journal = object.__new__(kind)
        return journal

    @property
    def location(self) -> str:
        """Where entries are kept, for people (never with a password)."""
        raise NotImplementedError

    async def open(self) -> None:
        """Check the journal can be used now (the database reached, its migrations applied): JournalError if
        not. A backend that opens on first use does nothing here."""
        raise NotImplementedError

    async def ping(self) -> None:
        """One round trip to the journal's store (readiness): JournalError if it cannot be reached. Cancelling
        the call (a caller's deadline) ends it at once."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """`aclose` for code without an event loop (a CLI command after anyio.run); inside one, prefer `aclose`."""
        raise NotImplementedError

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
        """Before the POST: what is about to be submitted, under which idempotency key, and where its images go;
        returns its record, now this process's to submit and follow (a retry under the same key keeps the first
        attempt's record and folder). A key that is taken is left as it is and its record returned: one whose
        task exists (its task_id says so) or that another running process is submitting now (its owner says so).
        Of several processes recording the same intent at once, one gets it."""
        raise NotImplementedError

    async def record_outcome(self, request_key: str, state: str, *, tenant: str | None = None) -> None:
        """The POST failed: REFUSED (nothing created) or UNKNOWN (a task may exist)."""
        raise NotImplementedError

    async def record_submitted(
        self, request_key: str, task_id: str, status: str, credits: float | None, *, tenant: str | None = None
    ) -> None:
        raise NotImplementedError

    async def record_status(
        self, task_id: str, status: str, progress: float | None, *, tenant: str | None = None, **extra: Any
    ) -> None:
        """A status change seen on a poll (with error code/message or result URLs when there are some)."""
        raise NotImplementedError

    async def record_saved(
        self,
        task_id: str,
        result_urls: Sequence[str],
        saved_paths: Sequence[str],
        save_error: str | None,
        *,
        tenant: str | None = None,
    ) -> None:
        raise NotImplementedError

    async def record_output_dir(self, task_id: str, output_dir: str | None, *, tenant: str | None = None) -> None:
        """Where the task's images are to be saved (asked for after it was submitted); None: the output folder."""
        raise NotImplementedError

    # Reads

    async def by_request_key(self, request_key: str, *, tenant: str | None = None) -> TaskRecord | None:
        raise NotImplementedError

    async def by_task_id(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        raise NotImplementedError

    def by_task_id_now(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        """Synchronous lookup, for resource reads."""
        raise NotImplementedError

    async def same_request_since(
        self, fingerprint: str, since: float, *, tenant: str | None = None
    ) -> TaskRecord | None:
        """The newest task of this request (its fingerprint) submitted since `since` that has not failed."""
        raise NotImplementedError

    async def credits_seen(
        self, model: str, limit: int = 50, *, tenant: str | None = None
    ) -> list[tuple[dict[str, Any], float]]:
        """(request, credits reserved) of recent submissions of `model`: what it has cost so far."""
        raise NotImplementedError

    async def recent(
        self, status: str | None = None, limit: int = 20, *, tenant: str | None = None
    ) -> list[TaskRecord]:
        """The newest submissions, optionally only those with this task status (or journal state)."""
        raise NotImplementedError

    # Who follows what

    async def mark_interrupted(self, before: float) -> int:
        """Submissions left SUBMITTING (recorded before `before`) by a process that stopped mid-POST: their
        outcome is unknown. A running process's POST is its own to finish."""
        raise NotImplementedError

    async def adopt_unfinished(self, newer_than: float, before: float) -> tuple[list[TaskRecord], int]:
        """(submissions still worth following that stopped processes left, now this process's; how many were
        left to the running processes that follow them): a task id, not finished, submitted between the two
        times."""
        raise NotImplementedError

    async def take(self, task_id: str, *, tenant: str | None = None) -> tuple[bool, TaskRecord | None]:
        """(whether this process is to follow `task_id`, its entry): it follows it already, or now does as its
        follower stopped; not when another running process follows it. A task the journal does not know is this
        one's. Compare and set: of processes taking it together, one does."""
        raise NotImplementedError

    async def renew_leases(self) -> int:
        """Extend this process's leases on its unfinished tasks (while it runs); how many. Nothing to do where
        ownership lasts as long as the process (`lease_seconds` None)."""
        return 0

    async def release(self, task_id: str, *, tenant: str | None = None) -> None:
        """This process stopped following `task_id` (it ended, or was given up on): another may take it at
        once. Where ownership lasts as long as the process, it stays this process's until it stops."""
        raise NotImplementedError


def open_journal(settings: Settings) -> Journal:
    """The journal the settings name: PostgreSQL when EVOLINK_JOURNAL_URL is set, else SQLite in the state folder."""
    url = settings.journal_url.get_secret_value() if settings.journal_url else None
    journal = Journal(settings.state_dir, url=url)
    if journal.lease_seconds is not None:  # leases: how long a stopped replica's tasks wait for another
        journal.lease_seconds = settings.journal_lease_seconds
    return journal
