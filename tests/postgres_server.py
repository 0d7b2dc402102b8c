"""A real PostgreSQL server for tests: EVOLINK_TEST_POSTGRES_URL's, or one started for the session from the
machine's binaries (Debian's postgresql package: initdb in a temporary folder, a free port on 127.0.0.1, torn
down after). Without either, tests that need it skip, saying why, or fail under EVOLINK_REQUIRE_POSTGRES=1
(.ci/run).

`python tests/postgres_server.py COMMAND...` runs COMMAND with EVOLINK_TEST_POSTGRES_URL set to such a server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from process_support import free_port

URL_VARIABLE = "EVOLINK_TEST_POSTGRES_URL"
REQUIRED_VARIABLE = "EVOLINK_REQUIRE_POSTGRES"
START_SECONDS = 60


class Unavailable(Exception):
    """No PostgreSQL server can be had here; the message says why."""


def _binaries() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise Unavailable("no PostgreSQL server binaries (initdb) here: apt-get install postgresql")
    return versions[-1].parent


@contextmanager
def local_server() -> Iterator[str]:
    """A throwaway PostgreSQL server (no fsync: tests only), its superuser `evolink` trusted on 127.0.0.1;
    yields the URL of its `postgres` database."""
    binaries = _binaries()
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="evolink-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: Debian's package has a postgres user for it
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            raise Unavailable("running as root and there is no postgres user to run the server as") from None
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run(
            [*as_user, binaries / "initdb", "-D", data, "-A", "trust", "-U", "evolink", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )
        options = f"-p {port} -h 127.0.0.1 -k {folder} -c fsync=off -c synchronous_commit=off -c max_connections=200"
        subprocess.run(
            [*as_user, binaries / "pg_ctl", "-D", data, "-o", options, "-l", folder / "log", "-w", "start"],
            check=True,
            capture_output=True,
            timeout=START_SECONDS,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        stderr = getattr(exc, "stderr", b"") or b""
        raise Unavailable(f"PostgreSQL did not start: {exc}; {stderr.decode(errors='replace')}{log}") from exc
    try:
        yield f"postgresql://evolink@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=START_SECONDS,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database, where each test makes its own database."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        return
    try:
        import psycopg  # noqa: F401  # the `postgres` extra
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    try:
        with local_server() as url:
            yield url
    except Unavailable as exc:
        _unavailable(str(exc))


def _unavailable(why: str) -> None:
    if os.environ.get(REQUIRED_VARIABLE) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRED_VARIABLE}=1) but {why}", pytrace=False)
    pytest.skip(f"no PostgreSQL server for the journal's PostgreSQL backend: {why} (or set {URL_VARIABLE})")


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, for this test alone (dropped after it)."""
    import psycopg

    name = f"evolink_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    with local_server() as server_url:
        sys.exit(subprocess.run(sys.argv[1:], env={**os.environ, URL_VARIABLE: server_url}).returncode)
