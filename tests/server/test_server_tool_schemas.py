"""What every client sees in tools/list: annotations, schemas, and a checked-in snapshot of all of it."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp_types import Tool

from evolink_mcp.settings import Settings
from mcp_session import TOOLS, Connect, ServerFor, Session

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"

# name -> (readOnly, destructive, idempotent, openWorld)
ANNOTATIONS = {
    "generate_image": (False, False, False, True),  # costs credits: never retried or cached by a client
    "check_task": (True, False, True, True),
    "upload_file": (False, False, False, True),
    "list_models": (True, False, True, False),  # the local catalog
    "list_files": (True, False, True, True),
    "delete_file": (False, True, True, True),
    "list_tasks": (True, False, True, False),  # the local journal
    "estimate_cost": (True, False, True, True),  # free; reads the balance upstream
    "check_balance": (True, False, True, True),
    "upscale_image": (False, False, False, True),  # costs credits, like generate_image
    "remove_background": (False, False, False, True),
}
SPEC_DEFAULTS = (False, True, False, True)  # ToolAnnotations in the MCP schema


def described(tool: Tool) -> dict[str, Any]:
    """What the snapshot keeps of a tool."""
    dumped = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    keep = ("name", "title", "description", "annotations", "inputSchema", "outputSchema")
    return {key: dumped.get(key) for key in keep}


async def test_the_server_offers_the_core_tools_first(mcp: Session) -> None:
    assert list(await mcp.tools()) == TOOLS


@pytest.mark.parametrize("name", TOOLS)
async def test_each_tool_is_annotated_for_what_it_does(name: str, mcp: Session) -> None:
    annotations = (await mcp.tools())[name].annotations

    assert annotations is not None
    given = (
        annotations.read_only_hint,
        annotations.destructive_hint,
        annotations.idempotent_hint,
        annotations.open_world_hint,
    )
    # Hints may be left out: read with the spec's defaults (destructive means nothing on a read-only tool)...
    read_only = bool(given[0])
    by_spec = tuple(default if value is None else value for value, default in zip(given, SPEC_DEFAULTS, strict=True))
    by_spec = (by_spec[0], by_spec[1] and not read_only, *by_spec[2:])
    assert by_spec == ANNOTATIONS[name]
    # ...and by a client that takes a missing hint for false: the same answer either way.
    assert tuple(bool(value) for value in given) == ANNOTATIONS[name]


@pytest.mark.parametrize("name", TOOLS)
async def test_each_tool_has_a_title_and_valid_input_and_output_schemas(name: str, mcp: Session) -> None:
    tool = (await mcp.tools())[name]

    assert tool.title and tool.description
    assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    answer, failure = tool.output_schema["anyOf"]  # a result is the tool's answer or an error (both: a failed task)
    assert answer["required"] and failure == {"required": ["error"]}
    jsonschema.Draft202012Validator.check_schema(tool.input_schema)
    jsonschema.Draft202012Validator.check_schema(tool.output_schema)


async def test_tools_list_matches_the_checked_in_snapshot(server_for: ServerFor, connect: Connect) -> None:
    # Default wait: the generate_image schema states it, so the snapshot must not depend on test settings.
    async with connect(server_for(wait_seconds=Settings().wait_seconds)) as mcp:
        live = [described(tool) for tool in (await mcp.tools()).values()]
    rendered = json.dumps(live, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(rendered, "utf-8")
        return
    if not SNAPSHOT.exists():
        pytest.fail(
            f"No tool snapshot at {SNAPSHOT}; create it with UPDATE_SNAPSHOTS=1 pytest {__file__}",
            pytrace=False,
        )
    recorded = SNAPSHOT.read_text("utf-8")
    if rendered != recorded:
        diff = "".join(
            difflib.unified_diff(
                recorded.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                "snapshots/tools.json (checked in)",
                "tools/list (live)",
                n=2,
            )
        )
        pytest.fail(
            "tools/list differs from tests/server/snapshots/tools.json. If the change is intended, "
            f"regenerate the snapshot with UPDATE_SNAPSHOTS=1 pytest {__file__} and review the diff:\n{diff}",
            pytrace=False,
        )
