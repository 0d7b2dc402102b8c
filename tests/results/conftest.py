"""Result handling against a hostile upstream of our own (hostile_results.py), through a real MCP client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_results import HostileUpstream
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.settings import Settings
from evolink_mcp.tools import Deps
from mcp_session import API_KEY


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[HostileUpstream]:
    upstream = HostileUpstream().start()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def hostile(hostile_server: HostileUpstream) -> HostileUpstream:
    """The stand-in, its script and counts reset."""
    hostile_server.reset()
    return hostile_server


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def server_over(hostile: HostileUpstream, tmp_path: Path, output_dir: Path) -> Callable[..., MCPServer[Deps]]:
    """A server whose upstream is the hostile stand-in; keyword arguments override settings."""

    def make(**overrides: Any) -> MCPServer[Deps]:
        values: dict[str, Any] = {
            "api_key": SecretStr(API_KEY),
            "base_url": hostile.base_url,
            "files_base_url": hostile.base_url,
            "output_dir": output_dir,
            "state_dir": tmp_path / "state",
            "wait_seconds": 10.0,
            "preview_max_bytes": 200_000,
            **overrides,
        }
        return build_server(build_deps(Settings(**values), allowed_dirs=None))

    return make
