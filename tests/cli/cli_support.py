"""Running `evolink-mcp` commands as a user would: a subprocess with a clean environment, always bounded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

RUN_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TASK_SECONDS = "0.05"
SECRET_KEY = "sk-test-SECRET-5d1e8b3f9c2a7e4d6b0a"
DEFAULT_MODEL = "gemini-3.1-flash-image-preview"


def evolink_argv(*args: str) -> list[str]:
    """The installed console script when there is one, else the module (same code either way)."""
    script = shutil.which("evolink-mcp", path=str(Path(sys.executable).parent))
    return [script, *args] if script else [sys.executable, "-m", "evolink_mcp", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(home: Path, **evolink: str) -> dict[str, str]:
    """This process's environment without the developer's EVOLINK_* or XDG_* settings, plus `evolink`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "XDG_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), EVOLINK_STATE_DIR=str(home / "state"), PYTHONUNBUFFERED="1", **evolink)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        evolink_argv(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it lingers; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
