"""The MCP server end to end: an in-memory `Client(server)` in front, the sandbox over real HTTP behind.

Fixtures (registered for every folder by the root conftest's `pytest_plugins`) and their helpers. Every
tool call goes through `Session.call`, which checks what must hold for every result: the API key is nowhere in
it, and its structuredContent validates against the tool's outputSchema, errors included (as the TypeScript
SDK client checks it).
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ImageContent, ResourceLink, TextContent, Tool
from PIL import Image
from pydantic import SecretStr

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.images.polling import Clock
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from evolink_mcp.tools import Deps
from evolink_mcp.tools.common import ErrorOut

API_KEY = "sk-evolink-e2e-7f3a9c51d2b84e06"

# The fixtures' types, for tests' annotations.
Connect = Callable[..., AbstractAsyncContextManager["Session"]]
ServerFor = Callable[..., MCPServer[Deps]]
CALL_SECONDS = 20.0  # bound on any one tool call: far above what the sandbox's tiny timings need
WAIT_SECONDS = 10.0  # generate_image's default wait in these tests: every normal task finishes well within
INSTANT = " [sandbox:duration=0]"  # the task is finished when submitted: for tests where following it is not the point
# The tools a server with a key publishes, in the order it lists them.
TOOLS = [
    "generate_image",
    "check_task",
    "upload_file",
    "list_models",
    "list_files",
    "delete_file",
    "list_tasks",
    "estimate_cost",
    "check_balance",
    "upscale_image",
    "remove_background",
]


class Session:
    """A connected MCP client plus the checks every tool result must pass."""

    def __init__(self, client: Client, secret: str) -> None:
        self.client = client
        self.secret = secret
        self._tools: dict[str, Tool] | None = None

    async def tools(self) -> dict[str, Tool]:
        if self._tools is None:
            self._tools = {tool.name: tool for tool in (await self.client.list_tools()).tools}
        return self._tools

    async def call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        progress_callback: Any = None,
        seconds: float = CALL_SECONDS,
    ) -> CallToolResult:
        """Call a tool; fail if the result leaks the key or breaks its declared outputSchema."""
        with anyio.fail_after(seconds):
            result = await self.client.call_tool(name, arguments or {}, progress_callback=progress_callback)
        assert self.secret not in result.model_dump_json(), f"{name} leaked the API key in its result"
        assert_valid_result(name, result, (await self.tools())[name])
        return result

    @staticmethod
    def text(result: CallToolResult) -> str:
        return "\n".join(block.text for block in result.content if isinstance(block, TextContent))

    @staticmethod
    def images(result: CallToolResult) -> list[ImageContent]:
        return [block for block in result.content if isinstance(block, ImageContent)]

    @staticmethod
    def links(result: CallToolResult) -> list[ResourceLink]:
        return [block for block in result.content if isinstance(block, ResourceLink)]

    @staticmethod
    def data(result: CallToolResult) -> dict[str, Any]:
        assert result.structured_content is not None, "no structuredContent"
        return result.structured_content

    @staticmethod
    def error(result: CallToolResult) -> dict[str, Any]:
        """An error result's facts: category, message, retryable, next_step, charged, ..."""
        assert result.is_error, "not an error result"
        assert result.structured_content is not None, "no structuredContent"
        error: dict[str, Any] = result.structured_content["error"]
        return error


