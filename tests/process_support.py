"""Running evolink-mcp as a user would: the console script, a clean environment, a free port, waiting until it
answers, a clean stop; and the first request of a client that speaks the wire without an SDK."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INITIALIZE_PARAMS = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE_PARAMS}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


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


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path, *, healthy: bool = False) -> None:
    """Poll `url` until anything answers (with `healthy`, a 2xx); fail with the process's log if it exits first
    or nothing does within START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx2.get(url, timeout=2.0).is_success or not healthy:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered at {url}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
