"""What every tool shares: the dependencies object, tool specs, annotations, arguments and error results."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, ContentBlock, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from ..catalog import Catalog, echo
from ..evolink import EvolinkClient, EvolinkError, InvalidRequestError, UnexpectedServerError
from ..images import ImageService
from ..media import SAVED_IMAGES, TASK_IMAGES
from ..settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """Everything a tool needs, built once per process and shared by every session."""

    settings: Settings
    catalog: Catalog
    client: EvolinkClient
    service: ImageService
    # Directories local files may be read from; None = any readable file (stdio: the user's own machine).
    allowed_dirs: Sequence[Path] | None


IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def saved_image_uri(path: Path, output_dir: Path, task_id: str | None = None) -> str | None:
    """The resource URI of a saved image: by name in the output folder; elsewhere, by its task's."""
    if path.suffix.lstrip(".") not in IMAGE_TYPES:
        return None
    if path.parent.resolve() == output_dir.resolve():
        return f"{SAVED_IMAGES}{path.name}"
    if task_id is None:
        return None
    return TASK_IMAGES.format(task_id=quote(task_id, safe="")) + path.name


# Over HTTP with per-user keys (tenants.py), the caller's own view of the dependencies, set for each request.
REQUEST_DEPS: ContextVar[Deps | None] = ContextVar("evolink_request_deps", default=None)


def current_deps(default: Deps) -> Deps:
    """The dependencies as the current request's caller sees them: its tenant's, else `default`."""
    return REQUEST_DEPS.get() or default


def deps_of(ctx: Context[Any]) -> Deps:
    deps = current_deps(ctx.request_context.lifespan_context)
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
    paid: bool = False  # its errors say whether anything was charged
    meta: dict[str, Any] | None = None  # the tool's `_meta`, e.g. the MCP Apps view it renders in (studio/)

    def to_tool(self) -> Tool:
        """The SDK tool, with compact input and output schemas and our own argument checks."""
        tool = EvolinkTool.from_function(
            self.fn,
            name=self.name,
            title=self.title,
            description=self.description,
            annotations=self.annotations,
            meta=self.meta,
        )
        assert isinstance(tool, EvolinkTool)  # from_function builds the class it is called on
        tool.paid = self.paid
        tool.parameters = compact_schema(tool.parameters)
        if tool.fn_metadata.output_schema is not None:
            tool.fn_metadata.output_schema = output_outline(compact_schema(tool.fn_metadata.output_schema))
        return tool

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        title: str,
        annotations: ToolAnnotations,
        *,
        core: bool = False,
        paid: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> ToolSpec:
        """A spec named after `fn`, described by its docstring."""
        return cls(fn, fn.__name__, title, " ".join((fn.__doc__ or "").split()), annotations, core, paid, meta)


# Names agents reach for that mean one of ours; close misspellings are found by difflib.
ARGUMENT_SYNONYMS = {
    "aspect_ratio": "size",
    "ratio": "size",
    "model_name": "model",
    "model_id": "model",
    "num_images": "n",
    "count": "n",
    "image_url": "image_urls",
    "images": "image_urls",
    "reference_images": "image_urls",
    "mask": "mask_url",
    "timeout": "wait_seconds",
    "id": "task_id",
    "path": "file_path",
}


def is_empty(value: Any) -> bool:
    """What strict tool converters send for an argument the model leaves out."""
    return value is None or value == [] or value == {} or (isinstance(value, str) and not value.strip())


class EvolinkTool(Tool):
    """A tool whose bad arguments come back as our own error results: unknown names refused with a "did you mean",
    empty optional values taken as not given, each problem naming its parameter; and whose crashes still answer
    in the error shape every client validates."""

    paid: bool = False

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            arguments = self.checked_arguments(arguments)
            self.fn_metadata.validate_arguments(arguments)
        except InvalidRequestError as exc:
            return error_result(exc, charged="no" if self.paid else None)
        except ValidationError as exc:
            return error_result(invalid_arguments(exc), charged="no" if self.paid else None)
        try:
            return await super().run(arguments, context, convert_result)
        except UnexpectedToolError as exc:
            log.error("tool %s failed", self.name, exc_info=exc.__cause__)
            failure = UnexpectedServerError("The server failed unexpectedly while handling this call.")
            return error_result(failure, charged="unknown" if self.paid else None)

    def checked_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments with empty optional values dropped; unknown names refused before anything is sent."""
        known = list(self.parameters.get("properties", {}))
        required = set(self.parameters.get("required", []))
        unknown = [name for name in arguments if name not in known]
        if unknown:
            raise InvalidRequestError(
                " ".join(_unknown_argument(name, known) for name in unknown)
                + f" {self.name} takes: {', '.join(known)}."
            )
        return {name: value for name, value in arguments.items() if name in required or not is_empty(value)}


def _unknown_argument(name: str, known: list[str]) -> str:
    guess = ARGUMENT_SYNONYMS.get(name.lower())
    if guess not in known:
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    return f"Unknown argument {echo(name)}" + (f": did you mean {guess!r}?" if guess else ".")


def invalid_arguments(exc: ValidationError) -> InvalidRequestError:
    """Pydantic's complaints as one message naming each parameter and the value given (cut)."""
    lines = []
    for error in exc.errors(include_url=False):
        param = ".".join(str(part) for part in error["loc"]) or "arguments"
        given = f" (got {echo(error['input'])})" if error["type"] != "missing" else ""
        lines.append(f"{param}: {error['msg']}{given}.")
    return InvalidRequestError(" ".join(lines))


