"""What an operator relies on, against real processes: liveness and readiness, the journal's database gone at
start-up (no start) and mid-run (not ready; tool calls refused as retryable, nothing sent), and bearer tokens
rotated with no downtime."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import psycopg
import pytest
from replica_support import TOKEN, Deployment, Process, session, wait_for, wait_until_ready

from evolink_mcp.journal.base import LOCK_WAIT_SECONDS
from evolink_mcp.transports import READY_TIMEOUT
from postgres_server import Unavailable, local_server
from process_support import INITIALIZE, MCP_HEADERS, child_env, evolink_argv, free_port, stop

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def stop_postgres(url: str) -> None:
    """Shut the server down as an operator's `pg_ctl stop -m fast` would: SIGINT to the postmaster (the parent of
    this connection's backend)."""
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    backend = int(row[0])
    postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(postmaster, signal.SIGINT)


@pytest.fixture
def private_postgres(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL server of this test's own, which it may stop."""
    try:
        with local_server() as url:
            yield url
    except Unavailable as exc:
        pytest.fail(str(exc))


async def test_readiness_fails_and_tool_calls_are_refused_as_retryable_when_the_journal_goes_away(
    tmp_path: Path, private_postgres: str, sandbox: tuple[str, Path]
) -> None:
    output_dir = tmp_path / "images"
    output_dir.mkdir()
    deployment = Deployment(tmp_path, private_postgres, sandbox[0], sandbox[1], output_dir)
    replica = deployment.start_replica("a")
    try:
        ready = httpx2.get(f"{replica.base_url}/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"

        stop_postgres(private_postgres)
        await wait_for("/readyz failing", lambda: httpx2.get(f"{replica.base_url}/readyz").status_code == 503)
        before = len(deployment.created_tasks())
        async with session(replica) as client:
            result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "wait_seconds": 0})

        # Calls waiting for a connection (the pool waits LOCK_WAIT_SECONDS) must not hold up the answer: a load
        # balancer's probe gets it within the readiness deadline.
        assert READY_TIMEOUT + 1.5 < LOCK_WAIT_SECONDS
        not_ready = httpx2.get(f"{replica.base_url}/readyz", timeout=READY_TIMEOUT + 1.5).json()
        alive = httpx2.get(f"{replica.base_url}/healthz")
    finally:
        stop(replica.process)

    assert not_ready["status"] == "unavailable"
    assert not_ready["journal"].startswith("postgresql://evolink@127.0.0.1:")
    assert alive.status_code == 200  # alive, only not ready: a load balancer stops sending, nothing restarts it
    assert result.is_error
    error = (result.structured_content or {})["error"]
    assert (error["category"], error["retryable"]) == ("journal_unavailable", True)
    assert "journal" in error["message"] and "postgresql://evolink@127.0.0.1:" in error["message"]
    assert len(deployment.created_tasks()) == before  # nothing submitted without its intent recorded


def test_a_replica_whose_journal_is_unreachable_at_start_up_exits_with_a_clear_error(
    tmp_path: Path,
    postgres_server: str,
) -> None:
    unreachable = f"postgresql://evolink:pw-SECRET-41@127.0.0.1:{free_port()}/evolink"
    env = child_env(tmp_path / "home", EVOLINK_JOURNAL_URL=unreachable, EVOLINK_MCP_TOKEN=TOKEN)
    argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(free_port()), "--sandbox")

    finished = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    assert finished.returncode != 0
    assert "cannot start: The task journal postgresql://evolink@127.0.0.1:" in finished.stderr
    assert "unreachable" in finished.stderr
    assert "pw-SECRET-41" not in finished.stderr + finished.stdout


@pytest.fixture
def rotating_server(tmp_path: Path) -> Iterator[Process]:
    """A server (SQLite journal, its own sandbox) accepting two tokens: the new one and the old one."""
    port, log = free_port(), tmp_path / "server.log"
    env = child_env(tmp_path / "home", EVOLINK_MCP_TOKEN="token-new-71c2,token-old-9e4a", EVOLINK_LOG_LEVEL="DEBUG")
    argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(port), "--sandbox")
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server = Process("rotating", process, log, f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(f"{server.base_url}/readyz", server)
        yield server
    finally:
        stop(process)


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("token-new-71c2", 200),
        ("token-old-9e4a", 200),
        ("token-gone-0000", 401),
        ("token-new-71c2,token-old-9e4a", 401),
    ],
)
def test_while_rotating_both_the_new_and_the_old_token_are_accepted_and_no_other(
    rotating_server: Process, token: str, status: int
) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}

    answer = httpx2.post(f"{rotating_server.base_url}/mcp", headers=headers, json=INITIALIZE, timeout=10)

    assert answer.status_code == status
    assert "token-" not in rotating_server.log_text().replace("token-gone", "")


def test_readiness_answers_without_a_token_and_names_the_journal(rotating_server: Process) -> None:
    answer = httpx2.get(f"{rotating_server.base_url}/readyz", timeout=10)

    assert answer.status_code == 200
    assert answer.json()["status"] == "ready"
    assert answer.json()["journal"].endswith("journal.sqlite3")
