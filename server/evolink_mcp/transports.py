"""Serving the MCP server: stdio, or SSE + streamable HTTP on one Starlette app with auth and host checks."""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import ipaddress
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .settings import Settings

if TYPE_CHECKING:
    from .tools import Deps

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024  # room for a base64 image argument, no more
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
UNAUTHENTICATED_PATHS = ("/healthz",)
# Connections served at once (a long SSE stream holds one); beyond it, requests get 503. Well below the usual
# 1024 open files, so that accepting connections never runs out of descriptors.
MAX_CONNECTIONS = 768


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _refuse(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    start = [(b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name), "")


class BearerAuthMiddleware:
    """Requires `Authorization: Bearer <token>` on every HTTP request except the health check."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNAUTHENTICATED_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), b"")
        scheme, _, credentials = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": "unauthorized", "message": "Send Authorization: Bearer <EVOLINK_MCP_TOKEN>."}
        ).encode()
        await _refuse(
            send,
            401,
            body,
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Bearer realm="evolink-mcp"'),
        )


def allowed_hosts(host: str, port: int, extra_hosts: tuple[str, ...] = ()) -> set[str]:
    """The Host header values that name this server: loopback names, the bound address, configured names;
    each with and without the port, lowercase."""
    names = [*LOOPBACK_NAMES, *extra_hosts]
    if host not in ("0.0.0.0", "::"):
        names.append(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return {n.lower() for name in names for n in (name, f"{name}:{port}")}


class HostCheckMiddleware:
    """DNS-rebinding protection on every path, /healthz included: the Host header must name this server (else
    421) and an Origin header, when sent, too (else 403). Host names compare case-insensitively."""

    def __init__(self, app: ASGIApp, hosts: set[str]) -> None:
        self.app = app
        self._hosts = frozenset(hosts)
        self._origins = frozenset(f"{scheme}://{h}" for scheme in ("http", "https") for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if _header(scope, b"host").lower() not in self._hosts:
                await _refuse(send, 421, b"Invalid Host header", (b"content-type", b"text/plain"))
                return
            origin = _header(scope, b"origin").lower()
            if origin and origin not in self._origins:
                await _refuse(send, 403, b"Invalid Origin header", (b"content-type", b"text/plain"))
                return
        await self.app(scope, receive, send)


def build_http_app(deps: Deps, *, host: str, port: int) -> ASGIApp:
    """One ASGI app serving streamable HTTP at /mcp, SSE at /sse (+ /messages/), and /healthz."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from . import __version__
    from .app import build_server, process_resources

    settings = deps.settings
    server = build_server(deps, manage_process_resources=False)

    from mcp.server.transport_security import TransportSecuritySettings

    # HostCheckMiddleware checks Host and Origin for every path; the SDK's own check would repeat it for two.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    streamable = server.streamable_http_app(
        transport_security=security,
        host=host,
        max_request_body_size=MAX_REQUEST_BODY_BYTES,
        max_sessions=settings.mcp_max_sessions,
        session_idle_timeout=settings.mcp_session_idle_seconds,
    )
    sse = server.sse_app(transport_security=security, host=host, max_request_body_size=MAX_REQUEST_BODY_BYTES)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "server": "evolink-mcp", "version": __version__, "sandbox": settings.sandbox}
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Mounted sub-apps' lifespans do not run: the streamable-HTTP session manager is started here.
        async with process_resources(deps), server.session_manager.run():
            yield

    app = Starlette(routes=[Route("/healthz", healthz), *streamable.routes, *sse.routes], lifespan=lifespan)
    token = settings.mcp_token.get_secret_value() if settings.mcp_token else ""
    authenticated = BearerAuthMiddleware(app, token) if token else app
    return HostCheckMiddleware(authenticated, allowed_hosts(host, port, settings.mcp_allowed_hosts))


def check_http_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve a non-loopback interface without a token."""
    if not is_loopback(host) and not (settings.mcp_token and settings.mcp_token.get_secret_value()):
        raise SystemExit(
            f"Refusing to serve on {host} without a token: set EVOLINK_MCP_TOKEN (or --token), or serve on 127.0.0.1."
        )


def with_read_deadline(protocol: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """`protocol` (uvicorn's HTTP protocol class) closing a connection whose request has not fully arrived,
    headers and body, `seconds` after the connection opened or its previous response ended. uvicorn has no
    such timeout: half-sent requests would hold their connections (and file descriptors) for ever."""

    class ReadDeadline(protocol):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

        def _expire(self) -> None:
            cycle = self.cycle  # the request being served; None or answered: none has fully arrived since
            if cycle is None or cycle.response_complete or cycle.more_body:
                self.transport.close()

    return ReadDeadline


def http_loop_options() -> dict[str, Any]:
    """anyio's options for the HTTP transports: uvloop where it is installed (everywhere but Windows). With many
    sessions the event loop is the busiest part of the server, and uvloop's costs less per step."""
    if sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None:
        return {"use_uvloop": True}
    return {}


async def serve_http(deps: Deps, *, host: str, port: int) -> None:
    """Serve SSE and streamable HTTP until interrupted."""
    import uvicorn

    settings = deps.settings
    check_http_exposure(settings, host)
    app = build_http_app(deps, host=host, port=port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        limit_concurrency=MAX_CONNECTIONS,
    )
    config.load()
    parser = config.http_protocol_class.__name__.removesuffix("Protocol")
    config.http_protocol_class = with_read_deadline(config.http_protocol_class, settings.mcp_read_seconds)
    log.info(
        "serving MCP on http://%s:%s (streamable HTTP /mcp, SSE /sse; event loop %s, HTTP parser %s)",
        host,
        port,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
        parser,
    )
    if is_loopback(host) and not (settings.mcp_token and settings.mcp_token.get_secret_value()):
        log.warning(
            "serving without a token on loopback: anyone on this machine can call it (and spend credits); "
            "set EVOLINK_MCP_TOKEN to require one"
        )
    if host in ("0.0.0.0", "::") and not settings.mcp_allowed_hosts:
        log.warning(
            "accepting Host headers for loopback names only; set EVOLINK_MCP_ALLOWED_HOSTS to the names "
            "clients use to reach this server"
        )
    await uvicorn.Server(config).serve()
