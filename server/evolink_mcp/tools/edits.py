"""upscale_image and remove_background: the catalog's upscale and background-removal models as tools of their own,
thin adapters over generate_image's use case (the same checks, spending cap, journal, saving and rendering)."""

import re
from typing import Annotated, Any

from mcp.server.mcpserver import Context, Elicit, Resolve
from mcp_types import CallToolResult
from pydantic import Field

from ..catalog import Catalog, GenerationRequest
from ..evolink import InvalidRequestError
from ..journal import Journal, JournalError
from .common import REMOTE_WRITE, ToolSpec, deps_of, error_result
from .costs import OverCapAnswer, SpendOverCap, over_cap_question
from .generation import ClientRequestId, InlineImages, MaxCredits, OutputDir, TaskOutput, generate

UPSCALE = "upscale"
REMOVE_BACKGROUND = "remove-background"
IMAGE_REFERENCE = re.compile(r"^[a-z][a-z0-9+.-]*:|[/\\~]", re.IGNORECASE)  # a URL, data: URL or path; no task id

WaitSeconds = Annotated[float | None, Field(ge=0, le=900, description="Seconds to wait.")]


def models_for(catalog: Catalog, mode: str) -> list[str]:
    """The models that do `mode`, newest last (the catalog's order)."""
    return [spec.id for spec in catalog.models if mode in spec.modes]


def _chosen_model(catalog: Catalog, model: str, mode: str, what: str) -> str:
    """The model's id if it does `mode`; else InvalidRequestError naming the models that do."""
    able = models_for(catalog, mode)
    spec = catalog.get(model)
    if spec is not None and spec.id in able:
        return spec.id
    problem = f"{model!r} is not a model" if spec is None else f"{spec.id} cannot {what}"
    raise InvalidRequestError(
        f"model: {problem}; the models that can: {', '.join(able)}.",
        next_step=f"Leave model out (default {able[-1]}) or pick one of those.",
    )


def edit_tools(catalog: Catalog) -> list[ToolSpec]:
    """The tools of the modes this catalog has a model for."""
    upscalers = models_for(catalog, UPSCALE)
    removers = models_for(catalog, REMOVE_BACKGROUND)
    default_upscaler = upscalers[-1] if upscalers else ""
    default_remover = removers[-1] if removers else ""

    # Over the spending cap, the question to the user (MCP elicitation), from the tool's own arguments.
    async def ask_upscale_over_cap(
        ctx: Context[Any],
        task_id: str,
        index: int = 0,
        creative: bool = False,
        model: str = default_upscaler,
        max_credits: float | None = None,
    ) -> Elicit[SpendOverCap] | None:
        return await over_cap_question(ctx, model, _upscale_request(task_id, index, creative), max_credits)

    async def ask_removal_over_cap(
        ctx: Context[Any], image: str, model: str = default_remover, max_credits: float | None = None
    ) -> Elicit[SpendOverCap] | None:
        return await over_cap_question(ctx, model, _removal_request(image), max_credits)

    async def upscale_image(
        task_id: Annotated[
            str, Field(min_length=1, max_length=256, description="The Midjourney task whose image to upscale.")
        ],
        ctx: Context[Any],
        over_cap: Annotated[OverCapAnswer, Resolve(ask_upscale_over_cap)],
        index: Annotated[int, Field(ge=0, le=3, description="Which of its four images (its index).")] = 0,
        creative: Annotated[bool, Field(description="Creative upscale (adds detail) instead of standard.")] = False,
        model: Annotated[str, Field(json_schema_extra={"enum": upscalers})] = default_upscaler,
        wait_seconds: WaitSeconds = None,
        client_request_id: ClientRequestId = None,
        max_credits: MaxCredits = None,
        output_dir: OutputDir = None,
        inline: InlineImages = "preview",
    ) -> Annotated[CallToolResult, TaskOutput]:
        """Upscale one image of a Midjourney task (costs credits): a new task, waited for, saved and shown like
        generate_image's."""
        deps = deps_of(ctx)
        task_id = task_id.strip()
        try:
            chosen = _chosen_model(deps.catalog, model, UPSCALE, "upscale")
            if IMAGE_REFERENCE.search(task_id):
                raise InvalidRequestError(
                    f"task_id: {task_id[:100]!r} is an image, not a task. No model in the catalog upscales an "
                    f"arbitrary image: {', '.join(upscalers)} upscales an image of a Midjourney task.",
                    next_step="Make the image with a Midjourney model (generate_image with model "
                    f"{_source_family(chosen)}), then pass that task_id here; or generate again at a higher "
                    "size or quality tier.",
                )
            await _check_source_task(deps.service.journal, task_id, chosen)
        except InvalidRequestError as exc:
            return error_result(exc, charged="no")
        return await generate(
            ctx,
            over_cap,
            chosen,
            _upscale_request(task_id, index, creative),
            wait_seconds=wait_seconds,
            client_request_id=client_request_id,
            max_credits=max_credits,
            output_dir=output_dir,
            inline=inline,
        )

    async def remove_background(
        image: Annotated[str, Field(description="The image: a URL or a local path (uploaded).")],
        ctx: Context[Any],
        over_cap: Annotated[OverCapAnswer, Resolve(ask_removal_over_cap)],
        model: Annotated[str, Field(json_schema_extra={"enum": removers})] = default_remover,
        wait_seconds: WaitSeconds = None,
        client_request_id: ClientRequestId = None,
        max_credits: MaxCredits = None,
        output_dir: OutputDir = None,
        inline: InlineImages = "preview",
    ) -> Annotated[CallToolResult, TaskOutput]:
        """Cut the subject out of an image onto a transparent background (costs credits); waited for, saved and
        shown like generate_image's."""
        deps = deps_of(ctx)
        try:
            chosen = _chosen_model(deps.catalog, model, REMOVE_BACKGROUND, "remove backgrounds")
        except InvalidRequestError as exc:
            return error_result(exc, charged="no")
        return await generate(
            ctx,
            over_cap,
            chosen,
            _removal_request(image),
            wait_seconds=wait_seconds,
            client_request_id=client_request_id,
            max_credits=max_credits,
            output_dir=output_dir,
            inline=inline,
        )

    specs = []
    if upscalers:
        specs.append(ToolSpec.of(upscale_image, "Upscale an image", REMOTE_WRITE, paid=True))
    if removers:
        specs.append(ToolSpec.of(remove_background, "Remove an image's background", REMOTE_WRITE, paid=True))
    return specs


def _upscale_request(task_id: str, index: int, creative: bool) -> GenerationRequest:
    params = {"task_id": task_id.strip(), "image_number": index, "type": "creative" if creative else "standard"}
    return GenerationRequest(extra={"model_params": params})


def _removal_request(image: str) -> GenerationRequest:
    return GenerationRequest(image_urls=[image.strip()])


def _source_family(upscaler: str) -> str:
    """The model whose tasks an upscaler takes: mj-v7-upscale upscales mj-v7's."""
    return upscaler.removesuffix("-upscale")


async def _check_source_task(journal: Journal, task_id: str, upscaler: str) -> None:
    """Refuse, before anything is paid, a task this server knows was made by a model the upscaler cannot take."""
    try:
        record = await journal.by_task_id(task_id)
    except JournalError:  # the journal is a courtesy here: upstream has the last word
        return
    family = _source_family(upscaler)
    if record is not None and record.model and not record.model.startswith(family):
        raise InvalidRequestError(
            f"task_id: {task_id} was made by {record.model}; {upscaler} upscales only {family} tasks.",
            next_step=f"Generate with model {family} and upscale that task, or generate again at a higher size "
            "or quality tier.",
        )
