"""show_images (the studio's gallery, for the model and the view) and studio_tasks (the view's own look-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from ..journal import TaskRecord, entry_line, summarize_entry
from ..tools.common import IMAGE_TYPES, READ_ONLY, Deps, ToolSpec, deps_of, result, saved_image_uri

# Sent to the view as the task's parameters: what was asked, minus what it shows apart and what could carry a
# caller's token (a callback URL).
HIDDEN_PARAMS = frozenset({"prompt", "model", "callback_url"})


class StudioImage(BaseModel):
    path: str
    resource_uri: str | None = None  # readable with resources/read: by name in the output folder, else by task
    mime_type: str | None = None


class StudioTask(BaseModel):
    task_id: str | None = None
    status: str
    progress: float | None = None
    model: str | None = None
    prompt: str | None = None  # whole: the view reuses it for variations
    params: dict[str, Any] = Field(default_factory=dict)
    credits: float | None = None
    images: list[StudioImage] = Field(default_factory=list)
    failure: str | None = None
    created: str


class GalleryOutput(BaseModel):
    count: int
    tasks: list[StudioTask]
    spending_cap: float | None = None  # the server's cap per generate_image call, if set


def studio_task(record: TaskRecord, output_dir: Path) -> StudioTask:
    """A journal record as the studio shows it: whole prompt, parameters, the saved images still on disk."""
    images = []
    for saved in record.saved_paths:
        path = Path(saved)
        if path.is_file():
            uri = saved_image_uri(path, output_dir, record.task_id)  # the link generate_image's result gave
            images.append(StudioImage(path=saved, resource_uri=uri, mime_type=IMAGE_TYPES.get(path.suffix.lstrip("."))))
    failure = f"{record.error_code}: {record.error_message or ''}".strip() if record.error_code else None
    return StudioTask(
        task_id=record.task_id,
        status=record.status or record.state,
        progress=record.progress,
        model=record.model,
        prompt=record.prompt,
        params={k: v for k, v in record.request.items() if k not in HIDDEN_PARAMS},
        credits=record.credits,
        images=images,
        failure=failure,
        created=record.created,
    )


async def _gallery(deps: Deps, records: list[TaskRecord]) -> GalleryOutput:
    output_dir = deps.settings.output_dir
    tasks = await anyio.to_thread.run_sync(lambda: [studio_task(r, output_dir) for r in records])
    return GalleryOutput(count=len(tasks), tasks=tasks, spending_cap=deps.settings.max_credits_per_call)


def studio_tools(resource_uri: str) -> list[ToolSpec]:
    """The studio's tools, bound to its view: show_images for the model and the view, studio_tasks for the view."""

    async def show_images(
        ctx: Context[Any],
        limit: Annotated[int, Field(ge=1, le=60, description="How many recent generations, newest first.")] = 12,
    ) -> Annotated[CallToolResult, GalleryOutput]:
        """Open the image studio over recent generations (free, local): full-size views, variations, edits,
        model comparisons and mask painting."""
        deps = deps_of(ctx)
        records = await deps.service.journal.recent(limit=limit)
        out = await _gallery(deps, records)
        text = f"The studio shows {out.count} recent generation(s)" + (":" if records else "; none yet.")
        text += "".join(f"\n{entry_line(summarize_entry(r))}" for r in records)
        return result(text, out.model_dump(mode="json", exclude_none=True))

    async def studio_tasks(
        ctx: Context[Any],
        task_ids: Annotated[list[str], Field(min_length=1, max_length=60, description="Task ids to describe.")],
    ) -> Annotated[CallToolResult, GalleryOutput]:
        """The studio's tasks by id, as the journal knows them (free, local)."""
        journal = deps_of(ctx).service.journal
        records = [r for r in [await journal.by_task_id(task_id.strip()) for task_id in task_ids] if r is not None]
        out = await _gallery(deps_of(ctx), records)
        return result(f"{out.count} of {len(task_ids)} task(s) found.", out.model_dump(mode="json", exclude_none=True))

    bound = {"ui": {"resourceUri": resource_uri}}
    return [
        ToolSpec.of(show_images, "Show images in the studio", READ_ONLY, meta=bound),
        ToolSpec.of(
            studio_tasks, "Studio tasks", READ_ONLY, meta={"ui": {"resourceUri": resource_uri, "visibility": ["app"]}}
        ),
    ]