class CheckedClient(Client):
    """The SDK's client for tests that drive it directly: every tool result it receives is checked as a strict
    client checks it (`assert_valid_result`), error results included, which the SDK's own check skips."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> CallToolResult:
        result = await super().call_tool(name, arguments, *args, **kwargs)
        tools = {tool.name: tool for tool in (await self.list_tools()).tools}
        assert_valid_result(name, result, tools[name])
        return result


def assert_valid_result(name: str, result: CallToolResult, tool: Tool) -> None:
    """What a strict client (the TypeScript SDK's ajv) checks of every result, errors included: structuredContent
    present and valid against the tool's outputSchema; an error's facts in one shape, its text leading with them."""
    schema = tool.output_schema
    assert schema is not None, f"{name} declares no outputSchema"
    assert result.structured_content is not None, f"{name} sent no structuredContent"
    jsonschema.Draft202012Validator(schema).validate(result.structured_content)
    if result.is_error:
        error = result.structured_content.get("error")
        assert isinstance(error, dict), f"{name}: an error result without its `error` object"
        ErrorOut.model_validate(error)
        first = result.content[0]
        assert isinstance(first, TextContent) and first.text.startswith(f"Error ({error['category']})"), (
            f"{name}: an error whose text does not lead with its category"
        )


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture(autouse=True)
def api_key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: the API key appears in no log record, at any level."""
    caplog.set_level(logging.DEBUG)
    yield
    leaked = [r for r in caplog.records if API_KEY in r.getMessage() or API_KEY in (r.exc_text or "")]
    assert not leaked, f"the API key was logged: {leaked[0].name}: {leaked[0].getMessage()[:200]}"
    assert API_KEY not in caplog.text


@pytest.fixture
def settings_defaults() -> dict[str, Any]:
    """What `settings_for` starts from besides the sandbox and the test's folders; a conftest may override it."""
    return {"wait_seconds": WAIT_SECONDS, "preview_max_bytes": 200_000}


@pytest.fixture
def settings_for(sandbox: SandboxServer, tmp_path: Path, settings_defaults: dict[str, Any]) -> Callable[..., Settings]:
    """Settings pointing at the sandbox, with test-sized waits; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_key": SecretStr(API_KEY),
            "base_url": sandbox.base_url,
            "files_base_url": sandbox.base_url,
            "output_dir": tmp_path / "images",
            "state_dir": tmp_path / "state",
            **settings_defaults,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for()


@pytest.fixture
def deps(settings: Settings, clock: Clock) -> Deps:
    return build_deps(settings, allowed_dirs=None, clock=clock)


@pytest.fixture
def server(deps: Deps) -> MCPServer[Deps]:
    return build_server(deps)


@pytest.fixture
def server_for(settings_for: Callable[..., Settings], clock: Clock) -> Callable[..., MCPServer[Deps]]:
    """A server over the sandbox, on the test's clock: `server_for(allowed_dirs=[...], wait_seconds=0.3)`."""

    def make(*, allowed_dirs: Sequence[Path] | None = None, **overrides: Any) -> MCPServer[Deps]:
        return build_server(build_deps(settings_for(**overrides), allowed_dirs=allowed_dirs, clock=clock))

    return make


@pytest.fixture
def connect() -> Callable[..., AbstractAsyncContextManager[Session]]:
    """`async with connect(server, mode="legacy") as mcp:` for a server other than the default one."""

    @asynccontextmanager
    async def open_session(server: MCPServer[Deps], **client_options: Any) -> AsyncIterator[Session]:
        async with Client(server, **client_options) as client:
            yield Session(client, API_KEY)

    return open_session


@pytest.fixture
async def mcp(
    server: MCPServer[Deps], connect: Callable[..., AbstractAsyncContextManager[Session]], anyio_backend: str
) -> AsyncIterator[Session]:
    """A client connected in memory to the default server."""
    async with connect(server) as session:
        yield session


@pytest.fixture
def make_png(tmp_path: Path) -> Callable[..., Path]:
    """Write a small PNG: `make_png("refs/a.png", color=(255, 0, 0))` -> its absolute path."""

    def make(name: str = "reference.png", *, size: tuple[int, int] = (64, 48), color: Any = (200, 30, 30)) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.new("RGB", size, color).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue())
        return path

    return make


async def saved_images(directory: Path, count: int = 1, seconds: float = 10.0) -> list[Path]:
    """The images a background follower saves, waited for (bounded) as they appear."""
    # The files appear on disk with no event to wait on: look again briefly, bounded.
    with anyio.fail_after(seconds):
        while len(found := sorted(directory.glob("*.png"))) < count:  # noqa: ASYNC110, ASYNC240
            await anyio.sleep(0.02)
    return found


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) for something another thread or process makes true; for the sandbox's own timing."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.02)
