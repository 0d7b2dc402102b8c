"""The one task record, from the journal to the outputs, and how an entry is shown to people and models."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from ..evolink import Task

# Where a submission stands, before and after the task exists.
SUBMITTING = "submitting"  # intent recorded, POST not answered yet
UNKNOWN = "unknown"  # the POST's answer was lost: a task may exist
REFUSED = "refused"  # the POST certainly created nothing
SUBMITTED = "submitted"  # a task id exists: see `status`

SINGLE_TENANT = ""  # the tenant of a server with one Evolink key (stdio, single-tenant HTTP)


def tenant_of(tenant: str | None) -> str:
    """The stored form of a tenant (a keyed hash of a caller's key): None and "" are the single tenant."""
    return tenant or SINGLE_TENANT


@dataclass
class TaskRecord:
    """One submission as the journal knows it, kept up to date by whoever follows the task: the one shape of a
    task from the journal to the outputs (the wire Task stays at the client; see `apply`)."""

    request_key: str | None  # None: a task the journal does not know (submitted elsewhere)
    fingerprint: str
    state: str
    model: str | None
    prompt: str | None
    request: dict[str, Any]
    created_at: float
    updated_at: float
    task_id: str | None = None
    status: str | None = None
    progress: float | None = None
    credits: float | None = None
    result_urls: list[str] = field(default_factory=list)
    saved_paths: list[str] = field(default_factory=list)
    save_error: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    finished: bool = False
    owner: str | None = None  # the process that follows it (SQLite: its owner lock; PostgreSQL: its lease)
    output_dir: str | None = None  # where its images are saved, when not the configured output folder
    tenant: str = SINGLE_TENANT  # whose task it is (see tenant_of)
    estimated_seconds_left: float | None = None  # the last poll's estimate: not stored

    @classmethod
    def of_task(cls, task: Task) -> TaskRecord:
        """A record of a task the journal does not know, for `apply` to fill in from its state upstream."""
        now = time.time()
        plausible = task.created is not None and 0 < task.created < 2**35  # an upstream's word: only a real time
        created = float(task.created) if task.created is not None and plausible else now
        return cls(None, "", SUBMITTED, task.model, None, {}, created, now, task_id=task.id)

    @property
    def is_terminal(self) -> bool:
        """Completed, failed, or any status we do not know (e.g. 'cancelled'): stop polling."""
        return self.status is not None and self.status not in ("pending", "processing")

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    def apply(self, task: Task) -> dict[str, Any]:
        """Take in the task's state upstream; returns the fields the journal should write: those of a status
        change, else none (not every progress tick)."""
        changed = task.status != self.status
        self.status, self.progress = task.status, task.progress
        self.estimated_seconds_left = None if task.is_terminal else task.estimated_seconds_left
        self.model = task.model or self.model
        if task.usage.credits_reserved is not None:
            self.credits = task.usage.credits_reserved
        if not changed:
            return {}
        fields: dict[str, Any] = {"status": task.status, "progress": task.progress}
        if task.error is not None:
            self.error_code, self.error_message = str(task.error.code or ""), task.error.message
            fields.update(error_code=self.error_code, error_message=self.error_message)
        if task.succeeded:
            self.result_urls = fields["result_urls"] = task.image_urls
        elif task.is_terminal:
            self.finished = True  # failed, cancelled, ...: nothing left to fetch
            fields["finished"] = 1
        return fields

    @property
    def created(self) -> str:
        return datetime.fromtimestamp(self.created_at, timezone.utc).isoformat(timespec="seconds")

    @property
    def updated(self) -> str:
        return datetime.fromtimestamp(self.updated_at, timezone.utc).isoformat(timespec="seconds")


# How an entry is shown to people and models (list_tasks, `evolink-mcp tasks`, evolink://tasks/{id}).

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


def summarize_entry(entry: TaskRecord) -> TaskSummary:
    """An entry as list_tasks and `evolink-mcp tasks` show it."""
    prompt = entry.prompt
    if prompt and len(prompt) > PROMPT_PREVIEW:
        prompt = prompt[: PROMPT_PREVIEW - 1] + "…"
    return TaskSummary(
        task_id=entry.task_id,
        client_request_id=entry.request_key or "",
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
