"""langchain-mcp-adapters: our tools as LangChain tools, invoked as an agent's tool call would be (no LLM).

Run with resource links left out (run.py sets it): the adapter turns a resource_link into an image block whose
URL is our evolink:// URI, which no model provider can fetch.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from checks import GOOD_CALL, INVALID_CALL, SERVER, TOOLS, check, ok, readable_error, run, saved_file
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools


async def invoke(tool: BaseTool, arguments: dict[str, Any]) -> ToolMessage:
    """The call an agent's ToolNode makes for a model's tool call."""
    call = {"name": tool.name, "args": arguments, "id": "call-1", "type": "tool_call"}
    message = await asyncio.wait_for(tool.ainvoke(call), 120)
    check(isinstance(message, ToolMessage), f"not a ToolMessage: {message!r}")
    return message


def blocks(message: ToolMessage) -> list[dict[str, Any]]:
    content = message.content
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)  # type: ignore[arg-type]


def text(message: ToolMessage) -> str:
    return "\n".join(b["text"] for b in blocks(message) if b.get("type") == "text")


async def main() -> None:
    connection = {"transport": "stdio", "command": SERVER["command"], "args": SERVER["args"], "env": SERVER["env"]}
    client = MultiServerMCPClient({"evolink": connection})  # type: ignore[dict-item]
    async with client.session("evolink") as session:
        tools = {tool.name: tool for tool in await load_mcp_tools(session)}
        check(set(tools) >= TOOLS, f"tools loaded: {sorted(tools)}")
        for tool in tools.values():
            convert_to_openai_tool(tool, strict=True)
        ok(f"{len(tools)} tools loaded and converted to OpenAI tools (strict=True)")

        message = await invoke(tools["generate_image"], GOOD_CALL)
        check(message.status == "success", f"generate_image failed: {message!r}")
        saved = saved_file(text(message))
        unfetchable = [b for b in blocks(message) if "evolink://" in json.dumps(b) and b.get("type") != "text"]
        check(not unfetchable, f"a block no model provider can fetch (an evolink:// URL): {unfetchable}")
        images = [b for b in blocks(message) if b.get("type") == "image"]
        check(images and all(b.get("base64") for b in images), f"preview images: {str(images)[:300]}")
        ok(f"generate_image through the LangChain tool: saved {saved.name}, no evolink:// image URL")

        message = await invoke(tools["generate_image"], INVALID_CALL)
        check(message.status == "error", f"an invalid call did not come back as an error ToolMessage: {message!r}")
        readable_error(text(message))
        ok(f"size '7:3' comes back as an error ToolMessage: {text(message)!r}")


run(main)
