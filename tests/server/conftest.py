"""The MCP server end to end: the fixtures of tests/mcp_session.py."""

from mcp_session import (  # noqa: F401  # fixtures, registered for this folder by being here
    api_key,
    api_key_never_logged,
    connect,
    deps,
    make_png,
    mcp,
    server,
    server_for,
    settings,
    settings_defaults,
    settings_for,
)
