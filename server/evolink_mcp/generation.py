"""The generation workflow shared by the MCP tools and the CLI: check, upload, submit, wait, save."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio

from .catalog import (
    Catalog,
    GenerationRequest,
    ModelSpec,
    Problem,
    build_body,
    errors_only,
    reference_kind,
    resolve_model,
    validate_request,
)
from .evolink import EvolinkClient, InvalidRequestError, Task
from .media import MAX_UPLOAD_BYTES, Preview, SavedImage, check_local_image, save_results, upload_name
from .settings import Settings

log = logging.getLogger(__name__)

RESULT_URL_LIFETIME = timedelta(hours=24)
FIRST_POLL_DELAY = 3.0
MIN_POLL_DELAY = 0.5
MAX_POLL_DELAY = 10.0
OVERDUE_POLL_DELAY = 1.0  # once the estimate has passed, look every second


def next_poll_delay(task: Task, elapsed: float, polls: int) -> float:
    """Seconds until the next poll, from the task's own estimate rather than a fixed tick.

    Sleeps most of the estimated time left, so a task that ends on time is seen within a fraction of
    a second, with a handful of polls instead of one every 3 s.
    """
    left = task.estimated_seconds_left
    if (left is None or left <= 0) and 0 < task.progress < 100 and elapsed > 0:
        left = elapsed * (100 - task.progress) / task.progress
    if left is None:
        return FIRST_POLL_DELAY if polls == 0 else 2.0
    if left <= 0:
        return OVERDUE_POLL_DELAY
    return max(MIN_POLL_DELAY, min(MAX_POLL_DELAY, left * 0.85))


@dataclass
class PreparedRequest:
    """A request that passed every local check; local references still to be uploaded."""

    spec: ModelSpec
    request: GenerationRequest
    warnings: list[Problem]
    local_refs: dict[str, tuple[Path, str]]  # reference string -> (path, mime type)


@dataclass
class TaskRecord:
    """What we know about a task we submitted (its prompt is not in the task's own answers)."""

    task_id: str
    model: str
    prompt: str | None
    parameters: dict[str, Any]
    submitted_at: datetime
    credits_reserved: float | None = None
    idempotency_key: str | None = None


@dataclass
class TaskResults:
    images: list[SavedImage] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    urls_expire_at: datetime | None = None
    save_error: str | None = None
    previews: list[Preview] | None = None  # made on first report, reused after


def _invalid(problems: Sequence[Problem]) -> InvalidRequestError:
    # The agent fixes what the message names: name the parameter where the message does not already.
    lines = [p.message if p.param in p.message else f"{p.param}: {p.message}" for p in problems]
    text = lines[0] if len(lines) == 1 else "The request has problems:\n" + "\n".join(f"- {m}" for m in lines)
    return InvalidRequestError(text, problems=list(problems))


class ImageService:
    """Generation as a user sees it. One per process; shared by every MCP session."""

    def __init__(self, settings: Settings, catalog: Catalog, client: EvolinkClient) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self._records: dict[str, TaskRecord] = {}
        self._results: dict[str, TaskResults] = {}
        self._result_locks: dict[str, anyio.Lock] = {}

    def prepare(
        self, model: str | None, request: GenerationRequest, *, allowed_dirs: Sequence[Path] | None
    ) -> PreparedRequest:
        """Every check that needs no network: model, parameters, local files. Raises InvalidRequestError."""
        spec = resolve_model(self.catalog, model)
        if isinstance(spec, Problem):
            raise _invalid([spec])
        problems = validate_request(spec, request, allow_local_files=True)
        errors = errors_only(problems)
        if errors:
            raise _invalid(errors)
        local_refs: dict[str, tuple[Path, str]] = {}
        limit_mb = spec.image_urls.max_mb if spec.image_urls else None
        max_bytes = int(limit_mb * 1024 * 1024) if limit_mb else MAX_UPLOAD_BYTES
        refs = [("image_urls", r) for r in request.image_urls]
        if request.mask_url:
            refs.append(("mask_url", request.mask_url))
        for param, ref in refs:
            if reference_kind(ref) == "local" and ref not in local_refs:
                local_refs[ref] = check_local_image(
                    ref, param=param, max_bytes=max_bytes, allowed_dirs=allowed_dirs
                )
        return PreparedRequest(spec, request, [p for p in problems if p.severity == "warning"], local_refs)

    async def upload_local_refs(self, prepared: PreparedRequest) -> GenerationRequest:
        """Upload local reference files (streamed) and return the request with their file URLs."""
        urls: dict[str, str] = {}
        by_name: dict[str, str] = {}  # one upload per file, however many ways it is referenced
        for ref, (path, mime) in prepared.local_refs.items():
            name = upload_name(path)
            if name not in by_name:
                by_name[name] = (await self.client.upload_file(path, file_name=name, mime_type=mime)).file_url
            urls[ref] = by_name[name]
        request = prepared.request
        return GenerationRequest(
            prompt=request.prompt,
            size=request.size,
            quality=request.quality,
            resolution=request.resolution,
            n=request.n,
            image_urls=[urls.get(r, r) for r in request.image_urls],
            mask_url=urls.get(request.mask_url, request.mask_url) if request.mask_url else None,
            callback_url=request.callback_url,
            extra=request.extra,
        )

    async def submit(self, prepared: PreparedRequest, *, idempotency_key: str | None = None) -> Task:
        """Upload local references, then submit the (paid) generation once."""
        request = await self.upload_local_refs(prepared) if prepared.local_refs else prepared.request
        body = build_body(prepared.spec, request)
        task = await self.client.submit_generation(body, idempotency_key=idempotency_key)
        self._records[task.id] = TaskRecord(
            task_id=task.id,
            model=prepared.spec.id,
            prompt=request.prompt,
            parameters={k: v for k, v in body.items() if k not in ("model", "prompt")},
            submitted_at=datetime.now(timezone.utc),
            credits_reserved=task.usage.credits_reserved,
            idempotency_key=idempotency_key,
        )
        log.info("submitted task %s (%s)", task.id, prepared.spec.id)
        return task

    def record(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)

    async def wait(
        self,
        task_id: str,
        wait_seconds: float,
        *,
        first: Task | None = None,
        on_update: Callable[[Task], Awaitable[None]] | None = None,
    ) -> Task:
        """Poll until the task ends or `wait_seconds` pass; returns the last state seen."""
        started = time.monotonic()
        deadline = started + wait_seconds
        task = first or await self.client.get_task(task_id)
        if on_update is not None:
            await on_update(task)
        polls = 0
        while not task.is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            delay = next_poll_delay(task, time.monotonic() - started, polls)
            await anyio.sleep(min(delay, remaining))
            task = await self.client.get_task(task_id)
            polls += 1
            if on_update is not None:
                await on_update(task)
        return task

    def known_results(self, task_id: str) -> TaskResults | None:
        return self._results.get(task_id)

    async def save(self, task: Task) -> TaskResults:
        """Download and save a completed task's images once; later calls return the same files."""
        lock = self._result_locks.setdefault(task.id, anyio.Lock())
        async with lock:
            known = self._results.get(task.id)
            if known is not None and known.save_error is None:
                return known
            urls = task.image_urls
            results = TaskResults(urls=urls, urls_expire_at=datetime.now(timezone.utc) + RESULT_URL_LIFETIME)
            record = self._records.get(task.id)
            sidecar: dict[str, Any] = {
                "prompt": record.prompt if record else None,
                "model": task.model or (record.model if record else None),
                "parameters": record.parameters if record else None,
                "credits_reserved": task.usage.credits_reserved,
                "source_urls": urls,
                "urls_expire_at": results.urls_expire_at.isoformat() if results.urls_expire_at else None,
                "submitted_at": record.submitted_at.isoformat() if record else None,
            }
            try:
                self.settings.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                errors = [
                    f"cannot create the output directory {self.settings.output_dir}: {exc.strerror or exc}"
                ]
            else:
                results.images, errors = await save_results(
                    self.client,
                    task.id,
                    urls,
                    self.settings.output_dir,
                    max_bytes=self.settings.max_download_bytes,
                    sidecar=sidecar,
                )
            if errors:
                results.save_error = "; ".join(errors)
                log.warning("saving results of %s failed: %s", task.id, results.save_error)
            self._results[task.id] = results
            return results
