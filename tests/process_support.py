"""Running evolink-mcp as a user would: the console script, a clean environment, a free port, a clean stop."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

STOP_TIMEOUT = 10.0


def evolink_argv(*args: str) -> list[str]:
    """The installed console script when there is one, else the module (same code either way)."""
    script = shutil.which("evolink-mcp", path=str(Path(sys.executable).parent))
    return [script, *args] if script else [sys.executable, "-m", "evolink_mcp", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without the developer's EVOLINK_* or XDG_* settings, HOME in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "XDG_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def child_env(home: Path, **evolink: str) -> dict[str, str]:
    """`clean_env` with the journal in `home/state`, plus `evolink`."""
    return {**clean_env(home), "EVOLINK_STATE_DIR": str(home / "state"), **evolink}


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Terminate, then kill if it lingers; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
