"""Editing a saved image, as every result suggests, over each transport: its evolink:// URI or its path in
image_urls (and upload_file), read from the server's own output folder even where EVOLINK_ALLOWED_DIRS does not
name it (HTTP, and so Docker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult
from pydantic import SecretStr
from transport_support import (
    CALL_TIMEOUT,
    MCP_TOKEN,
    SECRET_KEY,
    child_env,
    serving,
    stdio_session,
    text_of,
    upstream_env,
)

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from mcp_session import CheckedClient

pytestmark = pytest.mark.anyio

INSTANT = " [sandbox:duration=0]"
TRANSPORTS = ("memory", "stdio", "sse", "streamable-http")
Opener = Callable[[], AbstractAsyncContextManager[Client]]


@pytest.fixture(scope="module")
def http_server(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`evolink-mcp serve --transport streamable-http` (SSE too) against the test's sandbox, allowed to read only a
    folder that is not its output folder. Yields its URL."""
    root = tmp_path_factory.mktemp("edit-http")
    (root / "allowed").mkdir()
    with serving(
        root,
        **upstream_env(sandbox_server.base_url),
        EVOLINK_ALLOWED_DIRS=str(root / "allowed"),
        EVOLINK_MCP_TOKEN=MCP_TOKEN,
    ) as server:
        yield server.base_url


def opener(transport: str, tmp_path: Path, sandbox: SandboxServer, url: str) -> Opener:
    """How to open a session over `transport`: in memory or stdio (saving in tmp_path/out), or HTTP to `url`."""
    auth = {"Authorization": f"Bearer {MCP_TOKEN}"}

    @asynccontextmanager
    async def memory() -> AsyncIterator[Client]:
        settings = Settings(
            api_key=SecretStr(SECRET_KEY),
            base_url=sandbox.base_url,
            files_base_url=sandbox.base_url,
            output_dir=tmp_path / "out",
            state_dir=tmp_path / "state",
        )
        (tmp_path / "allowed").mkdir(exist_ok=True)  # as over HTTP: a folder to read that is not the output folder
        async with CheckedClient(build_server(build_deps(settings, allowed_dirs=[tmp_path / "allowed"]))) as client:
            yield client

    @asynccontextmanager
    async def stdio() -> AsyncIterator[Client]:
        env = child_env(tmp_path / "home", **upstream_env(sandbox.base_url), EVOLINK_OUTPUT_DIR=str(tmp_path / "out"))
        async with stdio_session(env, tmp_path / "stderr.log") as client:
            yield client

    @asynccontextmanager
    async def sse() -> AsyncIterator[Client]:
        async with CheckedClient(sse_client(f"{url}/sse", headers=auth, sse_read_timeout=60.0)) as client:
            yield client

    @asynccontextmanager
    async def streamable_http() -> AsyncIterator[Client]:
        async with (
            httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
            CheckedClient(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
        ):
            yield client

    return {"memory": memory, "stdio": stdio, "sse": sse, "streamable-http": streamable_http}[transport]


async def call(client: Client, name: str, arguments: dict[str, object]) -> CallToolResult:
    with anyio.fail_after(CALL_TIMEOUT):
        result = await client.call_tool(name, arguments)
    assert not result.is_error, text_of(result)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_saved_image_is_edited_by_its_evolink_uri_or_its_path_over_every_transport(
    transport: str, tmp_path: Path, sandbox: SandboxServer, http_server: str
) -> None:
    # A prompt of its own per transport: SSE and streamable HTTP share a server, which would return the same task
    # for the same request made again (EVOLINK_DEDUPE_SECONDS).
    async with opener(transport, tmp_path, sandbox, http_server)() as client:
        made = await call(client, "generate_image", {"prompt": f"a red apple ({transport})" + INSTANT})
        (image,) = made.structured_content["images"] if made.structured_content else []
        uri, path = image["resource_uri"], image["path"]
        assert uri.startswith("evolink://images/")
        by_uri = await call(
            client, "generate_image", {"prompt": f"make it green ({transport})" + INSTANT, "image_urls": [uri]}
        )
        by_path = await call(
            client, "generate_image", {"prompt": f"make it blue ({transport})" + INSTANT, "image_urls": [path]}
        )
        masked = await call(
            client,
            "generate_image",
            {
                "prompt": f"paint it ({transport})" + INSTANT,
                "model": "gpt-image-2",
                "image_urls": [uri],
                "mask_url": uri,
            },
        )
        uploaded = await call(client, "upload_file", {"file_path": uri})

    saved = await anyio.Path(path).read_bytes()
    first, *edits = sandbox.state.requests("generations", "POST")
    assert "image_urls" not in (first.body or {})
    assert len(edits) == 3
    async with httpx2.AsyncClient() as http:
        for edit in edits:
            (sent,) = edit.body["image_urls"] if edit.body else []
            assert sent.startswith(f"{sandbox.base_url}/files/")  # uploaded: not a path, not our URI
            assert (await http.get(sent)).content == saved
        assert edits[-1].body and (await http.get(edits[-1].body["mask_url"])).content == saved
        assert uploaded.structured_content
        assert (await http.get(uploaded.structured_content["file_url"])).content == saved
    for result in (by_uri, by_path, masked):
        assert result.structured_content and result.structured_content["status"] == "completed"


async def test_a_uri_naming_no_saved_image_is_refused_without_charging(
    tmp_path: Path, sandbox: SandboxServer, http_server: str
) -> None:
    async with opener("memory", tmp_path, sandbox, http_server)() as client:
        missing = await client.call_tool(
            "generate_image", {"prompt": "edit it", "image_urls": ["evolink://images/nothing-here.png"]}
        )
        escaping = await client.call_tool(
            "generate_image", {"prompt": "edit it", "image_urls": ["evolink://images/..%2F..%2Fetc%2Fpasswd"]}
        )
        unknown_task = await client.call_tool("upload_file", {"file_path": "evolink://tasks/task-unknown/images/a.png"})

    for result in (missing, escaping, unknown_task):
        assert result.is_error and result.structured_content
    assert "nothing-here.png" in text_of(missing)
    assert "no image this server saved" in text_of(escaping)
    assert "no image this server saved" in text_of(unknown_task)
    assert not sandbox.state.requests("generations") and not sandbox.state.requests("files")
