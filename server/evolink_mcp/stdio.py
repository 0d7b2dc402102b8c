"""The stdio transport on the event loop's own pipe I/O (POSIX), instead of a worker thread per line.

The SDK's stdio_server reads and writes through anyio.wrap_file: every line read, write and flush is a
round trip to a worker thread, a large part of a quick call's latency. Here asyncio pipe transports carry
fd 0 and fd 1. The SDK's protection is kept: while serving, fd 0 reads the null device and fd 1 writes to
stderr, so stray output of handlers and child processes misses the wire; the wire itself is served from
private duplicates, and all is restored on exit. Unlike the SDK's transport (which drops them silently), a
line that is not a JSON-RPC message gets an error reply, and a client closing its end mid-answer is not an
error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, BinaryIO

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 16


def _pipes_usable() -> bool:
    """fd 0 and fd 1 are pipes or sockets (what MCP clients spawn servers with), and fd 1 is not stderr's."""
    if sys.platform == "win32":
        return False
    try:
        stdin, stdout = os.fstat(0), os.fstat(1)
    except OSError:
        return False
    if not all(stat.S_ISFIFO(s.st_mode) or stat.S_ISSOCK(s.st_mode) for s in (stdin, stdout)):
        return False  # files, /dev/null, terminals: the SDK's threads serve those
    try:
        # The wire's file is made non-blocking: were stderr the same file, a log write could fail with EAGAIN.
        return not os.path.samestat(stdout, os.fstat(2))
    except OSError:
        return True


async def serve_stdio(server: MCPServer[Any]) -> None:
    """`server.run_stdio_async()`, on asyncio pipes where stdin and stdout allow it."""
    if not _pipes_usable():
        log.debug("stdio: serving through the SDK's worker threads")
        await server.run_stdio_async()
        return
    log.debug("stdio: serving on asyncio pipes")
    # What run_stdio_async runs, on our streams. MCPServer has no public way to serve given streams (the SDK's
    # own in-memory Client reaches for the same attribute, marked to be made public).
    lowlevel = server._lowlevel_server
    read_send, read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write, write_receive = anyio.create_memory_object_stream[SessionMessage](0)
    replies = write.clone()  # the reader's own: error replies to lines the server never sees

    async def read_lines(lines: AsyncIterator[str]) -> None:
        async with read_send, replies:
            async for line in lines:
                if not line.strip():
                    continue
                try:
                    message = _parse(line)
                except _Unreadable as unreadable:
                    await replies.send(unreadable.reply)
                    continue
                await read_send.send(message)

    async def write_lines(stdout: _Writer) -> None:
        async with write_receive:
            try:
                async for message in write_receive:
                    await stdout.write(message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n")
                    await stdout.flush()
            except (BrokenPipeError, ConnectionResetError):
                log.debug("stdio: the client closed its end; answers from now on are dropped")
                async for _ in write_receive:  # the server still finishes what it is doing; nothing waits on it
                    pass

    async with _pipe_streams() as (stdin, stdout), anyio.create_task_group() as group:
        group.start_soon(read_lines, stdin)
        group.start_soon(write_lines, stdout)
        await lowlevel.run(read, write, lowlevel.create_initialization_options())


class _Unreadable(Exception):
    """A line that is not a JSON-RPC message, with the error reply it gets."""

    def __init__(self, request_id: Any, code: int, message: str) -> None:
        super().__init__(message)
        error = ErrorData(code=code, message=message)
        self.reply = SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=error))


def _parse(line: str) -> SessionMessage:
    """The JSON-RPC message on `line`; _Unreadable with its reply (JSON-RPC 2.0: id null when unknown)."""
    try:
        message = jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        code = PARSE_ERROR if any(e["type"] == "json_invalid" for e in errors) else INVALID_REQUEST
        what = "Parse error" if code == PARSE_ERROR else "Invalid Request"
        raise _Unreadable(_id_of(line), code, f"{what}: {errors[0]['msg'][:200]}") from None
    if isinstance(message, JSONRPCNotification) and '"id"' in line and _id_of(line, present=True):
        # An id that is neither a string nor an integer: validation read the request as a notification.
        raise _Unreadable(None, INVALID_REQUEST, "Invalid Request: an id must be a string or an integer")
    return SessionMessage(message)


def _id_of(line: str, *, present: bool = False) -> Any:
    """The line's usable request id (None if it has none); with `present`, whether it has an "id" at all."""
    try:
        parsed = json.loads(line)  # unlike pydantic, reads lone surrogates: such a request still gets its id back
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    if present:
        return "id" in parsed
    request_id = parsed.get("id")
    return request_id if isinstance(request_id, int | str) and not isinstance(request_id, bool) else None


@contextmanager
def _wire(fd: int, divert: int) -> Iterator[BinaryIO]:
    """A private duplicate of `fd` to serve the wire from, `fd` pointing at `divert` meanwhile."""
    import fcntl

    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    blocking = os.get_blocking(private)
    try:
        os.dup2(divert, fd)
        try:
            # closefd=False: a pipe transport closes the file it is given, the duplicate must outlive it.
            with open(private, "rb" if fd == 0 else "wb", buffering=0, closefd=False) as pipe:
                yield pipe
        finally:
            os.dup2(private, fd)
    finally:
        os.set_blocking(private, blocking)  # the pipe transports made it non-blocking; the file may be shared
        os.close(private)


@contextmanager
def _diversions() -> Iterator[tuple[int, int]]:
    """Where fd 0 and fd 1 point while serving: the null device, and stderr (or the null device)."""
    null_in = os.open(os.devnull, os.O_RDONLY)
    try:
        try:
            out = os.dup(2)
        except OSError:
            out = os.open(os.devnull, os.O_WRONLY)
        try:
            yield null_in, out
        finally:
            os.close(out)
    finally:
        os.close(null_in)


async def _lines(reader: asyncio.StreamReader) -> AsyncIterator[str]:
    """Lines as the SDK reads them (newline kept, UTF-8 with errors replaced), however long."""
    parts: list[bytes] = []
    while chunk := await reader.read(READ_CHUNK):
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            parts.append(chunk[start : end + 1])
            yield b"".join(parts).decode("utf-8", "replace")
            parts.clear()
            start = end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts).decode("utf-8", "replace")


class _Writer:
    """fd 1 for the SDK's stdout_writer: `flush` returns once the pipe has taken every byte."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode())

    async def flush(self) -> None:
        await self._writer.drain()


@asynccontextmanager
async def _pipe_streams() -> AsyncIterator[tuple[Any, Any]]:
    """stdin and stdout for the SDK's stdio_server: it needs only `async for line in stdin`, and `write` and
    `flush` on stdout, of the anyio.AsyncFile[str] it is typed for."""
    loop = asyncio.get_running_loop()
    with _diversions() as (null_in, out), _wire(0, null_in) as wire_in, _wire(1, out) as wire_out:
        reader = asyncio.StreamReader(limit=READ_CHUNK)
        read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), wire_in)
        try:
            write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, wire_out)
            try:
                write_transport.set_write_buffer_limits(high=0)  # drain() waits until nothing is left buffered
                yield _lines(reader), _Writer(asyncio.StreamWriter(write_transport, protocol, None, loop))
            finally:
                if not write_transport.is_closing():  # closed already if the client closed its end
                    write_transport.abort()  # every flush() completed saw its bytes written; none may outlive the fd
        finally:
            read_transport.close()
            with suppress(OSError, ValueError):
                sys.stdout.flush()  # a handler's unflushed print(): to stderr now, not onto the wire at exit
