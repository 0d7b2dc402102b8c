"""generate_image and check_task: arguments in, the generation use case (images/service.py), its outcome out."""

import logging
from typing import Annotated, Any

from mcp.server.mcpserver import Context, Resolve
from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink
from pydantic import BaseModel, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from ..catalog import Catalog, GenerationRequest
from ..evolink import task_failure_advice
from ..images import TaskOutcome
from ..images.polling import Update
from ..images.previews import Inline
from ..images.results import TaskResults
from ..journal import TaskRecord
from ..present import submitted_line
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
from .costs import OverCapAnswer, ask_over_cap, generation_request, over_cap_confirmer

log = logging.getLogger(__name__)

# The arguments every tool that makes images shares.
OutputDir = Annotated[str | None, Field(description="Save folder (made if missing).")]
InlineImages = Inline  # preview, full (the file itself, if the result stays under 1 MiB) or none: its enum says it
ClientRequestId = Annotated[str | None, Field(max_length=128, description="Same id, same task: paid once.")]
# `minimum`, not `exclusiveMinimum` (which Gemini refuses): 0 is refused by the use case (images.service.check_cap).
MaxCredits = Annotated[float | None, Field(ge=0, description="Credit cap for this call.")]


class SavedImageOut(BaseModel):
    index: int
    url: str
    path: str | None = None
    resource_uri: str | None = None
    mime_type: str | None = None
    bytes: int | None = None


# In every result and its text, but left out of the published output schema: it costs each client ~0.3 KB of
# tools/list per task tool, for facts that nothing acts on (models never see output schemas).
Informational = SkipJsonSchema()  # type: ignore[type-arg]  # typed as a generic alias; the marker class at run time


class TaskOutput(BaseModel):
    """A task's state; when completed, its saved images."""

    task_id: str
    status: str
    progress: float
    images: list[SavedImageOut] = Field(default_factory=list)
    error: ErrorOut | None = None  # a failed task: an error result that still carries the task
    next_step: str
    estimated_seconds_left: Annotated[float | None, Informational] = None
    save_error: Annotated[str | None, Informational] = None
    model: Annotated[str | None, Informational] = None
    credits_reserved: Annotated[float | None, Informational] = None
    client_request_id: Annotated[str | None, Informational] = None
    followed_in_background: Annotated[bool, Informational] = False
    urls_expire_at: Annotated[str | None, Informational] = None
    warnings: Annotated[list[str], Informational] = Field(default_factory=list)


def _progress_message(record: TaskRecord) -> str:
    left = record.estimated_seconds_left
    eta = f", about {left:.0f} s left" if left and not record.is_terminal else ""
    return f"{record.status} {record.progress or 0:.0f}%{eta}"


def reporter(ctx: Context[Any]) -> Update:
    first = True

    async def report(record: TaskRecord) -> None:
        nonlocal first
        # The first message names the task: a client that stops waiting (a short time-out) still has its id.
        message = f"{submitted_line(record)}; {_progress_message(record)}" if first else _progress_message(record)
        first = False
        try:
            await ctx.report_progress(float(record.progress or 0), 100.0, message)
        except Exception as exc:  # a client that went away must not fail the generation
            log.debug("progress notification failed: %r", exc)

    return report


