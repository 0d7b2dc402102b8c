"""A hostile or broken Evolink stand-in on 127.0.0.1 for result handling: it answers every submission with one task
whose result URLs, model and images the test sets, and counts the downloads (and how many run at once).

Served by uvicorn on a thread, like the sandbox; `results`, `images`, `failing` and `model` can change mid-test.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections import Counter
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TASK_ID = "task-unified-1790000000-hostile1"
CREATED = 1790000000


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of any size, a few KB even at 20000x20000: what a decompression bomb looks like."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


class HostileUpstream:
    """The stand-in's script and what it saw. `results`: URL paths (e.g. "/r/1.png") the task answers;
    `images`: bytes per path (a missing one is a small PNG); `failing`: paths that answer 500."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        """A fresh script and counts; the server keeps running."""
        self.model = "gpt-image-1"
        self.results: list[str] = ["/r/1.png"]
        self.images: dict[str, bytes] = {}
        self.failing: set[str] = set()
        self.downloads: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.download_seconds = 0.0  # how long each download answer takes: lets concurrent ones overlap

    def task(self) -> dict[str, Any]:
        return {
            "id": TASK_ID,
            "created": CREATED,
            "model": self.model,
            "object": "image.generation.task",
            "status": "completed",
            "progress": 100,
            "type": "image",
            "usage": {"credits_reserved": 1.0},
            "results": [self.base_url + path for path in self.results],
        }

    async def submit(self, request: Request) -> Response:
        return JSONResponse(self.task())

    async def get_task(self, request: Request) -> Response:
        return JSONResponse(self.task())

    async def result(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            self.downloads[path] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.download_seconds:
                await anyio.sleep(self.download_seconds)
            if path in self.failing:
                return Response(b"upstream broke", status_code=500, media_type="text/plain")
            return Response(self.images.get(path) or bilevel_png(8, 8), media_type="image/png")
        finally:
            with self._lock:
                self.in_flight -= 1

    def start(self) -> HostileUpstream:
        app = Starlette(
            routes=[
                Route("/v1/images/generations", self.submit, methods=["POST"]),
                Route("/v1/tasks/{task_id}", self.get_task),
                Route("/r/{name}", self.result),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="hostile-upstream", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:  # bounded: uvicorn starts in milliseconds
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the hostile upstream did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(15)
