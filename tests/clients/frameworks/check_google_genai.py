"""google-genai (Gemini): every tool's inputSchema converted to a FunctionDeclaration, as google-genai converts an
MCP session's tools, and checked for what the Gemini API refuses."""

from __future__ import annotations

from checks import SERVER, TOOLS, check, ok, provider_safe, run
from google.genai import types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main() -> None:
    params = StdioServerParameters(command=SERVER["command"], args=SERVER["args"], env=SERVER["env"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
    check({tool.name for tool in tools} >= TOOLS, f"tools listed: {[tool.name for tool in tools]}")
    for tool in tools:
        schema = tool.input_schema
        provider_safe(tool.name, schema)
        try:
            # The typed route: JSONSchema takes only the keywords Gemini knows (exclusiveMinimum is not one).
            parameters = types.Schema.from_json_schema(
                json_schema=types.JSONSchema(**schema), raise_error_on_unsupported_field=True
            )
            types.FunctionDeclaration(name=tool.name, description=tool.description, parameters=parameters)
            types.FunctionDeclaration(name=tool.name, description=tool.description, parameters_json_schema=schema)
        except Exception as exc:
            check(False, f"{tool.name}: google-genai refuses its inputSchema: {exc}")
    ok(f"{len(tools)} tools converted to Gemini FunctionDeclarations; no exclusiveMinimum, no property-less object")


run(main)
