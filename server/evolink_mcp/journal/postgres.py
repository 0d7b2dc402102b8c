"""The journal in PostgreSQL (EVOLINK_JOURNAL_URL): one journal for several replicas of the server.

psycopg 3 and its connection pool (the `postgres` extra), imported only when the URL is set. Statements run
on worker threads through the driver's synchronous API, as the SQLite journal's do: with a hundred calls in
flight, one thread hand-off per statement kept the event loop freer than the async driver's several awaits per
round trip (bench/replicas.py; figures in bench/RESULTS.md). Plain SQL migrations in
migrations/postgres/ are applied in order at start-up, in one transaction under an advisory lock, so replicas
starting together migrate once; `journal_migrations` records which ran.

Who follows a task is a lease: `lease_owner` and `lease_until` (the database's clock). Recording an intent or
taking a task leases it to this process; `renew_leases` extends all of this process's leases at once while it
runs; a process that stops lets its leases expire (or releases them when it closes), and another process then
takes or adopts its tasks (`UPDATE ... WHERE` the lease is free or expired, `FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import LOCK_WAIT_SECONDS, Journal, JournalError
from .records import REFUSED, SUBMITTED, SUBMITTING, UNKNOWN, TaskRecord, tenant_of
from .url import parse_journal_url

if TYPE_CHECKING:
    from psycopg import Connection

log = logging.getLogger(__package__)

LEASE_SECONDS = 30.0  # a stopped replica's tasks wait this long at most before another adopts them
POOL_SIZE = 10
MIGRATIONS_LOCK = 0x65766F6C696E6B  # pg_advisory_xact_lock key ("evolink"): one migrating process at a time
_JSON_COLUMNS = ("result_urls", "saved_paths")
_FREE = "(lease_owner IS NULL OR lease_owner = %(me)s OR lease_until < now())"
_LEASE = "lease_owner = %(me)s, lease_until = now() + %(lease)s * interval '1 second'"


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of each migration, in order."""
    folder = resources.files(__package__).joinpath("migrations").joinpath("postgres")
    found = sorted(f.name for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(int(name.split("_", 1)[0]), name, folder.joinpath(name).read_text("utf-8")) for name in found]


