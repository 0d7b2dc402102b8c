"""The SDK's floor: a bare MCPServer with four trivial tools over stdio (the cold-start and per-call reference).

With BENCH_CANNED_RESULT=<file> it has a fifth tool, `canned`, answering with that file's CallToolResult as is:
the SDK's own cost of sending a result of the same size as one of ours.
"""

import json
import os
import time

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult

server = MCPServer("floor")


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def now() -> float:
    """Seconds since the epoch."""
    return time.time()


@server.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


if os.environ.get("BENCH_CANNED_RESULT"):
    with open(os.environ["BENCH_CANNED_RESULT"], encoding="utf-8") as handle:
        CANNED = json.load(handle)

    @server.tool()
    def canned() -> CallToolResult:
        """A recorded result, sent as is."""
        return CallToolResult.model_validate(CANNED)


if __name__ == "__main__":
    server.run()
