"""Fixtures: `evolink-mcp serve` over HTTP as a subprocess on 127.0.0.1, and a progress recorder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from transport_support import MCP_TOKEN, TASK_SECONDS, HttpServer, ProgressLog, serving


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """`evolink-mcp serve --transport streamable-http --sandbox`: a token, an allowed dir, DEBUG logs."""
    root = tmp_path_factory.mktemp("http-server")
    (root / "allowed").mkdir()
    with serving(
        root,
        "--sandbox",
        EVOLINK_SANDBOX_TASK_SECONDS=TASK_SECONDS,
        EVOLINK_MCP_TOKEN=MCP_TOKEN,
        EVOLINK_ALLOWED_DIRS=str(root / "allowed"),
        EVOLINK_LOG_LEVEL="DEBUG",
    ) as server:
        yield server


@pytest.fixture
def progress() -> ProgressLog:
    return ProgressLog()
