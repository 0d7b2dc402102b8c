"""Fixtures: `evolink-mcp serve` over HTTP as a subprocess on 127.0.0.1, and a progress recorder."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from transport_support import (
    MCP_TOKEN,
    TASK_SECONDS,
    HttpServer,
    ProgressLog,
    child_env,
    evolink_argv,
    free_port,
    stop,
    wait_until_answering,
)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """`evolink-mcp serve --transport streamable-http --sandbox`: a token, an allowed dir, DEBUG logs."""
    root = tmp_path_factory.mktemp("http-server")
    port = free_port()
    output_dir, allowed_dir, log = root / "out", root / "allowed", root / "server.log"
    allowed_dir.mkdir()
    env = child_env(
        root / "home",
        EVOLINK_OUTPUT_DIR=str(output_dir),
        EVOLINK_SANDBOX_TASK_SECONDS=TASK_SECONDS,
        EVOLINK_MCP_TOKEN=MCP_TOKEN,
        EVOLINK_ALLOWED_DIRS=str(allowed_dir),
        EVOLINK_LOG_LEVEL="DEBUG",
    )
    argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(port), "--sandbox")
    with log.open("wb") as log_file:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{base_url}/healthz", process, log)
        yield HttpServer(base_url, port, MCP_TOKEN, output_dir, allowed_dir, log)
    finally:
        stop(process)


@pytest.fixture
def progress() -> ProgressLog:
    return ProgressLog()
