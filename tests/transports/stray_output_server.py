"""A bare MCPServer served over stdio as evolink-mcp serves it, whose one tool does what handlers must not be
able to do to the wire: print, write to fd 1, read stdin, and run a child process that does the same."""

import logging
import os
import subprocess
import sys

import anyio
from mcp.server.mcpserver import MCPServer

from evolink_mcp.transports import serve_stdio

CHILD = "import sys; print('stray child output'); print('child read', repr(sys.stdin.read()))"

server = MCPServer("stray-output")


@server.tool()
def scribble() -> str:
    """Write to stdout every way a handler can; return what stdin gave."""
    print("stray print")
    sys.stdout.flush()
    os.write(1, b"stray write to fd 1\n")
    subprocess.run([sys.executable, "-c", CHILD], check=True, timeout=30)
    print("stray print left in the buffer")  # stdout is a pipe: block-buffered, written out at exit at the latest
    return f"stdin gave {sys.stdin.read()!r}"


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)  # MCPServer() configured its own
    anyio.run(serve_stdio, server)
