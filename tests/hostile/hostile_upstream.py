"""A hostile Evolink stand-in of our own: served by uvicorn on loopback, every answer scripted by the test.

It plays a compromised proxy, a broken CDN or a wrong EVOLINK_BASE_URL: it echoes the key it is sent, names
internal addresses as results, redirects, sends huge or trickled bodies. Everything it sends is bounded: a huge
body is generated lazily and stops when the client goes away; a trickle stops after `TRICKLE_LIMIT` seconds.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TASK_ID = "task-unified-1757165031-uyujaw3d"
TRICKLE_LIMIT = 120.0  # a trickle never outlives this, whoever stops listening
Handler = Callable[[Request], Awaitable[Response]]


def png_bytes(width: int = 16, height: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 60, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def key_of(request: Request) -> str:
    """The API key the client sent (what a hostile upstream would echo back)."""
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def task_body(status: str = "completed", **fields: Any) -> dict[str, Any]:
    return {
        "id": TASK_ID,
        "object": "image.generation.task",
        "model": "gemini-3.1-flash-image-preview",
        "created": 1757165031,
        "status": status,
        "progress": 100 if status in ("completed", "failed") else 10,
        "task_info": {"can_cancel": False, "estimated_time": 0},
        "usage": {"billing_rule": "per_call", "credits_reserved": 1.6, "user_group": "default"},
        **fields,
    }


class Huge:
    """A handler answering `total` bytes (no Content-Length), generated as sent, nothing this size ever held;
    `sent` counts what went out before the client went away (checked before every chunk)."""

    def __init__(self, total: int, *, status: int = 200, media_type: str = "application/json") -> None:
        self.total, self.status, self.media_type, self.sent = total, status, media_type, 0

    def __call__(self, request: Request) -> Response:
        chunk = b" " * 65536

        async def body() -> AsyncIterator[bytes]:
            while self.sent < self.total and not await request.is_disconnected():
                self.sent += len(chunk)
                yield chunk

        return StreamingResponse(body(), status_code=self.status, media_type=self.media_type)


def trickle(data: bytes, *, every: float, piece: int = 1024, media_type: str = "image/png") -> Response:
    """`data` sent `piece` bytes every `every` seconds (the whole Content-Length declared up front)."""

    async def body() -> AsyncIterator[bytes]:
        with anyio.move_on_after(TRICKLE_LIMIT):
            for start in range(0, len(data), piece):
                yield data[start : start + piece]
                await anyio.sleep(every)

    return StreamingResponse(body(), media_type=media_type, headers={"content-length": str(len(data))})


class Hostile:
    """The app and its script: `hostile.on("GET /v1/tasks/", handler)`; `hostile.seen` lists what reached it."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.seen: list[str] = []
        self.base_url = ""
        self.app = Starlette(routes=[Route("/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE"])])

    def reset(self) -> None:
        self.handlers.clear()
        self.seen.clear()

    def on(self, where: str, handler: Handler) -> None:
        """Answer requests whose "METHOD /path" starts with `where` with `handler`."""
        self.handlers[where] = handler

    def answer(self, where: str, response: Callable[[Request], Response]) -> None:
        async def handler(request: Request) -> Response:
            return response(request)

        self.on(where, handler)

    async def _dispatch(self, request: Request) -> Response:
        line = f"{request.method} {request.url.path}"
        self.seen.append(f"{line}?{request.url.query}" if request.url.query else line)
        for where, handler in sorted(self.handlers.items(), key=lambda item: -len(item[0])):
            if line.startswith(where):
                return await handler(request)
        if line.startswith("POST /v1/images/generations"):
            return JSONResponse(task_body("pending"))
        return JSONResponse({"error": {"code": 404, "message": "not scripted", "type": "not_found_error"}}, 404)


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", *, certificate: tuple[Path, Path] | None = None) -> Iterator[str]:
    """`app` served by uvicorn on `host` (any free port) on a background thread: its base URL."""
    import uvicorn

    ssl = {"ssl_certfile": str(certificate[0]), "ssl_keyfile": str(certificate[1])} if certificate else {}
    config = uvicorn.Config(
        app, host=host, port=0, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=1, **ssl
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hostile-upstream", daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - started > 15:
            raise RuntimeError(f"the hostile upstream did not start on {host}")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if certificate else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
