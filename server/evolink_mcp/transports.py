"""Serving the MCP server: stdio, or SSE + streamable HTTP on one Starlette app with auth and host checks."""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import io
import ipaddress
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from .settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from .journal import Journal
    from .tools import Deps

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024  # room for a base64 image argument, no more
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
UNAUTHENTICATED_PATHS = ("/healthz", "/readyz")
READY_TIMEOUT = 2.0  # /readyz: a journal slower than this to answer is as good as down, for a load balancer
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
    """Requires `Authorization: Bearer <token>` on every HTTP request except the health checks; any of `tokens`
    (the new and the old one while rotating)."""

    def __init__(self, app: ASGIApp, tokens: tuple[str, ...]) -> None:
        self.app = app
        self._expected = tuple(t.encode() for t in tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNAUTHENTICATED_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), b"")
        scheme, _, credentials = given.partition(b" ")
        # Each token compared in full, whichever matches: the time taken says nothing about which one did.
        matches = [hmac.compare_digest(credentials.strip(), token) for token in self._expected]
        if scheme.lower() == b"bearer" and any(matches):
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


class TenantKeyMiddleware:
    """EVOLINK_TENANT_KEYS=header: every request but the health check carries its caller's own Evolink key (else
    401), and is that key's tenant's. The tenant is the request's authenticated user, so the SDK's transports bind
    each session to the tenant that opened it: another key's request on it (an SSE post, a streamable HTTP call)
    is answered as if the session did not exist."""

    def __init__(self, app: ASGIApp, tenant_id: Callable[[str], str]) -> None:
        self.app = app
        self._tenant_id = tenant_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        from .tenants import KEY_HEADER, usable_key

        if scope["type"] != "http" or scope.get("path") in UNAUTHENTICATED_PATHS:
            await self.app(scope, receive, send)
            return
        key = _header(scope, KEY_HEADER.lower().encode()).strip()
        if not usable_key(key):
            body = json.dumps(
                {
                    "error": "evolink_key_required",
                    "message": f"Send your own Evolink API key in the {KEY_HEADER} header (printable ASCII).",
                }
            ).encode()
            await _refuse(send, 401, body, (b"content-type", b"application/json"))
            return
        tenant = self._tenant_id(key)  # never the key itself: the user object is the SDK's to keep
        scope["user"] = AuthenticatedUser(AccessToken(token=tenant, client_id=tenant, scopes=[]))
        await self.app(scope, receive, send)


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
    """One ASGI app serving streamable HTTP at /mcp, SSE at /sse (+ /messages/), /healthz (liveness) and /readyz
    (readiness: the journal answers)."""
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from . import __version__
    from .app import build_server, process_resources
    from .journal import JournalError

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
        # Replicas: no session state, so any replica answers any request; a call's progress still streams on
        # the SSE answer of its own POST.
        stateless_http=settings.stateless_http,
    )
    sse = server.sse_app(transport_security=security, host=host, max_request_body_size=MAX_REQUEST_BODY_BYTES)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "server": "evolink-mcp", "version": __version__, "sandbox": settings.sandbox}
        )

    async def readyz(_: Request) -> JSONResponse:
        journal = deps.service.journal
        try:
            with anyio.fail_after(READY_TIMEOUT):
                await journal.ping()
        except (JournalError, TimeoutError) as exc:
            why = exc.message if isinstance(exc, JournalError) else f"no answer within {READY_TIMEOUT:g} s"
            return JSONResponse({"status": "unavailable", "journal": journal.location, "error": why}, status_code=503)
        return JSONResponse({"status": "ready", "journal": journal.location})

    tenants = None
    if settings.multi_tenant:
        from .tenants import Tenants

        tenants = Tenants(deps)
        server.middleware.insert(0, tenants.middleware)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Mounted sub-apps' lifespans do not run: the streamable-HTTP session manager is started here.
        async with (
            process_resources(deps),
            tenants.running() if tenants is not None else nullcontext(),
            server.session_manager.run(),
        ):
            yield

    routes = [Route("/healthz", healthz), Route("/readyz", readyz), *streamable.routes, *sse.routes]
    app: ASGIApp = Starlette(routes=routes, lifespan=lifespan)
    if tenants is not None:
        app = TenantKeyMiddleware(app, tenants.tenant_id)
    authenticated = BearerAuthMiddleware(app, settings.mcp_tokens) if settings.mcp_tokens else app
    return HostCheckMiddleware(authenticated, allowed_hosts(host, port, settings.mcp_allowed_hosts))


