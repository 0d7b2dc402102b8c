"""list_tasks: what this server submitted, from the journal, so nothing generated is ever lost."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from ..journal import Entry
from .common import READ_ONLY, ToolSpec, deps_of, result

PROMPT_PREVIEW = 200


class TaskSummary(BaseModel):
    task_id: str | None = None
    client_request_id: str
    state: str
    status: str | None = None
    progress: float | None = None
    model: str | None = None
    prompt: str | None = None
    credits_reserved: float | None = None
    saved_paths: list[str] = Field(default_factory=list)
    result_urls: list[str] = Field(default_factory=list)
    save_error: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created: str
    updated: str


class TaskListOutput(BaseModel):
    count: int
    journal: str
    tasks: list[TaskSummary]


def summarize_entry(entry: Entry) -> TaskSummary:
    prompt = entry.prompt
    if prompt and len(prompt) > PROMPT_PREVIEW:
        prompt = prompt[: PROMPT_PREVIEW - 1] + "…"
    return TaskSummary(
        task_id=entry.task_id,
        client_request_id=entry.request_key,
        state=entry.state,
        status=entry.status,
        progress=entry.progress,
        model=entry.model,
        prompt=prompt,
        credits_reserved=entry.credits,
        saved_paths=entry.saved_paths,
        result_urls=entry.result_urls,
        save_error=entry.save_error,
        error_code=entry.error_code or None,
        error_message=entry.error_message,
        created=entry.created,
        updated=entry.updated,
    )


def entry_line(task: TaskSummary) -> str:
    """One task in a line, for people and models alike."""
    what = task.status or task.state
    credits = f", {task.credits_reserved:g} credits" if task.credits_reserved is not None else ""
    line = f"{task.created} {task.task_id or '(no task id: ' + task.state + ')'} {what} {task.model or ''}{credits}"
    if task.prompt:
        line += f" — {task.prompt[:60]!r}"
    if task.saved_paths:
        line += f"\n    saved: {', '.join(task.saved_paths)}"
    if task.error_code:
        line += f"\n    error: {task.error_code}: {task.error_message or ''}"
    return line


def task_tools() -> list[ToolSpec]:
    async def list_tasks(
        ctx: Context[Any],
        status: Annotated[
            str | None,
            Field(description="Only tasks with this status: pending, processing, completed, failed, unknown."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="How many, newest first.")] = 20,
    ) -> Annotated[CallToolResult, TaskListOutput]:
        """Recent generations this server submitted, newest first: status, prompt, model, credits and saved
        files (free, local). Use to find an earlier image or a task_id."""
        deps = deps_of(ctx)
        journal = deps.service.journal
        tasks = [summarize_entry(e) for e in await journal.recent(status=status, limit=limit)]
        out = TaskListOutput(count=len(tasks), journal=journal.location, tasks=tasks)
        text = f"{len(tasks)} task(s)" + (f" with status {status!r}" if status else "") + ":"
        text += "".join(f"\n{entry_line(t)}" for t in tasks) if tasks else " none yet."
        return result(text, out.model_dump(mode="json", exclude_none=True))

    return [ToolSpec.of(list_tasks, "List recent generations", READ_ONLY)]
