"""Proxies come from the environment, as the README promises: HTTP(S)_PROXY is used and NO_PROXY respected."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from client_support import client_for, generation, wait_until_terminal

from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardProxy:
    """A minimal HTTP forward proxy on loopback: relays each absolute-form request to its origin (one request per
    connection) and remembers what it relayed."""

    def __init__(self) -> None:
        self.relayed: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ")
        url = urlsplit(target)
        self.relayed.append(f"{method} {url.path}")
        headers = [line for line in lines if line and not line.lower().startswith(("connection:", "proxy-"))]
        length = next((int(line.split(":")[1]) for line in headers if line.lower().startswith("content-length:")), 0)
        body = await reader.readexactly(length)
        origin_reader, origin_writer = await asyncio.open_connection(url.hostname, url.port)
        path = url.path + (f"?{url.query}" if url.query else "")
        origin_writer.write(
            "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""]).encode() + body
        )
        writer.write(await origin_reader.read())  # the whole answer: the origin closes after it
        await writer.drain()
        origin_writer.close()
        writer.close()


@pytest.fixture
async def proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[ForwardProxy, str]]:
    """(the proxy, its URL); the environment starts with no proxy settings at all."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    relay = ForwardProxy()
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        yield relay, f"http://127.0.0.1:{port}"


async def test_http_proxy_carries_api_calls_and_downloads(
    proxy: tuple[ForwardProxy, str], sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, proxy_url = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)

    async with client_for(sandbox.base_url) as client:
        task = await wait_until_terminal(client, (await client.submit_generation(generation())).id)
        await client.download(task.image_urls[0], io.BytesIO(), max_bytes=10 * 1024 * 1024)

    assert relay.relayed[0] == "POST /v1/images/generations"
    assert f"GET /v1/tasks/{task.id}" in relay.relayed
    assert relay.relayed[-1] == f"GET {urlsplit(task.image_urls[0]).path}"
    assert len(relay.relayed) == len(sandbox.state.requests())  # every request went through the proxy


async def test_no_proxy_sends_listed_hosts_direct(
    proxy: tuple[ForwardProxy, str], sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, proxy_url = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async with client_for(sandbox.base_url) as client:
        await wait_until_terminal(client, (await client.submit_generation(generation())).id)

    assert relay.relayed == []
    assert sandbox.state.requests("generations")
