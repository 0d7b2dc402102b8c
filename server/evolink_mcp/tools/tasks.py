"""list_tasks: what this server submitted, from the journal, so nothing generated is ever lost."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from ..journal import TaskSummary, entry_line, summarize_entry
from .common import READ_ONLY, ToolSpec, deps_of, result


class TaskListOutput(BaseModel):
    count: int
    journal: str
    tasks: list[TaskSummary]


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
