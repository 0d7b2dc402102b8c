"""Fixtures for the Evolink client: a client pointed at the session's sandbox, and a port nobody serves."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from client_support import API_KEY, client_for

from evolink_mcp.evolink import EvolinkClient
from evolink_mcp.sandbox import SandboxServer


@pytest.fixture(autouse=True)
def leave_the_sandbox_as_found(sandbox_server: SandboxServer) -> Iterator[None]:
    """These tests set a key and limits on the shared sandbox: undo that for whoever comes next."""
    yield
    sandbox_server.state.reset()


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[EvolinkClient]:
    """A client for the sandbox (which now accepts only API_KEY), with a fast 3-attempt retry policy."""
    sandbox.state.configure(api_key=API_KEY)
    async with client_for(sandbox.base_url) as evolink:
        yield evolink


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
