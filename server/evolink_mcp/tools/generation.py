"""generate_image and check_task: submit, follow with progress, save results, show previews."""

import logging
import time
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink
from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from ..catalog import Catalog, GenerationRequest
from ..evolink import EvolinkError, InvalidRequestError, Task, task_failure_advice
from ..generation import TaskResults, task_from_entry
from ..journal import Entry, JournalError
from ..media import make_previews
from .common import (
    READ_ONLY_REMOTE,
    REMOTE_WRITE,
    Deps,
    ErrorOut,
    ToolSpec,
    deps_of,
    error_result,
    error_text_result,
    result,
    saved_image_uri,
)

log = logging.getLogger(__name__)


class SavedImageOut(BaseModel):
    index: int
    url: str
    path: str | None = None
    resource_uri: str | None = None
    mime_type: str | None = None
    bytes: int | None = None


# In every result and its text, but left out of the published output schema: it costs each client ~0.3 KB of
# tools/list per task tool, for facts that nothing acts on (models never see output schemas).
Informational = SkipJsonSchema()


class TaskOutput(BaseModel):
    """A task's state; when completed, its saved images."""

    task_id: str
    status: str
    progress: float
    estimated_seconds_left: float | None = None
    images: list[SavedImageOut] = Field(default_factory=list)
    save_error: str | None = None
    error: ErrorOut | None = None  # a failed task: an error result that still carries the task
    next_step: str
    model: Annotated[str | None, Informational] = None
    credits_reserved: Annotated[float | None, Informational] = None
    client_request_id: Annotated[str | None, Informational] = None
    followed_in_background: Annotated[bool, Informational] = False
    urls_expire_at: Annotated[str | None, Informational] = None
    warnings: Annotated[list[str], Informational] = Field(default_factory=list)


def _progress_message(task: Task) -> str:
    left = task.estimated_seconds_left
    eta = f", about {left:.0f} s left" if left and not task.is_terminal else ""
    return f"{task.status} {task.progress:.0f}%{eta}"


async def _report(ctx: Context[Any], task: Task) -> None:
    try:
        await ctx.report_progress(float(task.progress), 100.0, _progress_message(task))
    except Exception as exc:  # a client that went away must not fail the generation
        log.debug("progress notification failed: %r", exc)


async def _previews_for(deps: Deps, results: TaskResults) -> tuple[list[ContentBlock], int]:
    """The preview blocks, and how many were left out because the server was saturated."""
    previews, skipped = results.previews, 0
    if previews is None:
        made = await make_previews(results.images, deps.settings.preview_max_bytes)
        previews, skipped = made.made, made.skipped_busy
        if not skipped:  # else the next look tries again; a preview that failed would only fail again
            results.previews = previews
            results.notes.extend(made.missing)
    return [ImageContent(type="image", data=p.data_base64, mime_type=p.mime_type) for p in previews], skipped


