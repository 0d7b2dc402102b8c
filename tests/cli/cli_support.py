"""Running `evolink-mcp` commands as a user would: a subprocess with a clean environment, always bounded."""

from __future__ import annotations

import subprocess

from process_support import evolink_argv

RUN_TIMEOUT = 60.0
TASK_SECONDS = "0.05"
SECRET_KEY = "sk-test-SECRET-5d1e8b3f9c2a7e4d6b0a"
DEFAULT_MODEL = "gemini-3.1-flash-image-preview"


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        evolink_argv(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
