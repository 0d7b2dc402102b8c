"""list_models: the catalog as an agent picks from it; the evolink://models resources hold the rest."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from ..catalog import Catalog, ModelSpec, echo
from ..evolink import InvalidRequestError
from .common import READ_ONLY, ToolSpec, deps_of, error_result, result


class ModelSummary(BaseModel):
    """What picking a model and its values takes: the facts of the text line, nothing more (the rest of each model's
    limits is in the evolink://models resources)."""

    id: str
    modes: list[str]
    beta: bool
    default: bool
    aliases: list[str] = Field(default_factory=list)
    sizes: list[str] = Field(default_factory=list)
    pixel_sizes: str | None = None
    quality: list[str] = Field(default_factory=list)
    resolution: list[str] = Field(default_factory=list)
    n: list[int] = Field(default_factory=list)
    max_reference_images: int = 0
    reference_images_required: bool = False
    mask: bool = False
    extra: list[str] = Field(default_factory=list)


FULL_CATALOG = "evolink://models"


class ModelListOutput(BaseModel):
    default_model: str
    count: int
    models: list[ModelSummary] = Field(description="Per model: id, modes, sizes, qualities, n, references.")
    details: Annotated[str, SkipJsonSchema()]  # the resource with every limit and default of each model


def summarize(spec: ModelSpec, default_id: str) -> ModelSummary:
    """One model as list_models shows it."""
    size, refs = spec.size, spec.image_urls
    return ModelSummary(
        id=spec.id,
        modes=spec.modes,
        beta=spec.beta,
        default=spec.id == default_id,
        aliases=spec.aliases,
        sizes=list(size.ratios) if size and spec.size_field else [],
        pixel_sizes=size.pixel.describe() if size and size.pixel and spec.size_field else None,
        quality=spec.quality_values(),
        resolution=spec.resolution_values() if spec.resolution and spec.resolution.param != "quality" else [],
        n=spec.n.allowed() if spec.n else [1],
        max_reference_images=refs.max_items if refs else 0,
        reference_images_required=bool(refs and refs.required),
        mask=spec.mask_url,
        extra=list(spec.extra_params),
    )


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
        mode: Annotated[
            str | None, Field(description="Only models with this mode, e.g. edit, inpaint, upscale.")
        ] = None,
        include_beta: Annotated[bool, Field(description="Include beta-channel models.")] = True,
    ) -> Annotated[CallToolResult, ModelListOutput]:
        """What each model takes (free): sizes, qualities, n, reference images, extra parameters. Pick
        generate_image values here."""
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
            answer = (text, out.model_dump(mode="json", exclude_none=True))
            if deps.catalog is catalog:
                answers[(mode, include_beta)] = answer
        return result(*answer)

    return [ToolSpec.of(list_models, "List image models", READ_ONLY, core=True)]
