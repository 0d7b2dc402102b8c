"""Claude Desktop bundle (MCPB) entry point: starts the stdio server."""

from evolink_mcp.cli import main

main()
