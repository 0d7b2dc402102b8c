"""HTTPS upstreams: certificates are checked, and SSL_CERT_FILE names another bundle, as the README promises."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from client_support import client_for, generation

from evolink_mcp.evolink import APIConnectionError
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def https_sandbox(certificate: tuple[Path, Path], sandbox: SandboxServer) -> AsyncIterator[str]:
    """The sandbox behind a TLS terminator on loopback: its https:// base URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    origin = urlsplit(sandbox.base_url)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        origin_reader, origin_writer = await asyncio.open_connection(origin.hostname, origin.port)
        await asyncio.gather(pipe(reader, origin_writer), pipe(origin_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    async with server:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_an_upstream_certificate_from_ssl_cert_file_is_trusted(
    https_sandbox: str, certificate: tuple[Path, Path], sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))

    async with client_for(https_sandbox) as client:
        task = await client.submit_generation(generation())
        polled = await client.get_task(task.id)

    assert polled.id == task.id
    assert len(sandbox.state.requests()) == 2


async def test_an_untrusted_upstream_certificate_is_refused_before_anything_is_sent(
    https_sandbox: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async with client_for(https_sandbox) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.submit_generation(generation())

    assert caught.value.sent is False  # refused during the handshake: no request, no charge
    assert "could not connect" in caught.value.message
    assert sandbox.state.requests() == []