async def task_result(
    deps: Deps,
    task: Task,
    *,
    warnings: list[str] | None = None,
    poll_error: EvolinkError | None = None,
    entry: Entry | None = None,
    save_deadline: float | None = None,
) -> CallToolResult:
    """The result for a task in any state; a completed task's images are saved (once) first.

    `entry`: the task's journal entry when the caller has just read it (its fields used here do not change).
    """
    if entry is None:
        try:
            entry = await deps.service.entry(task.id)
        except JournalError:  # what the journal adds is optional here: never lose the task over it
            entry = None
    out = TaskOutput(
        task_id=task.id,
        status=task.status,
        progress=task.progress,
        model=task.model or (entry.model if entry else None),
        estimated_seconds_left=None if task.is_terminal else task.estimated_seconds_left,
        credits_reserved=task.usage.credits_reserved
        if task.usage.credits_reserved is not None
        else (entry.credits if entry else None),
        client_request_id=entry.request_key if entry else None,
        warnings=list(warnings or []),
        next_step="",
    )
    credits = f", {out.credits_reserved:g} credits reserved" if out.credits_reserved is not None else ""
    head = f"Task {task.id} ({out.model or 'unknown model'}{credits})"
    blocks: list[ContentBlock] = []
    lines: list[str] = []
    if task.succeeded:
        results = await deps.service.save(task, deadline=save_deadline)
        out.urls_expire_at = results.urls_expire_at.isoformat(timespec="seconds") if results.urls_expire_at else None
        out.save_error = results.save_error
        saved_by_index = {image.index: image for image in results.images}
        for index, url in enumerate(results.urls):
            image = saved_by_index.get(index)
            item = SavedImageOut(index=index, url=url)
            if image is not None:
                item.path, item.mime_type, item.bytes = str(image.path), image.mime_type, image.bytes
                item.resource_uri = saved_image_uri(image.path, deps.settings.output_dir)
                if item.resource_uri is not None and deps.settings.resource_links:
                    blocks.append(
                        ResourceLink(
                            type="resource_link",
                            name=image.path.name,
                            uri=item.resource_uri,
                            mime_type=image.mime_type,
                            size=image.bytes,
                        )
                    )
            out.images.append(item)
        previews, skipped = await _previews_for(deps, results)
        blocks = [*previews, *blocks]
        lines.append(f"{head} completed with {len(results.urls)} image(s).")
        for item in out.images:
            where = item.path or "not saved"
            lines.append(f"{item.index + 1}. {where} — {item.url}")
        lines.extend(results.notes)
        if out.urls_expire_at:
            lines.append(f"The URLs expire at {out.urls_expire_at}; the saved files are yours to keep.")
        if skipped:
            lines.append(
                f"No inline preview of {skipped} image(s): the server is busy making others. The files are saved; "
                f"check_task with task_id={task.id!r} shows the preview."
            )
        if results.save_error:
            deps.service.follow_in_background(task.id)  # keeps trying to save on its own, a few times
            lines.append(f"Saving failed: {results.save_error}. Download the URLs before they expire.")
            out.next_step = "Call check_task again to retry saving, or download the URLs yourself within 24 hours."
        else:
            out.next_step = "Show or use the saved files; to edit one, pass its path in image_urls."
    elif task.status == "failed":
        code = None if task.error is None or task.error.code is None else str(task.error.code)
        advice = task_failure_advice(code)
        message = task.error.message if task.error and task.error.message else "no reason given"
        out.error = ErrorOut(
            category="task_failed", code=code, message=message, retryable=advice.retryable, next_step=advice.next_step
        )
        out.next_step = advice.next_step
        lines.append(f"Error (task_failed): {head} failed: {code or 'unknown_error'}: {message.rstrip('.')}.")
        lines.append(f"Retryable: {'yes' if advice.retryable else 'no'}. Next step: {advice.next_step}")
    elif task.is_terminal:
        out.next_step = "The task ended without images; submit a new generation if you still need one."
        lines.append(f"{head} ended with status {task.status!r} and no images.")
    else:
        eta = f", about {out.estimated_seconds_left:.0f} s left" if out.estimated_seconds_left else ""
        lines.append(f"{head} is {task.status} ({task.progress:.0f}%{eta}).")
        if poll_error is not None:
            lines.append(f"Following it failed for now ({poll_error.message}); the task itself is safe.")
        if deps.service.is_followed(task.id):
            out.followed_in_background = True
            lines.append("The server keeps following it and saves the images when it completes.")
        out.next_step = f"Call check_task with task_id={task.id!r} and wait_seconds=30 to get the images."
        lines.append(out.next_step)
    lines.extend(f"Warning: {w}" for w in out.warnings)
    structured = out.model_dump(mode="json", exclude_none=True)
    if out.error is not None:
        return error_text_result("\n".join(lines), structured, blocks)
    return result("\n".join(lines), structured, blocks)


async def follow(
    deps: Deps,
    ctx: Context[Any],
    task: Task,
    wait_seconds: float,
    warnings: list[str] | None = None,
    *,
    entry: Entry | None = None,
) -> CallToolResult:
    """Wait up to `wait_seconds` with progress notifications, then report the task."""
    # Its result downloads too end with the wait (given at least min_save_seconds): a slow one is left to the
    # background follower rather than hold the call.
    save_deadline = time.monotonic() + max(wait_seconds, deps.settings.min_save_seconds)
    poll_error: EvolinkError | None = None
    try:
        if wait_seconds > 0 and not task.is_terminal:
            try:
                task = await deps.service.wait(task.id, wait_seconds, first=task, on_update=lambda t: _report(ctx, t))
            except EvolinkError as exc:  # never lose the task id over a failed poll
                poll_error = exc
        if not task.is_terminal:
            deps.service.follow_in_background(task.id)
        return await task_result(
            deps, task, warnings=warnings, poll_error=poll_error, entry=entry, save_deadline=save_deadline
        )
    except anyio.get_cancelled_exc_class():
        # The client stopped waiting; the images are paid for all the same: the server saves them.
        deps.service.follow_in_background(task.id)
        raise


