"""Fixtures for the hostile-upstream tests: the hostile server, an internal service it points at, MCP sessions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hostile_support import API_KEY, Connected, Internal, leaked
from hostile_upstream import Hostile, png_bytes, serving
from mcp import Client
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evolink_mcp.app import build_deps, build_server
from evolink_mcp.evolink import RetryPolicy
from evolink_mcp.settings import Settings
from mcp_session import Session

QUICK_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, deadline=10.0)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[Hostile]:
    hostile = Hostile()
    with serving(hostile.app) as base_url:
        hostile.base_url = base_url
        yield hostile


@pytest.fixture
def hostile(hostile_server: Hostile) -> Hostile:
    """The hostile upstream at 127.0.0.1 (the configured EVOLINK_BASE_URL), its script and log cleared."""
    hostile_server.reset()
    return hostile_server


@pytest.fixture(scope="module")
def internal_server() -> Iterator[Internal]:
    hits: list[str] = []

    async def secret(request: Request) -> Response:
        hits.append(request.url.path)
        return Response(png_bytes(), media_type="image/png")  # a real image: only the address check can refuse it

    with serving(Starlette(routes=[Route("/{path:path}", secret)]), "127.0.0.2") as base_url:
        yield Internal(base_url, hits)


@pytest.fixture
def internal(internal_server: Internal) -> Internal:
    internal_server.hits.clear()
    return internal_server


@pytest.fixture(autouse=True)
def no_part_of_the_key_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert not leaked(record.getMessage()) and not leaked(record.exc_text or ""), f"logged: {record.getMessage()}"


@pytest.fixture
def connect(hostile: Hostile, tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[Connected]]:
    """`async with connect(wait_seconds=...) as c:` an MCP session whose EVOLINK_BASE_URL is the hostile upstream."""

    @asynccontextmanager
    async def open_session(**overrides: Any) -> AsyncIterator[Connected]:
        values: dict[str, Any] = {
            "api_key": SecretStr(API_KEY),
            "base_url": hostile.base_url,
            "files_base_url": hostile.base_url,
            "output_dir": tmp_path / "images",
            "state_dir": tmp_path / "state",
            "wait_seconds": 5.0,
            "preview_max_bytes": 20_000,
            **overrides,
        }
        deps = build_deps(Settings(**values), allowed_dirs=None, retry=QUICK_RETRY)
        async with Client(build_server(deps)) as client:
            yield Connected(Session(client, API_KEY), deps)

    return open_session
