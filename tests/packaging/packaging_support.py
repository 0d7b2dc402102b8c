"""Helpers for the packaging tests: bounded subprocesses, skip-or-fail, interpreters, stdio sessions."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from mcp_session import CheckedClient

REPO = Path(__file__).resolve().parents[2]
REQUIRE_ENV = "EVOLINK_REQUIRE_PACKAGING_TESTS"
SESSION_TIMEOUT = 60.0
MCPB_PACKAGE = "@anthropic-ai/mcpb@2"


def unavailable(reason: str) -> NoReturn:
    """Skip for a missing prerequisite (tool, network) — or fail, when CI demands these tests run."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _tail(text: str | None, lines: int = 40) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"`{shlex.join(map(str, result.args))}` exited {result.returncode}\n"
        f"--- stdout\n{_tail(result.stdout)}\n--- stderr\n{_tail(result.stderr)}"
    )


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Signal the process group we started (start_new_session=True) with this child."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def run(
    cmd: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` to completion within `timeout` seconds (its whole process group is killed after)."""
    args = [str(c) for c in cmd]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = "", ""
        pytest.fail(
            f"`{shlex.join(args)}` did not finish within {timeout:g}s\n"
            f"--- stdout\n{_tail(out)}\n--- stderr\n{_tail(err)}"
        )
    finally:
        if proc.poll() is None:
            kill_group(proc)
    result = subprocess.CompletedProcess(args, proc.returncode, out, err)
    if check and result.returncode != 0:
        pytest.fail(describe(result), pytrace=False)
    return result


def base_python() -> Path:
    """The interpreter our venv was made from (sys.base_prefix): outside any virtualenv."""
    major, minor = sys.version_info[:2]
    bin_dir = Path(sys.base_prefix) / "bin"
    for name in (f"python{major}.{minor}", "python3"):
        if (bin_dir / name).is_file():
            return bin_dir / name
    unavailable(f"no python3 in {bin_dir} (sys.base_prefix) to run outside the virtualenv")


def python_on_path(version: str, bin_dir: Path) -> Path:
    """`bin_dir` holding only `python3` and `python3.X` for that version: a machine with just that Python.

    Found among pyenv's versions (`$PYENV_ROOT/versions/X.Y.*`), else on PATH (pyenv's shims skipped)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted((root / "versions").glob(f"{version}.*/bin/python{version}"))
    on_path = shutil.which(f"python{version}")
    if not found and on_path and "/shims/" not in on_path:
        found = [Path(on_path)]
    if not found:
        unavailable(f"no Python {version} here (pyenv {root / 'versions'} or PATH)")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in (f"python{version}", "python3"):
        (bin_dir / name).symlink_to(found[-1])
    return bin_dir


def uv_env(home: Path, cache: Path) -> dict[str, str]:
    """What uv needs to reach the package index from here, and never a Python download (uv fetches those
    from GitHub, which tests may not reach): only the interpreters on PATH count."""
    certificates = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
    return {
        "HOME": str(home),
        "UV_CACHE_DIR": str(cache),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
        **({"SSL_CERT_FILE": certificates} if certificates else {}),
        **{k: v for k, v in network_env().items() if k.lower().endswith("_proxy")},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def network_env() -> dict[str, str]:
    """The machine's package-index set-up (pip config, certificates, proxies) for child processes."""
    keep = ("PIP_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
    proxies = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    return {k: v for k, v in os.environ.items() if k.startswith(keep) or k.lower() in proxies}


def manifest(path: Path = REPO / "manifest.json") -> dict[str, Any]:
    return json.loads(path.read_text())


@asynccontextmanager
async def stdio_session(
    command: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    errlog: Path,
    cwd: Path | None = None,
    time_limit: float = SESSION_TIMEOUT,
) -> AsyncIterator[Client]:
    """The SDK's stdio client on `command args`; the child's stderr goes to `errlog`."""
    params = StdioServerParameters(command=command, args=list(args), env=env, cwd=cwd)
    with errlog.open("w") as log, anyio.fail_after(time_limit):
        async with CheckedClient(stdio_client(params, errlog=log)) as client:
            yield client


def server_log(errlog: Path) -> str:
    return f"server stderr:\n{_tail(errlog.read_text() if errlog.exists() else '')}"


# Claude Desktop's way of turning a manifest into a launch command, using the package's own export.
LAUNCH_CONFIG_SCRIPT = """\
import { readFileSync } from "node:fs";
import { getMcpConfigForManifest } from "@anthropic-ai/mcpb";

const options = JSON.parse(readFileSync(process.argv[2], "utf8"));
options.manifest = JSON.parse(readFileSync(options.manifestPath, "utf8"));
const config = await getMcpConfigForManifest(options);
process.stdout.write(JSON.stringify(config ?? null));
"""


@dataclass(frozen=True)
class Mcpb:
    """The official MCPB CLI and library, installed into a private npm prefix."""

    prefix: Path

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "node_modules" / ".bin"

    def cli(self, *args: str | Path, timeout: float = 120, cwd: Path = REPO) -> str:
        return run([self.bin_dir / "mcpb", *args], timeout=timeout, cwd=cwd).stdout

    def launch_config(
        self,
        manifest_path: Path,
        *,
        extension_path: Path,
        user_config: dict[str, Any],
        system_dirs: dict[str, str],
    ) -> dict[str, Any]:
        """`getMcpConfigForManifest(...)`: the command, args and env a host spawns for this bundle."""
        script = self.prefix / "launch-config.mjs"
        script.write_text(LAUNCH_CONFIG_SCRIPT)
        options = {
            "manifestPath": str(manifest_path),
            "extensionPath": str(extension_path),
            "systemDirs": system_dirs,
            "userConfig": user_config,
            "pathSeparator": os.sep,
        }
        options_file = self.prefix / "launch-options.json"
        options_file.write_text(json.dumps(options))
        config = json.loads(run(["node", script, options_file], timeout=60, cwd=self.prefix).stdout)
        assert config, "getMcpConfigForManifest returned no config (required user_config missing?)"
        return config