def _record(row: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        request_key=row["request_key"],
        fingerprint=row["fingerprint"],
        state=row["state"],
        model=row["model"],
        prompt=row["prompt"],
        request=row["request_json"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        task_id=row["task_id"],
        status=row["status"],
        progress=row["progress"],
        credits=row["credits"],
        result_urls=row["result_urls"],
        saved_paths=row["saved_paths"],
        save_error=row["save_error"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        finished=row["finished"],
        owner=row["lease_owner"],
        output_dir=row["output_dir"],
        tenant=row["tenant"],
    )


class PostgresJournal(Journal):
    """The journal in the PostgreSQL database `url` names; a pool of connections opened (and the schema
    migrated) on first use or by `open`."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        url: str | None = None,
        timeout: float = LOCK_WAIT_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        assert url, "PostgresJournal needs a postgresql:// URL"
        self.url = parse_journal_url(url)
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex  # this process, in the leases it holds
        self._pool: ConnectionPool[Connection[dict[str, Any]]] | None = None
        self._opening = threading.Lock()
        self._threads = anyio.CapacityLimiter(POOL_SIZE)  # a thread waiting for a connection would hold one idle

    @property
    def location(self) -> str:
        return self.url.shown

    def _failure(self, exc: Exception) -> JournalError:
        detail = self.url.redact(" ".join(str(exc).split()) or type(exc).__name__)  # libpq's lines as one
        return JournalError(
            f"The task journal {self.url.shown} is unreachable or failed ({detail}).",
            next_step="Nothing was sent. Call again in a moment; if this persists, check that the journal's "
            "PostgreSQL server (EVOLINK_JOURNAL_URL) is running and reachable.",
        )

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._connected)

    def _connected(self) -> ConnectionPool[Connection[dict[str, Any]]]:
        with self._opening:
            if self._pool is not None:
                return self._pool
            options: dict[str, Any] = {
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": max(2, round(self.timeout)),  # libpq's least
            }
            try:
                # One connection of its own first: a server that cannot be reached says why (the pool's
                # error would only be that it timed out), and the migrations run before anything else.
                with psycopg.Connection.connect(self.url.conninfo, **options) as db:
                    self._migrate(db)
            except psycopg.Error as exc:
                raise self._failure(exc) from exc
            pool: ConnectionPool[Connection[dict[str, Any]]] = ConnectionPool(
                self.url.conninfo,
                min_size=1,
                max_size=POOL_SIZE,
                timeout=self.timeout,
                open=False,
                name="evolink-journal",
                kwargs=options,
            )
            pool.open(wait=False)
            self._pool = pool
            return pool

    def _migrate(self, db: Connection[dict[str, Any]]) -> None:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATIONS_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS journal_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in db.execute("SELECT version FROM journal_migrations").fetchall()}
            for version, name, sql in migrations():
                if version not in done:
                    db.execute(sql.encode())  # bytes: the file's statements as they are, no parameters
                    db.execute("INSERT INTO journal_migrations (version, name) VALUES (%s, %s)", (version, name))
                    log.info("journal %s: applied migration %s", self.url.shown, name)

    @contextmanager
    def _db(self) -> Iterator[Connection[dict[str, Any]]]:
        pool = self._connected()
        try:
            with pool.connection() as db:
                yield db
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._failure(exc) from exc

    def _rows_now(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._db() as db:
            cursor = db.execute(sql, {"me": self.owner, "lease": self.lease_seconds, **params})
            return cursor.fetchall() if cursor.description else []

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(self._rows_now, sql, params, limiter=self._threads)

    async def _row(self, sql: str, params: dict[str, Any]) -> TaskRecord | None:
        rows = await self._rows(sql, params)
        return _record(rows[0]) if rows else None

    async def aclose(self) -> None:
        """Close the connections, first handing back the leases of unfinished tasks: another replica may
        adopt them at once instead of when they would have expired."""
        if self._pool is not None:
            try:
                await self._rows(
                    "UPDATE submissions SET lease_until = now() WHERE lease_owner = %(me)s AND NOT finished", {}
                )
            except JournalError as exc:
                log.warning("could not hand back this process's leases (they expire by themselves): %s", exc)
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def ping(self) -> None:
        # Not through the statements' limiter, and left to finish on its own (within the pool's timeout) when
        # cancelled: with the database gone, calls waiting for a connection must not delay "not ready".
        await anyio.to_thread.run_sync(self._rows_now, "SELECT 1 AS one", {}, abandon_on_cancel=True)

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
        now = time.time()
        record = await self._row(
            "INSERT INTO submissions (tenant, request_key, fingerprint, state, model, prompt, request_json,"
            " created_at, updated_at, output_dir, lease_owner, lease_until) VALUES (%(tenant)s, %(key)s,"
            " %(fingerprint)s, %(state)s, %(model)s, %(prompt)s, %(request)s, %(now)s, %(now)s, %(output_dir)s,"
            " %(me)s, now() + %(lease)s * interval '1 second')"
            " ON CONFLICT (tenant, request_key) DO UPDATE SET state = excluded.state,"
            " updated_at = excluded.updated_at, lease_owner = excluded.lease_owner,"
            " lease_until = excluded.lease_until"
            # Not a key that is taken: its task exists, or another running replica is submitting it now.
            " WHERE submissions.task_id IS NULL AND (submissions.state <> %(state)s"
            " OR submissions.lease_owner IS NULL OR submissions.lease_owner = %(me)s"
            " OR submissions.lease_until < now()) RETURNING *",
            {
                "tenant": tenant_of(tenant),
                "key": request_key,
                "fingerprint": fingerprint,
                "state": SUBMITTING,
                "model": model,
                "prompt": prompt,
                "request": Jsonb(request),
                "now": now,
                "output_dir": output_dir,
            },
        )
        if record is None:  # taken: left as it is
            record = await self.by_request_key(request_key, tenant=tenant)
        assert record is not None  # a taken key's row stays: submissions are never deleted
        return record

    async def record_outcome(self, request_key: str, state: str, *, tenant: str | None = None) -> None:
        await self._write("request_key", request_key, tenant, {"state": state, "finished": state == REFUSED})

    async def record_submitted(
        self, request_key: str, task_id: str, status: str, credits: float | None, *, tenant: str | None = None
    ) -> None:
        fields = {"state": SUBMITTED, "task_id": task_id, "status": status, "credits": credits}
        await self._write("request_key", request_key, tenant, fields)

    async def record_status(
        self, task_id: str, status: str, progress: float | None, *, tenant: str | None = None, **extra: Any
    ) -> None:
        await self._write("task_id", task_id, tenant, {"status": status, "progress": progress, **extra})

    async def record_saved(
        self,
        task_id: str,
        result_urls: Sequence[str],
        saved_paths: Sequence[str],
        save_error: str | None,
        *,
        tenant: str | None = None,
    ) -> None:
        fields = {
            "result_urls": list(result_urls),
            "saved_paths": list(saved_paths),
            "save_error": save_error,
            "finished": not save_error,
        }
        await self._write("task_id", task_id, tenant, fields)

    async def record_output_dir(self, task_id: str, output_dir: str | None, *, tenant: str | None = None) -> None:
        await self._write("task_id", task_id, tenant, {"output_dir": output_dir})

    async def _write(self, key_column: str, key: str, tenant: str | None, fields: dict[str, Any]) -> None:
        values = {**fields, "updated_at": time.time()}
        for name in _JSON_COLUMNS:
            if name in values:
                values[name] = Jsonb(values[name])
        if "finished" in values:
            values["finished"] = bool(values["finished"])
        assignments = ", ".join(f"{name} = %(v_{name})s" for name in values)
        params = {f"v_{name}": value for name, value in values.items()}
        sql = f"UPDATE submissions SET {assignments} WHERE tenant = %(tenant)s AND {key_column} = %(key)s"
        try:
            await self._rows(sql, {**params, "tenant": tenant_of(tenant), "key": key})
        except JournalError as exc:
            # The task goes on whatever the journal says: an update that cannot be written is only logged.
            log.warning("not journaled (%s = %s: %s): %s", key_column, key, ", ".join(values), exc.message)

    # Reads

    async def by_request_key(self, request_key: str, *, tenant: str | None = None) -> TaskRecord | None:
        return await self._row(
            "SELECT * FROM submissions WHERE tenant = %(tenant)s AND request_key = %(key)s",
            {"tenant": tenant_of(tenant), "key": request_key},
        )

    async def by_task_id(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        return await self._row(
            "SELECT * FROM submissions WHERE tenant = %(tenant)s AND task_id = %(task_id)s",
            {"tenant": tenant_of(tenant), "task_id": task_id},
        )

    def by_task_id_now(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        """One indexed read on the calling thread: a fraction of a millisecond on a nearby server."""
        rows = self._rows_now(
            "SELECT * FROM submissions WHERE tenant = %(tenant)s AND task_id = %(task_id)s",
            {"tenant": tenant_of(tenant), "task_id": task_id},
        )
        return _record(rows[0]) if rows else None

    async def same_request_since(
        self, fingerprint: str, since: float, *, tenant: str | None = None
    ) -> TaskRecord | None:
        return await self._row(
            "SELECT * FROM submissions WHERE tenant = %(tenant)s AND fingerprint = %(fingerprint)s"
            " AND created_at >= %(since)s AND task_id IS NOT NULL"
            " AND (status IS NULL OR status IN ('pending', 'processing', 'completed'))"
            " ORDER BY created_at DESC LIMIT 1",
            {"tenant": tenant_of(tenant), "fingerprint": fingerprint, "since": since},
        )

    async def credits_seen(
        self, model: str, limit: int = 50, *, tenant: str | None = None
    ) -> list[tuple[dict[str, Any], float]]:
        rows = await self._rows(
            "SELECT request_json, credits FROM submissions WHERE tenant = %(tenant)s AND model = %(model)s"
            " AND credits IS NOT NULL ORDER BY created_at DESC LIMIT %(limit)s",
            {"tenant": tenant_of(tenant), "model": model, "limit": limit},
        )
        return [(row["request_json"], float(row["credits"])) for row in rows]

    async def recent(
        self, status: str | None = None, limit: int = 20, *, tenant: str | None = None
    ) -> list[TaskRecord]:
        which = "" if status is None else " AND (status = %(status)s OR (status IS NULL AND state = %(status)s))"
        rows = await self._rows(
            f"SELECT * FROM submissions WHERE tenant = %(tenant)s{which} ORDER BY created_at DESC LIMIT %(limit)s",
            {"tenant": tenant_of(tenant), "status": status, "limit": limit},
        )
        return [_record(row) for row in rows]

    # Who follows what

    async def mark_interrupted(self, before: float) -> int:
        rows = await self._rows(
            "UPDATE submissions SET state = %(unknown)s, updated_at = %(now)s WHERE state = %(submitting)s"
            " AND created_at < %(before)s AND (lease_owner IS NULL OR (lease_owner <> %(me)s AND lease_until < now()))"
            " RETURNING id",
            {"unknown": UNKNOWN, "submitting": SUBMITTING, "now": time.time(), "before": before},
        )
        return len(rows)

    async def adopt_unfinished(self, newer_than: float, before: float) -> tuple[list[TaskRecord], int]:
        window = "NOT finished AND task_id IS NOT NULL AND created_at > %(newer_than)s AND created_at < %(before)s"
        params = {"newer_than": newer_than, "before": before}
        adopted = await self._rows(
            f"WITH free AS (SELECT id FROM submissions WHERE {window} AND {_FREE} FOR UPDATE SKIP LOCKED)"
            f" UPDATE submissions SET {_LEASE} FROM free WHERE submissions.id = free.id RETURNING submissions.*",
            params,
        )
        held = await self._rows(f"SELECT count(*) AS held FROM submissions WHERE {window} AND NOT {_FREE}", params)
        return sorted((_record(row) for row in adopted), key=lambda r: r.created_at), int(held[0]["held"])

    async def take(self, task_id: str, *, tenant: str | None = None) -> tuple[bool, TaskRecord | None]:
        params = {"tenant": tenant_of(tenant), "task_id": task_id}
        taken = await self._row(
            f"UPDATE submissions SET {_LEASE} WHERE tenant = %(tenant)s AND task_id = %(task_id)s AND {_FREE}"
            " RETURNING *",
            params,
        )
        if taken is not None:
            return True, taken
        known = await self.by_task_id(task_id, tenant=tenant)
        return known is None, known

    async def renew_leases(self) -> int:
        rows = await self._rows(
            f"UPDATE submissions SET {_LEASE} WHERE lease_owner = %(me)s AND NOT finished RETURNING id", {}
        )
        return len(rows)

    async def release(self, task_id: str, *, tenant: str | None = None) -> None:
        await self._rows(
            "UPDATE submissions SET lease_owner = NULL, lease_until = NULL"
            " WHERE tenant = %(tenant)s AND task_id = %(task_id)s AND lease_owner = %(me)s",
            {"tenant": tenant_of(tenant), "task_id": task_id},
        )
