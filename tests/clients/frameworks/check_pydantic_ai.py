"""pydantic-ai 2.x: our server as an `MCPToolset`, driven by a scripted `FunctionModel` (no LLM)."""

from __future__ import annotations

import json
from typing import Any

from checks import GOOD_CALL, INVALID_CALL, SERVER, TOOLS, check, ok, readable_error, run, saved_file
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import (
    BinaryContent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel


def scripted(arguments: dict[str, Any], seen_tools: dict[str, Any]) -> FunctionModel:
    """A model that calls generate_image once with `arguments`, then answers "done"."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_tools.update({tool.name: tool.parameters_json_schema for tool in info.function_tools})
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("generate_image", arguments, tool_call_id="call-1")])
        return ModelResponse(parts=[TextPart("done")])

    return FunctionModel(respond)


def tool_answer(messages: list[ModelMessage]) -> ToolReturnPart | RetryPromptPart:
    """What the model was handed back for its tool call."""
    parts = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts]
    answers = [p for p in parts if isinstance(p, ToolReturnPart | RetryPromptPart)]
    check(len(answers) == 1, f"expected one tool answer, got {parts!r}")
    return answers[0]


async def main() -> None:
    toolset = MCPToolset(StdioTransport(SERVER["command"], SERVER["args"], env=SERVER["env"]))
    async with toolset:
        seen_tools: dict[str, Any] = {}
        agent = Agent(scripted(GOOD_CALL, seen_tools), toolsets=[toolset])
        outcome = await agent.run("Draw a red bicycle.")
        check(set(seen_tools) >= TOOLS, f"tools handed to the model: {sorted(seen_tools)}")
        ok(f"{len(seen_tools)} tools loaded and converted to pydantic-ai tool definitions")

        answer = tool_answer(outcome.all_messages())
        check(isinstance(answer, ToolReturnPart) and answer.outcome == "success", f"generate_image failed: {answer!r}")
        content = answer.content if isinstance(answer.content, list) else [answer.content]
        texts = [c if isinstance(c, str) else json.dumps(c) for c in content if not isinstance(c, BinaryContent)]
        saved = saved_file("\n".join(texts))
        images = [c for c in content if isinstance(c, BinaryContent) and c.is_image]
        check(images, f"no preview image reached the model: {content!r}")
        ok(f"generate_image through the toolset: saved {saved.name}, {len(images)} preview image(s) for the model")

        outcome = await Agent(scripted(INVALID_CALL, {}), toolsets=[toolset]).run("Draw a wide bicycle.")
        answer = tool_answer(outcome.all_messages())
        # pydantic-ai hands a tool error back for the model to retry (a retried ToolReturnPart, or RetryPromptPart).
        retried = isinstance(answer, RetryPromptPart) or answer.outcome == "retried"
        check(retried, f"an invalid call did not come back as a retry: {answer!r}")
        seen = answer.model_response() if isinstance(answer, RetryPromptPart) else str(answer.content)
        readable_error(seen)
        ok(f"size '7:3' comes back as a retry prompt the model reads: {seen!r}")


run(main)