def generation_tools(catalog: Catalog, default_wait: float) -> list[ToolSpec]:
    model_ids = catalog.ids

    async def generate_image(
        prompt: Annotated[str, Field(description="What to create, or how to change the reference images.")],
        ctx: Context[Any],
        model: Annotated[
            str,
            Field(
                description="See list_models.",
                json_schema_extra={"enum": model_ids},
            ),
        ] = catalog.default.id,
        size: Annotated[
            str | None,
            Field(description="Aspect ratio ('16:9', 'auto') or 'WxH', per model."),
        ] = None,
        quality: Annotated[str | None, Field(description="low/medium/high or 1K/2K/4K, per model.")] = None,
        resolution: Annotated[str | None, Field(description="Pixel tier, for models with both (gpt-image-2).")] = None,
        n: Annotated[int | None, Field(description="Images to make, per model.")] = None,
        image_urls: Annotated[
            list[str] | None, Field(description="Reference images: URLs or local paths (uploaded).")
        ] = None,
        mask_url: Annotated[str | None, Field(description="PNG mask (URL or path) for inpainting.")] = None,
        callback_url: Annotated[str | None, Field(description="HTTPS URL notified when the task ends.")] = None,
        # Published as a string (a JSON object): strict tool converters and Gemini refuse an open object. The SDK
        # parses a JSON string into the dict; an object is still taken as is.
        extra: Annotated[
            dict[str, Any] | None,
            WithJsonSchema({"type": "string"}),
            Field(description='JSON object, e.g. {"model_params.thinking_level":"high"}.'),
        ] = None,
        wait_seconds: Annotated[
            float | None,
            Field(ge=0, le=900, description=f"Seconds to wait (default {default_wait:g})."),
        ] = None,
        client_request_id: Annotated[
            str | None, Field(max_length=128, description="Same id, same task: never charged twice.")
        ] = None,
        # `minimum`, not `exclusiveMinimum` (which Gemini refuses): 0 is refused below.
        max_credits: Annotated[
            float | None, Field(ge=0, description="Refuse if it would reserve more credits.")
        ] = None,
    ) -> Annotated[CallToolResult, TaskOutput]:
        """Create or edit images (costs credits). Waits, saves and previews them, or returns a task_id for
        check_task."""
        deps = deps_of(ctx)
        if max_credits == 0:
            return error_result(
                InvalidRequestError("max_credits must be above 0 (got 0); leave it out for no cap."), charged="no"
            )
        request = GenerationRequest(
            prompt=prompt,
            size=size,
            quality=quality,
            resolution=resolution,
            n=n,
            image_urls=list(image_urls or []),
            mask_url=mask_url,
            callback_url=callback_url,
            extra=dict(extra or {}),
        )
        caps = [c for c in (max_credits, deps.settings.max_credits_per_call) if c is not None]
        cap = min(caps) if caps else None
        try:
            prepared = deps.service.prepare(model, request, allowed_dirs=deps.allowed_dirs)
            await deps.service.check_spending(prepared, cap)
        except InvalidRequestError as exc:
            return error_result(exc, charged="no")
        try:
            submission = await deps.service.submit(prepared, request_key=client_request_id)
        except EvolinkError as exc:
            return error_result(exc, charged=exc.charged)
        task = submission.task
        warnings = [p.message for p in prepared.warnings]
        if submission.reused:
            warnings.append(f"client_request_id {client_request_id!r} already has this task: nothing new was sent.")
        if submission.note:
            warnings.append(submission.note)
        reserved = task.usage.credits_reserved
        if cap is not None and reserved is not None and reserved > cap:
            warnings.append(
                f"This task reserved {reserved:g} credits, over your cap of {cap:g}. Evolink has no way to cancel "
                "a task, so it will run; lower quality or n next time."
            )
        wait = deps.settings.wait_seconds if wait_seconds is None else wait_seconds
        return await follow(deps, ctx, task, wait, warnings)

    async def check_task(
        task_id: Annotated[str, Field(min_length=1, max_length=256, description="The id generate_image returned.")],
        ctx: Context[Any],
        wait_seconds: Annotated[
            float, Field(ge=0, le=900, description="Seconds to wait for it to end (0 = just look).")
        ] = 0,
    ) -> Annotated[CallToolResult, TaskOutput]:
        """A task's status and ETA (free). When done, saves and shows its images; if failed, says why."""
        deps = deps_of(ctx)
        task_id = task_id.strip()
        entry: Entry | None = None  # read once: each journal read is a worker-thread round trip
        try:
            entry = await deps.service.entry(task_id)
            if entry is not None and deps.service.known_results(task_id, entry) is not None:
                # saved already: no need to ask upstream
                return await task_result(deps, task_from_entry(entry), entry=entry)
        except JournalError as exc:
            log.warning("check_task %s: %s; asking upstream", task_id, exc.message)
        try:
            task = await deps.service.get_task(task_id, known=entry)
        except EvolinkError as exc:
            return error_result(exc)
        return await follow(deps, ctx, task, wait_seconds, entry=entry)

    return [
        ToolSpec.of(generate_image, "Generate or edit images", REMOTE_WRITE, core=True, paid=True),
        ToolSpec.of(check_task, "Check a generation task", READ_ONLY_REMOTE, core=True),
    ]
