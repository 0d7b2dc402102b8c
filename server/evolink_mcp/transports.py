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


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="evolink-mcp"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def transport_security(host: str, port: int, extra_hosts: tuple[str, ...] = ()) -> Any:
    """DNS-rebinding protection: the Host and Origin headers must name this server."""
    from mcp.server.transport_security import TransportSecuritySettings

    names = [*LOOPBACK_NAMES, *extra_hosts]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        names.append(host)
    allowed_hosts = [f"{name}:{port}" for name in names] + list(names)
    allowed_origins = [f"{scheme}://{h}" for scheme in ("http", "https") for h in allowed_hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=allowed_origins
    )


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

    security = transport_security(host, port, settings.mcp_allowed_hosts)
    streamable = server.streamable_http_app(
        transport_security=security, host=host, max_request_body_size=MAX_REQUEST_BODY_BYTES
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
    return BearerAuthMiddleware(app, token) if token else app


def check_http_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve a non-loopback interface without a token."""
    if not is_loopback(host) and not (settings.mcp_token and settings.mcp_token.get_secret_value()):
        raise SystemExit(
            f"Refusing to serve on {host} without a token: set EVOLINK_MCP_TOKEN (or --token), or serve on 127.0.0.1."
        )


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
        app, host=host, port=port, log_config=None, log_level=settings.log_level.lower(), access_log=False
    )
    config.load()
    log.info(
        "serving MCP on http://%s:%s (streamable HTTP /mcp, SSE /sse; event loop %s, HTTP parser %s)",
        host,
        port,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
        config.http_protocol_class.__name__.removesuffix("Protocol"),
    )
    if host in ("0.0.0.0", "::") and not settings.mcp_allowed_hosts:
        log.warning(
            "accepting Host headers for loopback names only; set EVOLINK_MCP_ALLOWED_HOSTS to the names "
            "clients use to reach this server"
        )
    await uvicorn.Server(config).serve()