def check_http_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve a non-loopback interface without a token; with per-user keys, any interface."""
    has_token = bool(settings.mcp_tokens)
    if settings.multi_tenant and not has_token:
        raise SystemExit(
            "EVOLINK_TENANT_KEYS=header needs EVOLINK_MCP_TOKEN (or --token): per-user keys alone would let anyone "
            "who can reach the server use it with any key."
        )
    if not is_loopback(host) and not has_token:
        raise SystemExit(
            f"Refusing to serve on {host} without a token: set EVOLINK_MCP_TOKEN (or --token), or serve on 127.0.0.1."
        )


class ReadDeadlines:
    """Closes a connection whose request has not fully arrived, headers and body, `seconds` after the connection
    opened or its previous response ended. uvicorn has no such timeout: half-sent requests would hold their
    connections (and file descriptors) for ever.

    Public APIs only: the protocol class uvicorn is given (its `http` option) sees connections open and close
    (asyncio.Protocol's own methods); the ASGI app sees a request start, its body end and its response end. The
    two meet on the peer address, which is the ASGI scope's "client" while uvicorn reads no proxy headers."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timers: dict[tuple[str, int], _Deadline] = {}

    def protocol(self, base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
        """`base` (uvicorn's HTTP protocol class) with every connection's deadline armed as it opens."""
        deadlines = self

        class WithReadDeadline(base):  # type: ignore[valid-type,misc]  # a class chosen at run time
            evolink_peer: tuple[str, int] | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                self.evolink_peer = deadlines.opened(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                deadlines.lost(self.evolink_peer)
                super().connection_lost(exc)

        return WithReadDeadline

    def opened(self, transport: asyncio.BaseTransport) -> tuple[str, int] | None:
        peer = transport.get_extra_info("peername")
        if not isinstance(peer, tuple) or len(peer) < 2:
            return None  # not TCP: nothing here serves other sockets
        key = (str(peer[0]), int(peer[1]))
        self._timers[key] = _Deadline(transport, self.seconds)
        return key

    def lost(self, key: tuple[str, int] | None) -> None:
        if key is not None and (deadline := self._timers.pop(key, None)) is not None:
            deadline.stop()

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """`app` telling each connection's deadline when its request has arrived and when its answer ended."""

        async def with_deadline(scope: Scope, receive: Receive, send: Send) -> None:
            client = scope.get("client")
            deadline = self._timers.get(tuple(client)) if scope["type"] == "http" and client else None
            if deadline is None:
                await app(scope, receive, send)
                return
            if not _has_body(scope):
                deadline.stop()

            async def receive_body() -> Message:
                message = await receive()
                if message["type"] == "http.request" and not message.get("more_body", False):
                    deadline.stop()
                return message

            async def send_answer(message: Message) -> None:
                if message["type"] == "http.response.start":
                    deadline.stop()  # answering: what is left of the body is the app's to read or not
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    deadline.start()  # the next request on this connection has `seconds` to arrive

            await app(scope, receive_body, send_answer)

        return with_deadline


class _Deadline:
    def __init__(self, transport: asyncio.BaseTransport, seconds: float) -> None:
        self._transport, self._seconds = transport, seconds
        self._timer: asyncio.TimerHandle | None = None
        self.start()

    def start(self) -> None:
        self.stop()
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._transport.close)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return bool(_header(scope, b"transfer-encoding")) or (bool(length) and length.strip() != "0")


async def open_journal_or_exit(journal: Journal) -> None:
    """Open the journal before serving: one line on stderr and a non-zero exit if it cannot be (PostgreSQL
    unreachable), not a traceback from inside the first session."""
    from .journal import JournalError

    try:
        await journal.open()
    except JournalError as exc:
        raise SystemExit(f"evolink-mcp: cannot start: {exc.message}") from None


async def serve_stdio(server: MCPServer[Any], journal: Journal | None = None) -> None:
    """The SDK's own stdio transport, ended quietly when the client closes its end of the pipe mid-answer
    (the SDK lets that BrokenPipeError out of its writer task; reported with the parse errors:
    docs/upstream/mcp-python-sdk-stdio-parse-errors.md). `journal`, if given, is opened first."""
    if journal is not None:
        await open_journal_or_exit(journal)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # While serving, fd 1 writes to stderr; a handler's print() left in stdout's buffer would reach the wire
        # at exit, once the SDK has pointed fd 1 back at it. Flushed line by line, prints reach stderr at once.
        sys.stdout.reconfigure(line_buffering=True)
    try:
        await server.run_stdio_async()
    except Exception as exc:
        if not _only_client_gone(exc):
            raise
        log.debug("stdio: the client closed its end mid-answer")


def _only_client_gone(exc: BaseException) -> bool:
    """`exc` is, or groups nothing but, the errors of writing to a pipe whose reader has gone."""
    inner = getattr(exc, "exceptions", None)  # an exception group (the backport's too, on Python 3.10)
    if inner is not None:
        return all(_only_client_gone(e) for e in inner)
    return isinstance(exc, BrokenPipeError | ConnectionResetError)


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
    await open_journal_or_exit(deps.service.journal)  # before listening: a replica without it must not look alive
    from uvicorn.protocols.http.auto import AutoHTTPProtocol  # what http="auto" picks: httptools, else h11

    deadlines = ReadDeadlines(settings.mcp_read_seconds)
    config = uvicorn.Config(
        deadlines.middleware(build_http_app(deps, host=host, port=port)),
        host=host,
        port=port,
        http=deadlines.protocol(AutoHTTPProtocol),
        proxy_headers=False,  # the ASGI "client" stays the peer address ReadDeadlines keys on
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        limit_concurrency=MAX_CONNECTIONS,
    )
    parser = AutoHTTPProtocol.__name__.removesuffix("Protocol")
    log.info(
        "serving MCP on http://%s:%s (streamable HTTP /mcp, SSE /sse; event loop %s, HTTP parser %s); journal %s%s",
        host,
        port,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
        parser,
        deps.service.journal.location,
        "; streamable HTTP without sessions (any replica answers any request)" if settings.stateless_http else "",
    )
    if is_loopback(host) and not settings.mcp_tokens:
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
