"""Running the node project in tests/clients/typescript: its pinned clients against evolink-mcp subprocesses."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

NODE_PROJECT = Path(__file__).resolve().parent / "typescript"
REQUIRE_ENV = "EVOLINK_REQUIRE_CLIENT_MATRIX"
NODE_TIMEOUT = 120.0


def unavailable(reason: str) -> NoReturn:
    """Skip without the node project installed — or fail, when CI demands the client matrix run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def require_node_project() -> None:
    if shutil.which("node") is None:
        unavailable("node is not on PATH: the TypeScript client checks need Node.js")
    if not (NODE_PROJECT / "node_modules").is_dir():
        unavailable(f"{NODE_PROJECT}/node_modules is missing: run `npm ci --prefix {NODE_PROJECT}`")


def run_node(args: list[str], env: dict[str, str], timeout: float = NODE_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`args` run with the node project's installed packages (its bin folder first on PATH)."""
    bin_dir = NODE_PROJECT / "node_modules" / ".bin"
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"}
    return subprocess.run(
        args, cwd=NODE_PROJECT, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def describe(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    def tail(text: str) -> str:
        return "\n".join(text.rstrip().splitlines()[-lines:])

    return (
        f"`{shlex.join(result.args)}` exited {result.returncode}\n"
        f"--- stdout\n{tail(result.stdout)}\n--- stderr\n{tail(result.stderr)}"
    )


def client_checks(config: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run client_checks.mjs with `config`; its observations, one key per check."""
    result = run_node(["node", "client_checks.mjs", json.dumps(config)], env)
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(f"the TypeScript client run crashed:\n{describe(result)}", pytrace=False)
    checks: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return checks
