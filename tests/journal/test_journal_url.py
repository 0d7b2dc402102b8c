"""EVOLINK_JOURNAL_URL: a malformed one refused at start-up with the accepted form, a database that cannot be
reached stops the server, and the password is never shown (errors, Settings' repr, the journal's location)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evolink_mcp.journal import Journal
from evolink_mcp.journal.url import ACCEPTED_FORM
from evolink_mcp.settings import Settings, SettingsError
from process_support import child_env, evolink_argv, free_port

PASSWORD = "pw-Never-Shown-7"
START_TIMEOUT = 60


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://evolink:{PASSWORD}@db:3306/evolink",
        f"evolink:{PASSWORD}@db:5432/evolink",
        f"postgresql://evolink:{PASSWORD}@db:99999/evolink",
        f"postgresql://evolink:{PASSWORD}@db:port/evolink",
        f"postgresql://evolink:{PASSWORD}@/evolink",
        f"postgresql://evolink:{PASSWORD}@db:5432",
        f"postgresql://evolink:{PASSWORD}@db:5432/",
        f"postgresql://evolink:{PASSWORD}@[::1/evolink",
    ],
)
def test_a_malformed_journal_url_is_refused_with_the_accepted_form_and_never_echoed(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"EVOLINK_JOURNAL_URL": url})

    assert "EVOLINK_JOURNAL_URL" in str(refused.value) and ACCEPTED_FORM in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_the_journal_is_shown_without_its_password_even_percent_encoded(tmp_path: Path) -> None:
    encoded = "p%40ss%2Fw%3Ard"  # p@ss/w:rd
    settings = Settings.from_env(
        {"EVOLINK_JOURNAL_URL": f"postgresql://evolink:{encoded}@db.internal:6543/journal?sslmode=require"}
    )
    journal = Journal(None, url=settings.journal_url.get_secret_value() if settings.journal_url else None)

    assert settings.journal_location == journal.location == "postgresql://evolink@db.internal:6543/journal"
    for shown in (repr(settings), str(settings), journal.location):
        assert encoded not in shown and "p@ss/w:rd" not in shown
    assert "journal=postgresql://evolink@db.internal:6543/journal" in repr(settings)
    assert Settings.from_env({}).journal_url is None  # unset: SQLite in the state folder


def test_the_server_refuses_to_start_on_a_malformed_url_or_an_unreachable_database(tmp_path: Path) -> None:
    malformed = f"postgresql://evolink:{PASSWORD}@127.0.0.1:5432"
    unreachable = f"postgresql://evolink:{PASSWORD}@127.0.0.1:{free_port()}/evolink"
    answers = {}
    for name, url in (("malformed", malformed), ("unreachable", unreachable)):
        answers[name] = subprocess.run(
            evolink_argv("--sandbox"),
            env=child_env(tmp_path / "home", EVOLINK_JOURNAL_URL=url),
            input=b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
            b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n',
            capture_output=True,
            timeout=START_TIMEOUT,
        )

    for answer in answers.values():
        assert answer.returncode != 0
        assert PASSWORD.encode() not in answer.stdout + answer.stderr
    assert ACCEPTED_FORM.encode() in answers["malformed"].stderr
    assert f"{unreachable.replace(f':{PASSWORD}', '')} is unreachable".encode() in answers["unreachable"].stderr
    for answer in answers.values():  # one line saying why, as the HTTP transports say it: no traceback
        assert b"Traceback" not in answer.stderr and answer.stdout == b""
        assert b"evolink-mcp: cannot start:" in answer.stderr or ACCEPTED_FORM.encode() in answer.stderr
