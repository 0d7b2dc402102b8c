"""Fixtures for the command line: a clean environment per test (HOME, state and output inside tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import TASK_SECONDS

from process_support import child_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user's environment with a quick sandbox and nothing of the developer's EVOLINK_* settings."""
    return child_env(tmp_path / "home", EVOLINK_SANDBOX_TASK_SECONDS=TASK_SECONDS)
