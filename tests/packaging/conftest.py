"""Session fixtures shared by the packaging tests: the mcpb CLI, uv, PyPI, the server's own tool list."""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path

import anyio
import pytest
from packaging_support import MCPB_PACKAGE, Mcpb, base_python, network_env, run, unavailable

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.settings import Settings
from mcp_session import CheckedClient


@pytest.fixture(scope="session")
def mcpb(tmp_path_factory: pytest.TempPathFactory) -> Mcpb:
    missing = [tool for tool in ("node", "npm", "npx") if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not on PATH: the MCPB checks need Node.js")
    prefix = tmp_path_factory.mktemp("mcpb")
    result = run(
        ["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", MCPB_PACKAGE],
        timeout=240,
        check=False,
    )
    if result.returncode != 0:
        unavailable(f"`npm install {MCPB_PACKAGE}` failed (npm registry unreachable?):\n{result.stderr[-2000:]}")
    return Mcpb(prefix)


@pytest.fixture(scope="session")
def pypi() -> None:
    """PyPI (or the configured index) answers; the install steps below fetch from it."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/pip/", timeout=15):
            pass
    except OSError as exc:
        unavailable(f"package index {index} unreachable: {exc}")


@pytest.fixture(scope="session")
def uv_bin(pypi: None, packaging_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only `uv` and `uvx` (pip-installed into a venv of their own): on a PATH it adds
    no Python of its own."""
    root = tmp_path_factory.mktemp("uv")
    run([base_python(), "-m", "venv", root / "venv"], timeout=120)
    result = run(
        [root / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet", "uv"],
        timeout=240,
        env={**packaging_env, "HOME": os.environ["HOME"]},
        check=False,
    )
    if result.returncode != 0:
        unavailable(f"uv could not be installed with pip:\n{result.stderr[-2000:]}")
    (root / "bin").mkdir()
    for name in ("uv", "uvx"):
        (root / "bin" / name).symlink_to(root / "venv" / "bin" / name)
    return root / "bin"


@pytest.fixture(scope="session")
def packaging_env() -> dict[str, str]:
    """PATH plus the machine's package-index set-up: what install commands may see of our environment."""
    return {"PATH": os.environ["PATH"], **network_env()}


@pytest.fixture(scope="session")
def server_tool_names() -> list[str]:
    """The tool names the server itself registers (in-process, sandbox settings)."""

    async def names() -> list[str]:
        server = build_server(build_deps(Settings.from_env({}, sandbox=True), allowed_dirs=None))
        async with CheckedClient(server) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    return anyio.run(names)
