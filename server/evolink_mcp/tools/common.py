"""What every tool shares: the dependencies object, tool specs, annotations and error results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, ContentBlock, TextContent, ToolAnnotations

from ..catalog import Catalog
from ..evolink import EvolinkClient, EvolinkError
from ..generation import ImageService
from ..settings import Settings


@dataclass
class Deps:
    """Everything a tool needs, built once per process and shared by every session."""

    settings: Settings
    catalog: Catalog
    client: EvolinkClient
    service: ImageService
    # Directories local files may be read from; None = any readable file (stdio: the user's own machine).
    allowed_dirs: Sequence[Path] | None
    on_image_saved: Callable[[Path, str], str] | None = None  # registers a resource, returns its URI


def deps_of(ctx: Context[Any]) -> Deps:
    deps = ctx.request_context.lifespan_context
    assert isinstance(deps, Deps), "the server's lifespan must yield Deps"
    return deps


@dataclass(frozen=True)
class ToolSpec:
    """A tool as data: registered by one loop, listed in the README from the same list."""

    fn: Callable[..., Any]
    name: str
    title: str
    description: str
    annotations: ToolAnnotations
    core: bool = False

    def to_tool(self) -> Tool:
        """The SDK tool, with compact input and output schemas."""
        tool = Tool.from_function(
            self.fn,
            name=self.name,
            title=self.title,
            description=self.description,
            annotations=self.annotations,
        )
        tool.parameters = compact_schema(tool.parameters)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = output_outline(compact_schema(tool.fn_metadata.output_schema))
        return tool

    @classmethod
    def of(cls, fn: Callable[..., Any], title: str, annotations: ToolAnnotations, *, core: bool = False) -> ToolSpec:
        """A spec named after `fn`, described by its docstring."""
        return cls(fn, fn.__name__, title, " ".join((fn.__doc__ or "").split()), annotations, core)


# A hint left out reads as false both by the spec's defaults and to a client that takes a missing hint for false:
# readOnly and idempotent when false; destructive on a read-only tool, where the spec says it means nothing.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
READ_ONLY_REMOTE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
# Creates something upstream (a paid task, an upload): neither read-only nor safe to repeat.
REMOTE_WRITE = ToolAnnotations(destructive_hint=False, open_world_hint=True)
REMOTE_DELETE = ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True)


def compact_schema(schema: Any) -> Any:
    """A JSON schema without what costs context and says nothing: titles, `anyOf [X, null]` for optionals, and
    `additionalProperties: true` (the default).

    Arguments are still validated by the full pydantic model; results never carry nulls (exclude_none).
    """
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if (key == "title" and isinstance(value, str)) or (key == "additionalProperties" and value is True):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):  # names (even "title") mapped to schemas
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (kept,) = [o for o in options if o != {"type": "null"}]
        out.pop("anyOf")
        if out.get("default", ...) is None:
            out.pop("default")
        out = {**kept, **out}
    return out


def output_outline(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema with nested models reduced to plain objects, and no defaults.

    Spelled out, the nested models of the core tools cost ~2 KB of every client's tools/list, for keys each
    result shows anyway; the pydantic model behind each result still checks it whole.
    """

    def outline(field: dict[str, Any]) -> dict[str, Any]:
        field = {k: v for k, v in field.items() if k != "default"}  # a result is sent whole
        items = field.get("items")
        if "$ref" in field:
            return {"type": "object", **({"description": field["description"]} if "description" in field else {})}
        if isinstance(items, dict) and "$ref" in items:
            return {**field, "items": {"type": "object"}}
        return field

    return {
        "type": "object",
        "properties": {name: outline(field) for name, field in schema["properties"].items()},
        "required": schema.get("required", []),
    }


def error_result(error: EvolinkError, *, charged: Literal["no", "unknown"] | None = None) -> CallToolResult:
    """An isError result to act on: category, retryable, next step (and `charged`, for submissions)."""
    details = error.to_dict()
    if charged is not None:
        details["charged"] = charged
    lines = [f"Error ({error.category}): {error.message}", f"Next step: {error.next_step}"]
    if charged is not None:
        lines.append(
            "Charged: no — nothing was billed."
            if charged == "no"
            else "Charged: unknown — a task may have been created."
        )
    if isinstance(details.get("idempotency_key"), str):
        details["client_request_id"] = details.pop("idempotency_key")
        lines.append(
            f"Retry with client_request_id={details['client_request_id']!r}: if the task exists it is returned, "
            "not paid for twice."
        )
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))], structured_content=details, is_error=True
    )


def result(text: str, structured: dict[str, Any], extra: Sequence[ContentBlock] = ()) -> CallToolResult:
    """A successful result: short text first, then any images or links, and the structured copy."""
    return CallToolResult(content=[TextContent(type="text", text=text), *extra], structured_content=structured)
