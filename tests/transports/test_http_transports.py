"""Streamable HTTP and SSE from `evolink-mcp serve` on 127.0.0.1: the SDK's clients, auth, host checks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from transport_support import (
    MCP_TOKEN,
    TOOLS,
    HttpServer,
    ProgressLog,
    assert_image_saved,
    child_env,
    evolink_argv,
    free_port,
    text_of,
    write_png,
)

import process_support
from mcp_session import CheckedClient
from process_support import MCP_HEADERS

INITIALIZE = json.dumps(process_support.INITIALIZE)


@asynccontextmanager
async def streamable_http_session(server: HttpServer) -> AsyncIterator[Client]:
    timeout = httpx2.Timeout(30.0, read=60.0)
    async with (
        httpx2.AsyncClient(headers=server.auth, timeout=timeout) as http,
        CheckedClient(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as client,
    ):
        yield client


@asynccontextmanager
async def sse_session(server: HttpServer) -> AsyncIterator[Client]:
    async with CheckedClient(
        sse_client(f"{server.base_url}/sse", headers=server.auth, sse_read_timeout=60.0)
    ) as client:
        yield client


SESSIONS = {"streamable-http": streamable_http_session, "sse": sse_session}


def test_healthz_answers_without_a_token(http_server: HttpServer) -> None:
    response = httpx2.get(f"{http_server.base_url}/healthz", timeout=5)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_the_http_server_runs_on_uvloop_and_parses_http_with_httptools(http_server: HttpServer) -> None:
    """The two C libraries that let one process serve many sessions: a missing install would only show as load."""
    assert "SSE /sse; event loop uvloop, HTTP parser HttpTools); journal" in http_server.log_text()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {MCP_TOKEN[:-1]}", f"Basic {MCP_TOKEN}", MCP_TOKEN],
    ids=["missing", "wrong", "truncated", "basic-scheme", "no-scheme"],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/mcp"), ("GET", "/sse"), ("POST", "/messages/?session_id=0")])
def test_requests_without_the_right_token_get_401_with_a_bearer_challenge(
    http_server: HttpServer, authorization: str | None, method: str, path: str
) -> None:
    headers = dict(MCP_HEADERS, **({"Authorization": authorization} if authorization else {}))

    response = httpx2.request(method, f"{http_server.base_url}{path}", headers=headers, content=INITIALIZE, timeout=5)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_right_token_opens_a_streamable_http_session(http_server: HttpServer) -> None:
    headers = {**MCP_HEADERS, **http_server.auth}

    response = httpx2.post(f"{http_server.base_url}/mcp", headers=headers, content=INITIALIZE, timeout=5)

    assert response.status_code == 200
    assert response.headers.get("mcp-session-id")


@pytest.mark.anyio
@pytest.mark.parametrize("transport", SESSIONS)
async def test_every_tool_is_listed_over_each_http_transport(http_server: HttpServer, transport: str) -> None:
    async with SESSIONS[transport](http_server) as client:
        tools = await client.list_tools()

    assert {tool.name for tool in tools.tools} == TOOLS


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("transport", SESSIONS)
async def test_generate_image_saves_the_image_and_reports_progress_over_each_http_transport(
    http_server: HttpServer, transport: str, progress: ProgressLog
) -> None:
    async with SESSIONS[transport](http_server) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": f"a lighthouse over {transport}"}, progress_callback=progress
        )

    assert_image_saved(result, http_server.output_dir)
    progress.assert_ran_to_completion()


@pytest.mark.parametrize(("method", "path"), [("POST", "/mcp"), ("GET", "/sse")])
def test_a_foreign_host_header_is_refused(http_server: HttpServer, method: str, path: str) -> None:
    headers = {**MCP_HEADERS, **http_server.auth, "Host": "evil.example"}

    response = httpx2.request(method, f"{http_server.base_url}{path}", headers=headers, content=INITIALIZE, timeout=5)

    assert response.status_code == 421


@pytest.mark.parametrize(("method", "path"), [("POST", "/mcp"), ("GET", "/sse")])
def test_a_foreign_origin_is_refused(http_server: HttpServer, method: str, path: str) -> None:
    headers = {**MCP_HEADERS, **http_server.auth, "Origin": "http://evil.example"}

    response = httpx2.request(method, f"{http_server.base_url}{path}", headers=headers, content=INITIALIZE, timeout=5)

    assert response.status_code == 403


def test_an_origin_naming_this_server_is_accepted(http_server: HttpServer) -> None:
    headers = {**MCP_HEADERS, **http_server.auth, "Origin": f"http://127.0.0.1:{http_server.port}"}

    response = httpx2.post(f"{http_server.base_url}/mcp", headers=headers, content=INITIALIZE, timeout=5)

    assert response.status_code == 200


def seventeen_mib() -> Iterator[bytes]:
    for _ in range(17):
        yield b" " * (1024 * 1024)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/mcp", "/messages/?session_id=0"])
def test_a_body_over_16_mib_is_refused_with_413(http_server: HttpServer, path: str, chunked: bool) -> None:
    headers = {**MCP_HEADERS, **http_server.auth}
    body = seventeen_mib() if chunked else b"".join(seventeen_mib())

    response = httpx2.post(f"{http_server.base_url}{path}", headers=headers, content=body, timeout=30)

    assert response.status_code == 413


@pytest.mark.anyio
async def test_upload_file_refuses_a_local_path_outside_evolink_allowed_dirs(
    http_server: HttpServer, tmp_path: Path
) -> None:
    outside = write_png(tmp_path / "outside.png")

    async with streamable_http_session(http_server) as client:
        result = await client.call_tool("upload_file", {"file_path": str(outside)})

    assert result.is_error
    assert "EVOLINK_ALLOWED_DIRS" in text_of(result)


@pytest.mark.anyio
async def test_upload_file_refuses_a_symlink_that_leads_outside_evolink_allowed_dirs(
    http_server: HttpServer, tmp_path: Path
) -> None:
    link = http_server.allowed_dir / f"link-{tmp_path.name}.png"
    link.symlink_to(write_png(tmp_path / "outside.png"))

    async with streamable_http_session(http_server) as client:
        result = await client.call_tool("upload_file", {"file_path": str(link)})

    assert result.is_error
    assert "EVOLINK_ALLOWED_DIRS" in text_of(result)


@pytest.mark.anyio
async def test_upload_file_accepts_a_local_path_inside_evolink_allowed_dirs(
    http_server: HttpServer, tmp_path: Path
) -> None:
    inside = write_png(http_server.allowed_dir / f"inside-{tmp_path.name}.png")

    async with streamable_http_session(http_server) as client:
        result = await client.call_tool("upload_file", {"file_path": str(inside)})

    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["file_url"].startswith("http")
    assert result.structured_content["file_size"] == inside.stat().st_size


@pytest.mark.anyio
async def test_generate_image_refuses_a_reference_path_outside_evolink_allowed_dirs_without_charging(
    http_server: HttpServer, tmp_path: Path
) -> None:
    outside = write_png(tmp_path / "reference.png")

    async with streamable_http_session(http_server) as client:
        result = await client.call_tool("generate_image", {"prompt": "make it blue", "image_urls": [str(outside)]})

    assert result.is_error
    assert "EVOLINK_ALLOWED_DIRS" in text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["error"]["charged"] == "no"


def test_the_token_never_appears_in_the_server_log(http_server: HttpServer) -> None:
    for authorization in (f"Bearer {http_server.token}", f"Bearer {http_server.token}x"):
        headers = {**MCP_HEADERS, "Authorization": authorization}
        httpx2.post(f"{http_server.base_url}/mcp", headers=headers, content=INITIALIZE, timeout=5)

    log = http_server.log_text()
    assert "DEBUG" in log  # the most talkative level is on, so this covers everything the server logs
    assert http_server.token not in log


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serving_on_a_public_interface_without_a_token_refuses_to_start(tmp_path: Path, host: str) -> None:
    argv = evolink_argv("serve", "--transport", "streamable-http", "--host", host, "--port", str(free_port()))

    finished = subprocess.run(argv, env=child_env(tmp_path), capture_output=True, text=True, timeout=20)

    assert finished.returncode != 0
    assert "EVOLINK_MCP_TOKEN" in finished.stderr
    assert finished.stdout == ""