def render(deps: Deps, outcome: TaskOutcome) -> CallToolResult:
    """A use case's outcome as a tool result: text, previews and resource links, and the structured copy."""
    record = outcome.record
    if record is None:
        assert outcome.error is not None
        return error_result(outcome.error, charged=outcome.charged)
    assert record.task_id is not None
    out = TaskOutput(
        task_id=record.task_id,
        status=record.status or "pending",
        progress=record.progress or 0,
        model=record.model,
        estimated_seconds_left=None if record.is_terminal else record.estimated_seconds_left,
        credits_reserved=record.credits,
        client_request_id=record.request_key,
        followed_in_background=outcome.followed,
        warnings=outcome.warnings,
        next_step="",
    )
    credits = f", {out.credits_reserved:g} credits reserved" if out.credits_reserved is not None else ""
    head = f"Task {out.task_id} ({out.model or 'unknown model'}{credits})"
    blocks: list[ContentBlock] = []
    if outcome.results is not None:
        lines, blocks = _completed(deps, outcome, outcome.results, out, head)
    elif record.status == "failed":
        lines = _failed(record, out, head)
    elif record.is_terminal and outcome.poll_error is None:
        out.next_step = "The task ended without images; submit a new generation if you still need one."
        lines = [f"{head} ended with status {record.status!r} and no images."]
    else:
        lines = _running(outcome, out, head)
    lines.extend(f"Warning: {w}" for w in out.warnings)
    structured = out.model_dump(mode="json", exclude_none=True)
    if out.error is not None:
        return error_text_result("\n".join(lines), structured, blocks)
    return result("\n".join(lines), structured, blocks)


def _completed(
    deps: Deps, outcome: TaskOutcome, results: TaskResults, out: TaskOutput, head: str
) -> tuple[list[str], list[ContentBlock]]:
    """Fills `out.images`; the text lines, and the previews followed by a resource link per saved image."""
    out.urls_expire_at = results.urls_expire_at.isoformat(timespec="seconds") if results.urls_expire_at else None
    out.save_error = results.save_error
    saved_by_index = {image.index: image for image in results.images}
    links: list[ContentBlock] = []
    for index, url in enumerate(results.urls):
        image = saved_by_index.get(index)
        item = SavedImageOut(index=index, url=url)
        if image is not None:
            item.path, item.mime_type, item.bytes = str(image.path), image.mime_type, image.bytes
            item.resource_uri = saved_image_uri(image.path, deps.settings.output_dir, out.task_id)
            if item.resource_uri is not None and deps.settings.resource_links:
                links.append(
                    ResourceLink(
                        type="resource_link",
                        name=image.path.name,
                        uri=item.resource_uri,
                        mime_type=image.mime_type,
                        size=image.bytes,
                    )
                )
        out.images.append(item)
    previews: list[ContentBlock] = [
        ImageContent(type="image", data=p.data_base64, mime_type=p.mime_type) for p in outcome.previews
    ]
    lines = [f"{head} completed with {len(results.urls)} image(s)."]
    lines.extend(f"{item.index + 1}. {item.path or 'not saved'} — {item.url}" for item in out.images)
    lines.extend(results.notes)
    lines.extend(outcome.inline_notes)
    if out.urls_expire_at:
        lines.append(f"The URLs expire at {out.urls_expire_at}; the saved files are yours to keep.")
    if outcome.previews_skipped:
        lines.append(
            f"No inline preview of {outcome.previews_skipped} image(s): the server is busy making others. The "
            f"files are saved; check_task with task_id={out.task_id!r} shows the preview."
        )
    if results.save_error:
        lines.append(f"Saving failed: {results.save_error}. Download the URLs before they expire.")
        out.next_step = "Call check_task again to retry saving, or download the URLs yourself within 24 hours."
    else:
        out.next_step = "Show or use the saved files; to edit one, pass its path in image_urls."
    return lines, [*previews, *links]


def _failed(record: TaskRecord, out: TaskOutput, head: str) -> list[str]:
    code = record.error_code or None
    advice = task_failure_advice(code)
    message = record.error_message or "no reason given"
    # The task was created and its credits reserved; the API documents no refund rule for a failed one.
    out.error = ErrorOut(
        category="task_failed",
        code=code,
        message=message,
        retryable=advice.retryable,
        next_step=advice.next_step,
        charged="unknown",
    )
    out.next_step = advice.next_step
    return [
        f"Error (task_failed): {head} failed: {code or 'unknown_error'}: {message.rstrip('.')}.",
        f"Retryable: {'yes' if advice.retryable else 'no'}. Next step: {advice.next_step}",
        "Charged: unknown — the task was created; whether a failed task is billed is not documented "
        "(the billing page, https://evolink.ai/dashboard/billing, shows it).",
    ]


