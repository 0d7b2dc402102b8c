"""The MCP server end to end: the fixtures of tests/mcp_session.py (registered in the root conftest)."""
