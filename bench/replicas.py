"""Replicas: 100 concurrent generations with the PostgreSQL journal against the SQLite journal, in the same run,
then the same 100 spread over two replicas sharing one PostgreSQL journal and one output folder.

Each scenario is `evolink-mcp serve --transport streamable-http` processes on 127.0.0.1, one sandbox process
(tasks take 4 s) and concurrency.py's minimal HTTP driver: 100 sessions, each one generate_image that waits for
its image (submit, poll, download, save, preview). Latency is counted above the sandbox's task time. Every
scenario serves streamable HTTP without sessions (EVOLINK_MCP_STATELESS=1), as replicas must and as a PostgreSQL
journal turns on by default, so the journal is the only difference between the SQLite and PostgreSQL figures.

The PostgreSQL server is a throwaway one (tests/postgres_server.py: Debian's binaries, a temporary data folder,
fsync and synchronous_commit off) on the same machine: its commits cost less than a durable server's, and its
CPU comes from the same two cores as the replicas', the sandbox's and this driver's. Journal round trips are
the database's committed transactions (each journal statement is one, autocommit) during the 100 calls,
background lease renewals and adoption scans included, divided by the generations.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from common import (
    ROOT,
    Row,
    SandboxProcess,
    cpu_seconds,
    http_server,
    ms,
    percentile,
    sandbox_process,
)
from concurrency import CALLS, TASK_SECONDS, TOKEN, _generate, at_once

ROUNDS = 3
P99_RATIO_TARGET = 1.2  # PostgreSQL journal's p99 over the SQLite journal's, above the task time


@dataclass
class Outcome:
    label: str
    seconds: list[float]  # above the task time, completed calls only
    failures: list[str]
    wall: float  # the 100 calls, first sent to last answered
    cpu: float  # seconds, all replicas
    round_trips: float | None = None  # journal transactions per generation
    postgres_cpu: float | None = None  # seconds
    calls: int = CALLS


@contextmanager
def _replicas(home: Path, sandbox: SandboxProcess, count: int, **env: str) -> Iterator[dict[str, int]]:
    """`count` replicas sharing one output folder: {their /mcp URL: their pid}."""
    shared = {"EVOLINK_OUTPUT_DIR": str(home / "shared-images"), "EVOLINK_MCP_STATELESS": "1", **env}
    with ExitStack() as stack:
        servers = [
            stack.enter_context(http_server(home / f"replica-{number}", sandbox, TOKEN, **shared))
            for number in range(count)
        ]
        yield dict(servers)


async def _spread(urls: list[str]) -> tuple[float, list[tuple[float, str, bool]]]:
    """Warm each replica with one call, then CALLS calls at once, each to the next replica in turn."""
    for url in urls:
        _, status, _ = await _generate(url, 0)
        if status != "completed":
            raise RuntimeError(f"a single generate_image ended {status}")
    return await at_once(urls)


def _committed(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0])


def _postgres_cpu(url: str) -> float:
    """CPU seconds the PostgreSQL server's processes (the postmaster and its children) have used so far."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:  # read while the backend lives: it ends with the connection
        row = db.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postmaster = int(Path(f"/proc/{row[0]}/stat").read_text().rpartition(")")[2].split()[1])
    children = [int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent(stat) == postmaster]
    return sum(_cpu_or_zero(pid) for pid in [postmaster, *children])


