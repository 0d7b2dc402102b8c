"""list_models: the catalog as an agent picks from it; the evolink://models resources hold the rest."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from ..catalog import Catalog, echo
from ..evolink import InvalidRequestError
from ..present import ModelSummary, summarize
from .common import READ_ONLY, ToolSpec, deps_of, error_result, result

FULL_CATALOG = "evolink://models"


class ModelListOutput(BaseModel):
    default_model: str
    count: int
    models: list[ModelSummary] = Field(description="Per model: id, modes, sizes, qualities, n, references.")
    details: Annotated[str, SkipJsonSchema()]  # the resource with every limit and default of each model


def _line(m: ModelSummary) -> str:
    parts = [f"{m.id}{' (default)' if m.default else ''}{' [beta]' if m.beta else ''}: {', '.join(m.modes)}"]
    if m.sizes or m.pixel_sizes:
        parts.append("size " + "/".join(m.sizes) + (f" or {m.pixel_sizes}" if m.pixel_sizes else ""))
    if m.quality:
        parts.append("quality " + "/".join(m.quality))
    if m.resolution:
        parts.append("resolution " + "/".join(m.resolution))
    if len(m.n) > 1:
        parts.append(f"n {m.n[0]}-{m.n[-1]}")
    if m.max_reference_images:
        parts.append(f"refs ≤{m.max_reference_images}" + (" (required)" if m.reference_images_required else ""))
    if m.mask:
        parts.append("mask")
    if m.extra:
        parts.append("extra " + ", ".join(m.extra))
    return "; ".join(parts)


def model_tools(catalog: Catalog) -> list[ToolSpec]:
    modes = sorted({mode for spec in catalog.models for mode in spec.modes})  # the catalog decides which exist
    # The catalog does not change while the server runs: each answer is built once (3-4 ms of 63 summaries).
    answers: dict[tuple[str | None, bool], tuple[str, dict[str, Any]]] = {}

    async def list_models(
        ctx: Context[Any],
        # Not an enum: 14 modes would cost every client ~0.2 KB of tools/list; a wrong one is named and answered.
        mode: Annotated[str | None, Field(description="Only this mode, e.g. edit, inpaint, upscale.")] = None,
        include_beta: Annotated[bool, Field(description="Include beta-channel models.")] = True,
    ) -> Annotated[CallToolResult, ModelListOutput]:
        """What each model takes (free): sizes, qualities, n, references, extra parameters."""
        if mode is not None and mode not in modes:
            return error_result(
                InvalidRequestError(f"mode: {echo(mode)} is not a mode; use one of: {', '.join(modes)}.")
            )
        deps = deps_of(ctx)
        answer = answers.get((mode, include_beta)) if deps.catalog is catalog else None
        if answer is None:
            default_id = deps.catalog.default.id
            chosen = [
                summarize(spec, default_id)
                for spec in deps.catalog.models
                if (mode is None or mode in spec.modes) and (include_beta or not spec.beta)
            ]
            out = ModelListOutput(default_model=default_id, count=len(chosen), models=chosen, details=FULL_CATALOG)
            text = f"{len(chosen)} model(s); default {default_id}.\n" + "\n".join(_line(m) for m in chosen)
            text += f"\nDefaults, prompt limits and extra parameter types: resource {FULL_CATALOG}/{{model_id}}."
            answer = (text, out.model_dump(mode="json", exclude_defaults=True))  # a false or empty fact: left out
            if deps.catalog is catalog:
                answers[(mode, include_beta)] = answer
        return result(*answer)

    return [ToolSpec.of(list_models, "List image models", READ_ONLY, core=True)]
