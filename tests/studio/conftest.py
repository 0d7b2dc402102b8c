"""The studio (MCP Apps): the fixtures of tests/mcp_session.py, plus a client that negotiated MCP Apps."""

from collections.abc import AsyncIterator

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from evolink_mcp.app import build_server
from evolink_mcp.tools import Deps
from mcp_session import API_KEY, Session

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


@pytest.fixture
async def apps_mcp(deps: Deps, anyio_backend: str) -> AsyncIterator[Session]:
    """A client connected in memory that advertised MCP Apps support, as Claude or VS Code do."""
    async with Client(build_server(deps), extensions=[APPS]) as client:
        yield Session(client, API_KEY)
