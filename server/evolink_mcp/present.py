"""How models are shown to people and agents alike (list_models, `evolink-mcp models`): no MCP here, so the CLI
lists models without loading the SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .catalog import ModelSpec

if TYPE_CHECKING:
    from .journal import TaskRecord


class ModelSummary(BaseModel):
    """What picking a model and its values takes: the facts of the text line, nothing more (the rest of each model's
    limits is in the evolink://models resources)."""

    id: str
    modes: list[str]
    beta: bool = False
    default: bool = False
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


def submitted_line(task: TaskRecord) -> str:
    """What says a task exists, as soon as it does (the first progress message, the log, the terminal)."""
    credits = f", {task.credits:g} credits reserved" if task.credits is not None else ""
    return f"task {task.task_id} submitted ({task.model or 'unknown model'}{credits})"
