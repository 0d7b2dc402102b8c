"""The journal holds prompts and result URLs: only its owner may read it, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from evolink_mcp.journal import JOURNAL_FILE, Journal

pytestmark = pytest.mark.anyio


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
async def test_the_journal_and_its_wal_files_are_0600_in_a_0700_folder_even_with_a_permissive_umask(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    old = os.umask(0o022)
    try:
        journal = Journal(state)
        await journal.record_intent("key-1", "fp", "z-image-turbo", "a private prompt", {"size": "1:1"})
        files = [state / (JOURNAL_FILE + suffix) for suffix in ("", "-wal", "-shm")]
        assert all(f.exists() for f in files), sorted(p.name for p in state.iterdir())
        assert {f.name: oct(mode_of(f)) for f in files} == {f.name: oct(0o600) for f in files}
        assert oct(mode_of(state)) == oct(0o700)
        journal.close()
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
async def test_a_journal_left_readable_by_an_earlier_version_is_made_private_when_opened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Journal(state)
    await first.record_intent("key-1", "fp", "z-image-turbo", "a lamp", {"size": "1:1"})
    first.close()
    (state / JOURNAL_FILE).chmod(0o644)

    again = Journal(state)
    assert await again.by_request_key("key-1") is not None
    assert oct(mode_of(state / JOURNAL_FILE)) == oct(0o600)
    again.close()
