"""openai-agents: our server as `MCPServerStdio`, tools converted in strict mode, invoked as FunctionTools (no LLM)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import jsonschema
from agents import Agent, FunctionTool, RunContextWrapper
from agents.mcp import MCPServerStdio
from agents.strict_schema import ensure_strict_json_schema
from agents.tool_context import ToolContext
from checks import (
    INVALID_CALL,
    SERVER,
    STRICT_USED,
    TOOLS,
    check,
    ok,
    readable_error,
    run,
    saved_file,
    strict_arguments,
)


def strict_failure(input_schema: dict[str, Any]) -> str:
    """Why strict conversion refuses a schema (MCPUtil only logs it, at info level, and falls back)."""
    try:
        ensure_strict_json_schema(copy.deepcopy(input_schema), _reject_open_objects=True)
    except Exception as exc:
        return str(exc)
    return "unknown"


def output_text(output: Any) -> str:
    items = output if isinstance(output, list) else [output]
    return "\n".join(item["text"] for item in items if isinstance(item, dict) and item.get("type") == "text")


async def invoke(tool: FunctionTool, arguments: dict[str, Any]) -> Any:
    """The call the Runner makes for a model's function call."""
    raw = json.dumps(arguments)
    context = ToolContext(None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=raw)
    return await asyncio.wait_for(tool.on_invoke_tool(context, raw), 120)


async def main() -> None:
    # The default 5 s session timeout is shorter than generate_image's wait: raise it, as the README says.
    server = MCPServerStdio(
        params={"command": SERVER["command"], "args": SERVER["args"], "env": SERVER["env"]},
        name="evolink",
        client_session_timeout_seconds=120,
    )
    async with server:
        listed = {tool.name: tool for tool in await server.list_tools()}
        agent = Agent(name="images", mcp_servers=[server], mcp_config={"convert_schemas_to_strict": True})
        tools = {tool.name: tool for tool in await agent.get_mcp_tools(RunContextWrapper(None))}
        check(set(tools) >= TOOLS, f"tools converted: {sorted(tools)}")
        not_strict = {
            name: strict_failure(listed[name].input_schema)
            for name, tool in tools.items()
            if not (isinstance(tool, FunctionTool) and tool.strict_json_schema)
        }
        check(not not_strict, f"strict conversion fell back to non-strict: {not_strict}")
        ok(f"{len(tools)} tools converted in strict mode (convert_schemas_to_strict), none fell back")

        generate = tools["generate_image"]
        assert isinstance(generate, FunctionTool)
        arguments = strict_arguments(generate.params_json_schema, STRICT_USED)
        jsonschema.validate(arguments, generate.params_json_schema)
        output = await invoke(generate, arguments)
        saved = saved_file(output_text(output))
        images = [i for i in (output if isinstance(output, list) else [output]) if i.get("type") == "image"]
        check(images, f"no preview image in the tool output: {str(output)[:600]}")
        ok(f"generate_image in strict mode (unused parameters empty: {arguments}): saved {saved.name}")

        output = await invoke(generate, {**arguments, **INVALID_CALL})
        readable_error(output_text(output))
        ok(f"size '7:3' comes back as tool output text: {output_text(output)!r}")


run(main)