def _running(outcome: TaskOutcome, out: TaskOutput, head: str) -> list[str]:
    eta = f", about {out.estimated_seconds_left:.0f} s left" if out.estimated_seconds_left else ""
    lines = [f"{head} is {out.status} ({out.progress:.0f}%{eta})."]
    if outcome.poll_error is not None:
        lines.append(f"Following it failed for now ({outcome.poll_error.message}); the task itself is safe.")
    if outcome.followed:
        lines.append("The server keeps following it and saves the images when it completes.")
    out.next_step = f"Call check_task with task_id={out.task_id!r} and wait_seconds=30 to get the images."
    lines.append(out.next_step)
    return lines


async def generate(
    ctx: Context[Any],
    over_cap: OverCapAnswer,
    model: str,
    request: GenerationRequest,
    *,
    wait_seconds: float | None,
    client_request_id: str | None,
    max_credits: float | None,
    output_dir: str | None,
    inline: InlineImages,
) -> CallToolResult:
    """A paid request through the generation use case, as the tool result: generate_image's, and the edit tools'."""
    deps = deps_of(ctx)
    outcome = await deps.service.generate(
        model,
        request,
        allowed_dirs=deps.allowed_dirs,
        request_key=client_request_id,
        max_credits=max_credits,
        wait_seconds=wait_seconds,
        on_update=reporter(ctx),
        confirm_over_cap=over_cap_confirmer(over_cap),
        output_dir=output_dir,
        inline=inline,
    )
    return render(deps, outcome)


def generation_tools(catalog: Catalog, default_wait: float) -> list[ToolSpec]:
    model_ids = catalog.ids

    async def generate_image(
        prompt: Annotated[str, Field(description="What to make, or how to change the references.")],
        ctx: Context[Any],
        # Not an argument: over the spending cap, the user's answer to going over it (MCP elicitation).
        over_cap: Annotated[OverCapAnswer, Resolve(ask_over_cap)],
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
        image_urls: Annotated[list[str] | None, Field(description="Reference images: URLs or local paths.")] = None,
        mask_url: Annotated[str | None, Field(description="PNG mask (URL or path) for inpainting.")] = None,
        callback_url: Annotated[str | None, Field(description="HTTPS URL called when it ends.")] = None,
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
        client_request_id: ClientRequestId = None,
        max_credits: MaxCredits = None,
        output_dir: OutputDir = None,
        inline: InlineImages = "preview",
    ) -> Annotated[CallToolResult, TaskOutput]:
        """Create or edit images (costs credits). Waits, saves and previews them, or returns a task_id for
        check_task."""
        return await generate(
            ctx,
            over_cap,
            model,
            generation_request(prompt, size, quality, resolution, n, image_urls, mask_url, callback_url, extra),
            wait_seconds=wait_seconds,
            client_request_id=client_request_id,
            max_credits=max_credits,
            output_dir=output_dir,
            inline=inline,
        )

    async def check_task(
        task_id: Annotated[str, Field(min_length=1, max_length=256)],
        ctx: Context[Any],
        wait_seconds: Annotated[float, Field(ge=0, le=900, description="Seconds to wait (0 = just look).")] = 0,
        output_dir: OutputDir = None,
        inline: InlineImages = "preview",
    ) -> Annotated[CallToolResult, TaskOutput]:
        """A task's status (free); once done, saves and shows its images."""
        deps = deps_of(ctx)
        outcome = await deps.service.check(
            task_id.strip(),
            wait_seconds,
            on_update=reporter(ctx),
            inline=inline,
            output_dir=output_dir,
            allowed_dirs=deps.allowed_dirs,
        )
        return render(deps, outcome)

    return [
        ToolSpec.of(generate_image, "Generate or edit images", REMOTE_WRITE, core=True, paid=True),
        ToolSpec.of(check_task, "Check a generation task", READ_ONLY_REMOTE, core=True),
    ]
