"""Arguments as agents and tool converters really send them: misspelled, empty for "not given", JSON in strings."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult
from pydantic import Field

from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.tools.common import READ_ONLY, ToolSpec
from mcp_session import INSTANT, Connect, Session

pytestmark = pytest.mark.anyio


async def test_misspelled_or_foreign_argument_names_are_refused_with_the_real_name_and_nothing_is_sent(
    mcp: Session, sandbox: SandboxServer
) -> None:
    arguments = {"prompt": "a fox", "aspect_ratio": "16:9", "qualty": "4K", "model_name": "gpt-image-2"}

    result = await mcp.call("generate_image", arguments)

    error = mcp.error(result)
    assert (error["category"], error["charged"]) == ("invalid_request", "no")
    text = mcp.text(result)
    for given, meant in (("aspect_ratio", "size"), ("qualty", "quality"), ("model_name", "model")):
        assert f"Unknown argument '{given}': did you mean '{meant}'?" in text
    assert "generate_image takes: prompt, model, size" in text
    assert sandbox.state.requests() == []  # no default job was paid for


async def test_empty_values_from_strict_tool_converters_mean_not_given(mcp: Session, sandbox: SandboxServer) -> None:
    # openai-agents' strict mode makes every parameter required: a model fills the unused ones with empties.
    empties = {
        "size": "",
        "quality": "",
        "resolution": None,
        "n": None,
        "image_urls": [],
        "mask_url": "",
        "callback_url": "  ",
        "extra": "",
        "client_request_id": "",
        "max_credits": None,
        "wait_seconds": None,
    }

    result = await mcp.call("generate_image", {"prompt": "a fox" + INSTANT, **empties})

    assert not result.is_error, mcp.text(result)
    (posted,) = sandbox.state.requests("generations")
    assert set(posted.body) == {"model", "prompt"}  # nothing empty reached Evolink


@pytest.mark.parametrize("extra", [{"seed": 7}, '{"seed": 7}'], ids=["object", "json-string"])
async def test_extra_is_taken_as_an_object_or_as_a_json_object_string(
    extra: Any, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a fox" + INSTANT, "model": "z-image-turbo", "extra": extra})

    assert not result.is_error, mcp.text(result)
    (posted,) = sandbox.state.requests("generations")
    assert posted.body["seed"] == 7


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"extra": "{not json"}, "extra:"),
        ({"extra": "[1, 2]"}, "extra:"),
        ({"n": "many"}, "n: Input should be a valid integer"),
        ({"max_credits": 0}, "max_credits must be above 0"),
        ({"wait_seconds": -1}, "wait_seconds: Input should be greater than or equal to 0"),
    ],
)
async def test_a_bad_value_is_refused_naming_its_parameter_and_nothing_is_sent(
    arguments: dict[str, Any], says: str, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a fox", **arguments})

    error = mcp.error(result)
    assert (error["category"], error["charged"]) == ("invalid_request", "no")
    assert says in mcp.text(result)
    assert sandbox.state.requests() == []


async def test_a_huge_bad_value_is_quoted_back_cut_not_whole(mcp: Session) -> None:
    result = await mcp.call("generate_image", {"prompt": "a fox", "n": "9" * 50_000 + "x"})

    assert mcp.error(result)["category"] == "invalid_request"
    assert len(result.model_dump_json()) < 2_000 and "(50003 characters)" in mcp.text(result)


async def test_a_tool_that_crashes_still_answers_in_the_error_shape_and_logs_why(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_tool(count: Annotated[int, Field(description="How many.")] = 1) -> CallToolResult:
        """A tool with a bug."""
        raise RuntimeError(f"bug number {count}")

    server: MCPServer[Any] = MCPServer("crashing", tools=[ToolSpec.of(broken_tool, "Broken", READ_ONLY).to_tool()])
    async with Client(server) as client:
        result: CallToolResult = await client.call_tool("broken_tool", {"count": 3})

    assert result.is_error and result.structured_content is not None
    error = result.structured_content["error"]
    assert error["category"] == "internal" and error["next_step"]
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith("Error (internal):") and "bug number" not in text  # the details stay in the log
    crash = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert crash and "bug number 3" in str(crash[0].exc_info[1])  # type: ignore[index]


async def test_every_published_schema_is_free_of_keywords_major_providers_refuse(mcp: Session) -> None:
    def walk(schema: Any) -> list[Any]:
        found = [schema]
        if isinstance(schema, dict):
            found += [x for value in schema.values() for x in walk(value)]
        elif isinstance(schema, list):
            found += [x for value in schema for x in walk(value)]
        return found

    for tool in (await mcp.tools()).values():
        nodes = walk(tool.input_schema)
        assert not [n for n in nodes if isinstance(n, dict) and "exclusiveMinimum" in n], tool.name  # Gemini
        open_objects = [
            n for n in nodes if isinstance(n, dict) and n.get("type") == "object" and not n.get("properties")
        ]
        assert not open_objects, f"{tool.name}: an object without properties (strict converters, Gemini)"
        assert json.dumps(tool.input_schema)  # plain JSON
