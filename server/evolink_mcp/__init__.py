"""evolink-mcp: an MCP server for the Evolink image API."""

__version__ = "0.1.0"
