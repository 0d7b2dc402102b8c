"""Hostile-upstream memory: what a broken or malicious Evolink stand-in, or abandoned HTTP sessions, cost the server.

Three figures, each the server process's own memory (VmHWM reset just before, from /proc):
- a task poll answered with a 400 MB JSON body (check_task over stdio): answers are read streaming and capped;
- a result download answered 500 with a 300 MB body (generate_image over stdio): error bodies are cut;
- 1,000 streamable-HTTP sessions opened and abandoned: RSS while they are held (the session cap bounds how many)
  and after the idle expiry has dropped them.
The reference for the first two is the body's size: what reading it whole would cost at the very least.
The upstream is a tiny threaded HTTP server in this process that streams its bodies in 1 MB chunks.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from common import (
    Row,
    StdioSession,
    child_env,
    evolink_argv,
    free_port,
    memory_kib,
    mib,
    ratio,
    reset_peak_rss,
    stop,
    wait_until_answering,
)
from concurrency import TOKEN, HttpSession

MB = 1024 * 1024
POLL_BODY = 400 * MB
ERROR_BODY = 300 * MB
TARGET = 32 * MB  # as for uploads: a bounded read costs a few MB whatever the body's size
SESSIONS = 1000
IDLE_SECONDS = 5


class HostileUpstream(BaseHTTPRequestHandler):
    """Answers polls with a huge JSON body and result downloads with a huge 500 body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _stream(self, status: int, content_type: str, head: bytes, size: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * MB
        try:
            self.wfile.write(head)
            for _ in range((size - len(head)) // MB):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: what the cap is for

    def do_GET(self) -> None:
        if self.path.startswith("/v1/tasks/"):
            head = b'{"id": "task-unified-1-huge", "status": "processing", "progress": 50, "pad": "'
            self._stream(200, "application/json", head, POLL_BODY)
        else:
            self._stream(500, "text/html", b"<html>", ERROR_BODY)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        host, port = self.server.server_address[:2]
        task = {
            "id": "task-unified-1-done",
            "status": "completed",
            "progress": 100,
            "model": "gemini-3.1-flash-image-preview",
            "results": [f"http://{host}:{port}/results/huge.png"],
        }
        body = json.dumps(task).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _growth(session: StdioSession, tool: str, arguments: dict[str, object]) -> tuple[int, str]:
    """Peak RSS growth (bytes) of the server during one call, and the start of its text."""
    before = memory_kib(session.pid)["VmRSS"]
    reset_peak_rss(session.pid)
    result = session.call_tool(tool, arguments)
    peak = memory_kib(session.pid)["VmHWM"]
    text = str(result.get("content", [{}])[0].get("text", ""))  # type: ignore[union-attr, index]
    return (peak - before) * 1024, text.splitlines()[0][:90] if text else ""


def bodies(home: Path) -> list[Row]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), HostileUpstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    host, port = upstream.server_address[:2]
    base = f"http://{host}:{port}"
    env = child_env(
        home,
        EVOLINK_API_KEY="sk-bench-hostile",
        EVOLINK_BASE_URL=base,
        EVOLINK_FILES_BASE_URL=base,
        EVOLINK_OUTPUT_DIR=str(home / "images"),
        EVOLINK_PREVIEW_MAX_BYTES="0",
    )
    try:
        with StdioSession(evolink_argv(), env) as session:
            session.initialize()
            _growth(session, "list_models", {})  # warm: imports and first-call costs out of the figures
            poll, poll_text = _growth(session, "check_task", {"task_id": "task-unified-1-huge"})
            download, download_text = _growth(session, "generate_image", {"prompt": "a fox", "wait_seconds": 5})
    finally:
        upstream.shutdown()
    return [
        Row(
            "hostile poll answer of 400 MB: server peak RSS growth",
            mib(poll),
            mib(POLL_BODY) + " (the body)",
            ratio(poll, POLL_BODY),
            f"<= {mib(TARGET)}",
            poll <= TARGET,
            f"check_task answered: {poll_text}",
        ),
        Row(
            "hostile download 500 with 300 MB body: server peak RSS growth",
            mib(download),
            mib(ERROR_BODY) + " (the body)",
            ratio(download, ERROR_BODY),
            f"<= {mib(TARGET)}",
            download <= TARGET,
            f"generate_image answered: {download_text}",
        ),
    ]


async def _abandon(url: str, count: int) -> int:
    """Open `count` sessions (initialize only) and leave them; how many the server accepted."""
    accepted = 0
    for _ in range(count):
        session = HttpSession(url)
        try:
            await session.open()
            accepted += 1
        except (RuntimeError, OSError):
            pass
        finally:
            session.drop()
    return accepted


def sessions(home: Path) -> list[Row]:
    port = free_port()
    log = home / "server.log"
    env = child_env(
        home, EVOLINK_API_KEY="sk-bench", EVOLINK_MCP_TOKEN=TOKEN, EVOLINK_MCP_SESSION_IDLE_SECONDS=str(IDLE_SECONDS)
    )
    argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(port))
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", process, log)
        url = f"http://127.0.0.1:{port}/mcp"
        asyncio.run(_abandon(url, 5))  # warm
        time.sleep(IDLE_SECONDS * 2.5)  # the warm-up sessions expire: the baseline holds none
        before = memory_kib(process.pid)["VmRSS"] * 1024
        accepted = asyncio.run(_abandon(url, SESSIONS))
        held = memory_kib(process.pid)["VmRSS"] * 1024
        time.sleep(IDLE_SECONDS * 2.5)  # the idle reaper drops them; else the cap would refuse the next round
        again = asyncio.run(_abandon(url, SESSIONS))
        after = memory_kib(process.pid)["VmRSS"] * 1024
    finally:
        stop(process)
    return [
        Row(
            f"{SESSIONS} abandoned HTTP sessions: server RSS growth while held",
            mib(held - before),
            mib(before) + " (RSS before)",
            ratio(held, before),
            note=f"{accepted} accepted (cap EVOLINK_MCP_MAX_SESSIONS, default 1000); issue 16 measured 118 -> 407 MB",
        ).informational(),
        Row(
            f"  {SESSIONS} more after the idle expiry ({IDLE_SECONDS} s here; EVOLINK_MCP_SESSION_IDLE_SECONDS)",
            mib(after - before),
            mib(held - before) + " (first round held)",
            ratio(after - before, held - before),
            note=f"{again} accepted: the first round was dropped (else the cap refuses them) and its memory reused",
        ).informational(),
    ]


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        return bodies(Path(tmp) / "bodies") + sessions(Path(tmp) / "sessions")


if __name__ == "__main__":
    for row in run():
        print(row)