# A hint left out reads as false both by the spec's defaults and to a client that takes a missing hint for false:
# readOnly and idempotent when false; destructive on a read-only tool, where the spec says it means nothing.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
READ_ONLY_REMOTE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
# Creates something upstream (a paid task, an upload): neither read-only nor safe to repeat.
REMOTE_WRITE = ToolAnnotations(destructive_hint=False, open_world_hint=True)
REMOTE_DELETE = ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=True)


def compact_schema(schema: Any) -> Any:
    """A JSON schema without what costs context and says nothing: titles, `anyOf [X, null]` for optionals (kept as
    a nullable type for numbers), and `additionalProperties: true` (the default).

    Arguments are still validated by the full pydantic model; results never carry nulls (exclude_none).
    """
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if (
            (key == "title" and isinstance(value, str))
            or (key == "additionalProperties" and value is True)
            or (key == "default" and value is None)
        ):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):  # names (even "title") mapped to schemas
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (kept,) = [o for o in options if o != {"type": "null"}]
        if out.get("default", ...) is None:
            out.pop("default")
        if kept.get("type") not in ("number", "integer", "boolean"):
            out.pop("anyOf")
            out = {**kept, **out}
        # Else left as anyOf: a strict converter (openai-agents) makes every parameter required, so a number needs
        # a null to say "not given" (a string or a list has its empty value); not a `type` array, which
        # single-type dialects (Gemini's) may refuse.
    return out


def output_outline(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema with nested models reduced to plain objects or arrays, and no defaults or descriptions.

    Spelled out, the nested models of the core tools cost ~2 KB of every client's tools/list, for keys each
    result shows anyway; the pydantic model behind each result still checks it whole.
    """

    def outline(field: dict[str, Any]) -> dict[str, Any]:
        # A result is sent whole (no defaults), and no model reads an output schema (no descriptions).
        field = {k: v for k, v in field.items() if k not in ("default", "description")}
        items = field.get("items")
        if "$ref" in field:
            return {"type": "object"}
        if isinstance(items, dict) and "$ref" in items:
            return {k: v for k, v in field.items() if k != "items"}  # an array of objects each result spells out
        return field

    properties = {name: outline(field) for name, field in schema["properties"].items()}
    properties.setdefault("error", {"type": "object"})
    # Strict clients (the TypeScript SDK) check error results against this schema too: a result is either the
    # tool's answer or an `error` (a failed task is both).
    return {
        "type": "object",
        "properties": properties,
        "anyOf": [{"required": schema.get("required", [])}, {"required": ["error"]}],
    }


class ErrorOut(BaseModel):
    """What went wrong, for a program to read: the same facts the error text gives."""

    category: str
    message: str
    retryable: bool
    next_step: str
    charged: Literal["no", "unknown"] | None = None
    client_request_id: str | None = None
    code: str | int | None = None
    http_status: int | None = None
    param: str | None = None
    suggestion: str | None = None
    retry_after: float | None = None
    request_id: str | None = None
    problems: list[dict[str, Any]] | None = None


def error_result(
    error: EvolinkError, *, charged: Literal["no", "unknown"] | None = None, task: dict[str, Any] | None = None
) -> CallToolResult:
    """An isError result to act on: category, retryable, next step (and `charged`, for submissions), beside the
    task's facts when there is a task."""
    details = error.to_dict()
    details["http_status"] = details.pop("status", None)
    details["client_request_id"] = details.pop("idempotency_key", None)
    out = ErrorOut(**details, charged=charged)
    lines = [f"Error ({out.category}): {out.message}", f"Next step: {out.next_step}"]
    if charged is not None:
        lines.append(
            "Charged: no — nothing was billed."
            if charged == "no"
            else "Charged: unknown — a task may have been created."
        )
    if out.client_request_id is not None:
        lines.append(
            f"Retry with client_request_id={out.client_request_id!r}: if the task exists it is returned, "
            "not paid for twice."
        )
    return error_text_result(
        "\n".join(lines), {**(task or {}), "error": out.model_dump(mode="json", exclude_none=True)}
    )


def error_text_result(text: str, structured: dict[str, Any], extra: Sequence[ContentBlock] = ()) -> CallToolResult:
    """An isError result: text first, then any images or links, and the structured copy with its `error`."""
    return CallToolResult(
        content=[TextContent(type="text", text=text), *extra], structured_content=structured, is_error=True
    )


def result(text: str, structured: dict[str, Any], extra: Sequence[ContentBlock] = ()) -> CallToolResult:
    """A successful result: short text first, then any images or links, and the structured copy."""
    return CallToolResult(content=[TextContent(type="text", text=text), *extra], structured_content=structured)
