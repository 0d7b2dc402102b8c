"""Wire models of the Evolink API. Unknown fields are kept, so a new API field never breaks us."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class TaskInfo(Wire):
    can_cancel: bool | None = None
    estimated_time: float | None = None  # seconds left


class Usage(Wire):
    billing_rule: str | None = None
    credits_reserved: float | None = None
    user_group: str | None = None


class TaskError(Wire):
    code: str | int | None = None
    message: str | None = None


class Task(Wire):
    """A generation task, as returned by the submission and by GET /v1/tasks/{id}."""

    id: str
    status: str = "pending"
    progress: float = 0
    model: str | None = None
    created: int | None = None
    object: str | None = None
    type: str | None = None
    task_info: TaskInfo = Field(default_factory=TaskInfo)
    usage: Usage = Field(default_factory=Usage)
    results: list[str] | None = None
    result_data: list[dict[str, Any]] | None = None
    error: TaskError | None = None

    @field_validator("status", "progress", mode="before")
    @classmethod
    def _null_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        # Some answers carry explicit nulls mid-flight; read them as "nothing yet".
        if value is None:
            return "pending" if info.field_name == "status" else 0
        return value

    @property
    def is_terminal(self) -> bool:
        """Completed, failed, or any status we do not know (e.g. 'cancelled'): stop polling."""
        return self.status not in ("pending", "processing")

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    @property
    def image_urls(self) -> list[str]:
        """Result image URLs from both `results` and `result_data`, in order, without duplicates."""
        urls = list(self.results or [])
        for item in self.result_data or []:
            url = item.get("image_url") if isinstance(item, dict) else None
            if isinstance(url, str):
                urls.append(url)
        return list(dict.fromkeys(u for u in urls if isinstance(u, str) and u))

    @property
    def estimated_seconds_left(self) -> float | None:
        return self.task_info.estimated_time


class UploadedFile(Wire):
    file_id: str
    file_url: str
    file_name: str | None = None
    original_name: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    upload_path: str | None = None
    download_url: str | None = None
    upload_time: str | None = None
    expires_at: str | None = None


class FileEntry(Wire):
    file_id: str
    file_name: str | None = None
    file_size: int | None = None
    upload_time: str | None = None


class FileList(Wire):
    total: int = 0
    files: list[FileEntry] = Field(default_factory=list)


class FileQuota(Wire):
    user_group: str | None = None
    used_files: int | None = None
    max_files: int | None = None
    remain_files: int | None = None


class Credits(Wire):
    remaining_credits: float | None = None
    used_credits: float | None = None
    unlimited_credits: bool | None = None  # the API key only: no spending limit of its own


class Balance(Wire):
    """GET /v1/credits `data`: the account's credits (`user`) and this API key's own limit (`token`)."""

    user: Credits = Field(default_factory=Credits)
    token: Credits = Field(default_factory=Credits)
