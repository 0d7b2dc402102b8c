"""Text the terminal or an HTTP header would act on: a key that cannot be sent is refused at start-up, and
`evolink-mcp tasks` shows upstream text with its control characters escaped, never interpreted."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from cli_support import run_cli

from evolink_mcp.journal import Journal
from process_support import free_port

BROKEN_KEY = "sk-test-HEADER-9a8b7c\r\nX-Injected: yes"
ESCAPES = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.mark.parametrize("command", [("serve",), ("generate", "a red lamp")])
def test_a_key_with_a_line_break_is_refused_at_start_up_without_echoing_it(
    env: dict[str, str], command: tuple[str, ...]
) -> None:
    env.update(EVOLINK_API_KEY=BROKEN_KEY, EVOLINK_BASE_URL=f"http://127.0.0.1:{free_port()}")

    finished = run_cli(env, *command)

    assert finished.returncode != 0
    assert "EVOLINK_API_KEY" in finished.stderr
    assert "line break" in finished.stderr
    for part in ("HEADER-9a8b7c", "X-Injected"):
        assert part not in finished.stderr + finished.stdout
    assert not (Path(env["EVOLINK_STATE_DIR"]) / "journal.sqlite3").exists()


async def write_hostile_entry(state_dir: Path) -> None:
    journal = Journal(state_dir)
    await journal.record_intent("key-1", "fp", "z-image-turbo", "a lamp \x1b[2J", {"size": "1:1"})
    await journal.record_submitted("key-1", "task-\x1b]0;pwned\x07", "failed", 2.0)
    await journal.record_status(
        "task-\x1b]0;pwned\x07",
        "failed",
        100.0,
        error_code="bad\x9b31m",
        error_message="\x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \u202etxt.exe",
    )
    journal.close()


def test_tasks_prints_upstream_text_with_control_characters_escaped(env: dict[str, str]) -> None:
    anyio.run(write_hostile_entry, Path(env["EVOLINK_STATE_DIR"]))

    text = run_cli(env, "tasks")
    as_json = run_cli(env, "tasks", "--json")

    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    for out in (text.stdout, as_json.stdout):
        assert not [c for c in ESCAPES if c in out], repr(out)
    assert "\\x1b]8;;http://evil.example\\x07click" in text.stdout
    assert json.loads(as_json.stdout)[0]["error_message"].startswith("\x1b]8;;http://evil.example")