def _parent(stat: Path) -> int:
    try:
        return int(stat.read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # ended meanwhile
        return 0.0


def _scenario(label: str, home: Path, count: int, journal_url: str | None = None) -> Outcome:
    env = {"EVOLINK_JOURNAL_URL": journal_url} if journal_url else {}
    with sandbox_process(home / "sandbox", TASK_SECONDS) as sandbox, _replicas(home, sandbox, count, **env) as urls:
        cpu_before = sum(map(cpu_seconds, urls.values()))
        commits_before = _committed(journal_url) if journal_url else 0
        db_cpu_before = _postgres_cpu(journal_url) if journal_url else 0.0
        wall, outcomes = anyio.run(_spread, list(urls))
        db_cpu = (_postgres_cpu(journal_url) - db_cpu_before) if journal_url else None
        commits = (_committed(journal_url) - commits_before - 2) if journal_url else 0  # not this bench's own
        cpu = sum(map(cpu_seconds, urls.values())) - cpu_before
    above = [seconds - TASK_SECONDS for seconds, status, _ in outcomes if status == "completed"]
    failures = sorted({status for _, status, _ in outcomes if status != "completed"})
    return Outcome(label, above, failures, wall, cpu, commits / CALLS if journal_url else None, db_cpu)


def _pooled(rounds: list[Outcome]) -> Outcome:
    """The rounds as one: every latency, every failure, CPU and round trips per round on average."""
    trips = [r.round_trips for r in rounds if r.round_trips is not None]
    db_cpu = [r.postgres_cpu for r in rounds if r.postgres_cpu is not None]
    return Outcome(
        rounds[0].label,
        [seconds for r in rounds for seconds in r.seconds],
        sorted({failure for r in rounds for failure in r.failures}),
        sum(r.wall for r in rounds) / len(rounds),
        sum(r.cpu for r in rounds) / len(rounds),
        sum(trips) / len(trips) if trips else None,
        sum(db_cpu) / len(db_cpu) if db_cpu else None,
        calls=sum(r.calls for r in rounds),
    )


def _fresh_database(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _row(outcome: Outcome, reference: Outcome | None = None, target: bool = False) -> list[Row]:
    p50, p99 = (percentile(outcome.seconds, 50), percentile(outcome.seconds, 99)) if outcome.seconds else (0.0, 0.0)
    done = len(outcome.seconds)
    rows = [
        Row(
            f"  {outcome.label}: completed",
            f"{done}/{outcome.calls}",
            target="100%",
            met=done == outcome.calls,
            note="; ".join(outcome.failures)[:200],
        )
    ]
    ratio, met, goal = "-", None, "-"
    if reference is not None and reference.seconds:
        ref99 = percentile(reference.seconds, 99)
        ratio = f"p99 {p99 / ref99:.2f}x"
        if target:
            goal, met = f"p99 <= {P99_RATIO_TARGET:g}x SQLite's", p99 <= P99_RATIO_TARGET * ref99
    trips = (
        ""
        if outcome.round_trips is None
        else f"; PostgreSQL CPU {outcome.postgres_cpu:.1f} s; journal round trips per generation "
        f"{outcome.round_trips:.1f}"
    )
    rows.append(
        Row(
            f"  {outcome.label}: latency above the {TASK_SECONDS:g} s task",
            f"p50 +{ms(p50)}, p99 +{ms(p99)}",
            "-" if reference is None else f"{reference.label}: p99 +{ms(percentile(reference.seconds, 99))}",
            ratio,
            goal,
            met,
            f"{CALLS} calls in {outcome.wall:.1f} s; replica CPU {outcome.cpu:.1f} s{trips} (per round)",
        )
    )
    return rows


def run() -> list[Row]:
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import local_server  # the tests' throwaway PostgreSQL server

    sqlite: list[Outcome] = []
    postgres: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp, local_server() as server_url:
        home = Path(tmp)
        for number in range(ROUNDS):  # interleaved: a busy spell on the shared machine hits both journals
            sqlite.append(_scenario("1 replica, SQLite journal", home / f"sqlite-{number}", 1))
            database = _fresh_database(server_url, f"bench_one_{number}")
            postgres.append(_scenario("1 replica, PostgreSQL journal", home / f"postgres-{number}", 1, database))
        two = _scenario("2 replicas, one PostgreSQL", home / "two", 2, _fresh_database(server_url, "bench_two"))
    return [
        Row(
            f"{CALLS} concurrent generate_image over streamable HTTP (one 2-core machine; SQLite and PostgreSQL "
            f"{ROUNDS} rounds each, interleaved, latencies pooled)",
            "-",
        ),
        *_row(_pooled(sqlite)),
        *_row(_pooled(postgres), _pooled(sqlite), target=True),
        *(row.informational() for row in _row(two, _pooled(postgres))),
    ]


if __name__ == "__main__":
    for result in run():
        print(result)
