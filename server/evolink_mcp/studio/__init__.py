"""The image studio: an MCP Apps view over generate_image and check_task results and the recent generations.

Negotiated per client: one that did not advertise MCP Apps support (`io.modelcontextprotocol/ui` with the
`text/html;profile=mcp-app` MIME type) gets tools/list, resources/list and tools/call exactly as without the
studio. The view calls tools only through the host (it never reaches Evolink or the disk itself).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from mcp.server.apps import Apps, ResourceCsp, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolRequestParams, CallToolResult, TextContent
from pydantic import BaseModel

from ..tools.common import ToolSpec
from .tools import studio_tools

STUDIO_URI = "ui://evolink/studio.html"
BOUND_TOOLS = ("generate_image", "check_task")  # their results open in the studio
STUDIO_TOOLS = frozenset(spec.name for spec in studio_tools(STUDIO_URI))


def with_studio(specs: Sequence[ToolSpec]) -> list[ToolSpec]:
    """The server's tool specs, the bound ones pointing at the studio, plus the studio's own tools."""
    bound = [
        dataclasses.replace(spec, meta={**(spec.meta or {}), "ui": {"resourceUri": STUDIO_URI}})
        if spec.name in BOUND_TOOLS
        else spec
        for spec in specs
    ]
    return [*bound, *studio_tools(STUDIO_URI)]


class StudioApps(Apps):
    """MCP Apps, whose studio tools a client without Apps support cannot call either."""

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if params.name in STUDIO_TOOLS and not client_supports_apps(ctx):
            # The SDK's own answer for a tool it does not have (an interceptor's answer is stamped like a handler's).
            return CallToolResult(
                content=[TextContent(type="text", text=f"Unknown tool: {params.name}")], is_error=True
            )
        return await call_next(ctx)


def studio_extension() -> Apps:
    """The MCP Apps extension serving the studio's one HTML resource."""
    apps = StudioApps()
    apps.add_html_resource(
        STUDIO_URI,
        studio_html(),
        name="studio",
        title="Evolink image studio",
        description="Gallery, full-size views, variations, model comparison and mask painting.",
        csp=ResourceCsp(),  # no domain at all: the view makes no network request of its own
        prefers_border=False,
    )
    return apps


@cache
def studio_html() -> str:
    """The view: one document with its style and script inline, allowed by their hashes and nothing else."""
    folder = files(__package__)
    style, script = (folder / "studio.css").read_text("utf-8"), (folder / "studio.js").read_text("utf-8")
    csp = (
        "default-src 'none'; "
        f"style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
        "img-src data: blob:; connect-src 'none'; form-action 'none'; base-uri 'none'"
    )
    page = (folder / "studio.html").read_text("utf-8")
    return (
        page.replace("{{csp}}", csp)
        .replace("{{style}}", f"<style>{style}</style>")
        .replace("{{script}}", f"<script>{script}</script>")
    )


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


async def only_for_apps_clients(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: what the studio adds is seen only by a client that negotiated MCP Apps."""
    if client_supports_apps(ctx) or ctx.method not in ("tools/list", "resources/list"):
        return await call_next(ctx)
    answer = await call_next(ctx)
    if isinstance(answer, BaseModel):  # the handlers' models reach middleware serialized; kept general all the same
        answer = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not isinstance(answer, dict):
        return answer
    if ctx.method == "tools/list":
        tools = [_without_ui(tool) for tool in answer.get("tools", []) if tool.get("name") not in STUDIO_TOOLS]
        return {**answer, "tools": tools}
    if ctx.method == "resources/list":
        return {
            **answer,
            "resources": [r for r in answer.get("resources", []) if not r.get("uri", "").startswith("ui://")],
        }
    return answer


def _without_ui(tool: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (tool.get("_meta") or {}).items() if k != "ui"}
    if "_meta" not in tool or meta == tool["_meta"]:
        return tool
    return {k: v for k, v in tool.items() if k != "_meta"} | ({"_meta": meta} if meta else {})


__all__ = ["STUDIO_URI", "only_for_apps_clients", "studio_extension", "with_studio"]
