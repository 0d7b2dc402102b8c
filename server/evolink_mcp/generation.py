"""The generation workflow shared by the MCP tools and the CLI: check, upload, submit, wait, save."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import mimetypes
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

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
from .evolink import (
    EvolinkClient,
    EvolinkError,
    InvalidRequestError,
    NotFoundError,
    SpendingCapError,
    SubmissionOutcomeUnknownError,
    Task,
)
from .journal import REFUSED, SUBMITTING, UNKNOWN, Entry, Journal, JournalError
from .media import (
    MAX_UPLOAD_BYTES,
    Preview,
    SavedImage,
    already_saved,
    check_local_image,
    clear_staging,
    reopen_local_image,
    save_results,
    upload_name,
)
from .settings import Settings

log = logging.getLogger(__name__)

RESULT_URL_LIFETIME = timedelta(hours=24)
FOLLOW_LIMIT_SECONDS = 20 * 60  # image tasks take seconds to a few minutes; past this, stop looking
MAX_BACKGROUND_FOLLOWS = 16
BACKGROUND_RETRY_SECONDS = 10.0
RESUME_AFTER_SECONDS = 1.0
MAX_BACKGROUND_SAVES = 5  # then the journal keeps the URLs for check_task or the next start-up
# Result URLs saved for a model the catalog gives no n range (Midjourney's four, a layerize's layers): more than
# any model documents; an upstream answering thousands must not start thousands of downloads.
MAX_RESULT_URLS = 16
FIRST_POLL_DELAY = 3.0
MIN_POLL_DELAY = 0.5
MAX_POLL_DELAY = 10.0
OVERDUE_POLL_DELAY = 1.0  # once the estimate has passed, look every second
NEAR_END_POLL_DELAY = 0.2  # the shortest sleep, for a task whose progress says it is about to end


def next_poll_delay(task: Task, elapsed: float, polls: int) -> float:
    """Seconds until the next poll, from the task's own estimate rather than a fixed tick.

    Sleeps most of the estimated time left, and in the last second until just after the expected end, so a
    task that ends on time is seen within a fraction of a second, with a handful of polls instead of one
    every 3 s.
    """
    left = task.estimated_seconds_left
    by_progress = elapsed * (100 - task.progress) / task.progress if 0 < task.progress < 100 and elapsed > 0 else None
    # The estimate is in whole seconds: once it is past or down to its last one, progress tells the time finer.
    if by_progress is not None and (left is None or left <= 1):
        left = by_progress
    if left is None:
        return FIRST_POLL_DELAY if polls == 0 else 2.0
    if left <= 0:
        return OVERDUE_POLL_DELAY
    if left <= 1:
        return max(NEAR_END_POLL_DELAY, left + 0.05)
    return max(MIN_POLL_DELAY, min(MAX_POLL_DELAY, left * 0.85))


@dataclass
class PreparedRequest:
    """A request that passed every local check; local references still to be uploaded."""

    spec: ModelSpec
    request: GenerationRequest
    warnings: list[Problem]
    local_refs: dict[str, tuple[Path, str]]  # reference string -> (path, mime type)


@dataclass
class TaskResults:
    images: list[SavedImage] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    urls_expire_at: datetime | None = None
    save_error: str | None = None
    previews: list[Preview] | None = None  # made on first report, reused after
    notes: list[str] = field(default_factory=list)  # reported with the results: URLs left out, previews missing
    named_at: datetime | None = None  # the time in the file names: a retry saves under the same names


@dataclass
class Submission:
    """A submitted generation: its task, the idempotency key it went under, and how it came about."""

    task: Task
    request_key: str
    reused: bool = False  # the journal already had this request's task: nothing was sent
    note: str | None = None


def task_from_entry(entry: Entry) -> Task:
    """The last state the journal saw of a task, as a Task."""
    assert entry.task_id is not None
    error = {"code": entry.error_code, "message": entry.error_message} if entry.error_code else None
    return Task.model_validate(
        {
            "id": entry.task_id,
            "status": entry.status or "pending",
            "progress": entry.progress or 0,
            "model": entry.model,
            "usage": {"credits_reserved": entry.credits},
            "results": entry.result_urls or None,
            "error": error,
        }
    )


def _invalid(problems: Sequence[Problem]) -> InvalidRequestError:
    # The agent fixes what the message names: name the parameter where the message does not already.
    lines = [p.message if p.param in p.message else f"{p.param}: {p.message}" for p in problems]
    text = lines[0] if len(lines) == 1 else "The request has problems:\n" + "\n".join(f"- {m}" for m in lines)
    return InvalidRequestError(text, problems=list(problems))


def _tier(request: dict[str, Any]) -> tuple[Any, Any]:
    return request.get("quality"), request.get("resolution")


class ImageService:
    """Generation as a user sees it. One per process; shared by every MCP session.

    Every submission goes through the journal (intent before the POST, then task id, status, results),
    so a lost answer, a cancelled call or a restart never loses a task, and a client_request_id
    never pays twice.
    """

    def __init__(
        self, settings: Settings, catalog: Catalog, client: EvolinkClient, journal: Journal | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self.journal = journal or Journal(None)
        self._results: dict[str, TaskResults] = {}
        self._result_locks: dict[str, anyio.Lock] = {}
        self._background: TaskGroup | None = None
        self._follow_slots: anyio.Semaphore | None = None
        self._followed: set[str] = set()

    # Checking and submitting

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
                local_refs[ref] = check_local_image(ref, param=param, max_bytes=max_bytes, allowed_dirs=allowed_dirs)
        return PreparedRequest(spec, request, [p for p in problems if p.severity == "warning"], local_refs)

    async def estimate_credits(self, prepared: PreparedRequest) -> float | None:
        """Credits this request will likely reserve, from what the same model and tier reserved before."""
        wanted = build_body(prepared.spec, prepared.request)
        count = wanted.get("n") or 1
        for request, credits in await self.journal.credits_seen(prepared.spec.id):
            if _tier(request) == _tier(wanted):
                return credits / (request.get("n") or 1) * count
        return None

    async def check_spending(self, prepared: PreparedRequest, cap: float | None) -> float | None:
        """Refuse (before anything is sent) a request whose estimated cost exceeds `cap`; returns the estimate."""
        if cap is None:
            return None
        estimate = await self.estimate_credits(prepared)
        if estimate is not None and estimate > cap:
            raise SpendingCapError(
                f"This request would reserve about {estimate:g} credits ({prepared.spec.id}, judged by earlier "
                f"requests of the same model and tier), over the cap of {cap:g}.",
                next_step="Raise max_credits (or EVOLINK_MAX_CREDITS_PER_CALL), or pick a cheaper model, "
                "a lower quality tier or fewer images.",
            )
        return estimate

    async def upload_local_refs(self, prepared: PreparedRequest) -> GenerationRequest:
        """Upload local reference files (streamed) and return the request with their file URLs."""
        urls: dict[str, str] = {}
        by_name: dict[str, str] = {}  # one upload per file, however many ways it is referenced
        for ref, (path, mime) in prepared.local_refs.items():
            name = upload_name(path)
            if name not in by_name:
                # Opened again as the very file prepare() checked: a path swapped since is refused, not sent.
                reopen = functools.partial(reopen_local_image, path, param="image_urls")
                with await anyio.to_thread.run_sync(reopen) as image:
                    uploaded = await self.client.upload_file(image.file, file_name=name, mime_type=mime)
                by_name[name] = uploaded.file_url
            urls[ref] = by_name[name]
        request = prepared.request
        mask = urls.get(request.mask_url, request.mask_url) if request.mask_url else None
        return replace(request, image_urls=[urls.get(r, r) for r in request.image_urls], mask_url=mask)

    @staticmethod
    def fingerprint(prepared: PreparedRequest) -> str:
        """What makes two requests the same request: the model and every parameter as given."""
        text = json.dumps({"model": prepared.spec.id, **asdict(prepared.request)}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    async def submit(self, prepared: PreparedRequest, *, request_key: str | None = None) -> Submission:
        """Submit the (paid) generation once per request key; a key seen before returns its task instead."""
        key = request_key or str(uuid.uuid4())
        fingerprint = self.fingerprint(prepared)
        note = None
        if request_key is not None:
            entry = await self.journal.by_request_key(request_key)
            if entry is not None:
                if entry.fingerprint != fingerprint:
                    raise InvalidRequestError(
                        f"client_request_id {request_key!r} was already used for a different request.",
                        next_step="Use a new client_request_id for a new request, or repeat the original "
                        "request exactly to get its task.",
                    )
                if entry.task_id is not None:
                    log.info("request %s already has task %s: nothing sent", request_key, entry.task_id)
                    return Submission(task_from_entry(entry), key, reused=True)
                if entry.state in (SUBMITTING, UNKNOWN):
                    note = (
                        "An earlier attempt with this client_request_id lost its answer and no task was found "
                        "for it; it was sent again with the same idempotency key."
                    )
        request = await self.upload_local_refs(prepared) if prepared.local_refs else prepared.request
        body = build_body(prepared.spec, request)
        # Once the intent is recorded, finish the POST and record its answer even if the caller cancels.
        with anyio.CancelScope(shield=True):
            await self.journal.record_intent(
                key,
                fingerprint,
                prepared.spec.id,
                request.prompt,
                {k: v for k, v in body.items() if k not in ("prompt", "model")},
            )
            try:
                task = await self.client.submit_generation(body, idempotency_key=key)
            except SubmissionOutcomeUnknownError:
                await self.journal.record_outcome(key, UNKNOWN)
                raise
            except EvolinkError:
                await self.journal.record_outcome(key, REFUSED)
                raise
            await self.journal.record_submitted(key, task.id, task.status, task.usage.credits_reserved)
            if task.is_terminal:  # ended at once (failed, say): no poll will record how
                await self._seen(task, None)
        log.info("submitted task %s (%s)", task.id, prepared.spec.id)
        return Submission(task, key, note=note)

    async def entry(self, task_id: str) -> Entry | None:
        # Quick: check_task starts here, and a thread round trip is a good part of its latency. save() and the
        # followers keep the thread: a read there that hardly yields lets a cancelled call start a download.
        return await self.journal.by_task_id(task_id, quick=True)

    # Following tasks

    async def _seen(self, task: Task, previous: Task | None) -> None:
        """Journal a status change (not every progress tick)."""
        if previous is not None and previous.status == task.status:
            return
        extra: dict[str, Any] = {}
        if task.error is not None:
            extra.update(error_code=str(task.error.code or ""), error_message=task.error.message)
        if task.succeeded:
            extra["result_urls"] = task.image_urls
        elif task.is_terminal:
            extra["finished"] = 1  # failed, cancelled, ...: nothing left to fetch
        await self.journal.record_status(task.id, task.status, task.progress, **extra)

    async def get_task(self, task_id: str, *, known: Entry | None = None) -> Task:
        """The task's state upstream, journaled; with the journal's `known` entry, only a change is written."""
        task = await self.client.get_task(task_id)
        await self._seen(task, task_from_entry(known) if known is not None and known.status else None)
        return task

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
        await self._seen(task, None if first is None else first)
        if on_update is not None:
            await on_update(task)
        polls = 0
        while not task.is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            delay = next_poll_delay(task, time.monotonic() - started, polls)
            await anyio.sleep(min(delay, remaining))
            previous, task = task, await self.client.get_task(task_id)
            polls += 1
            await self._seen(task, previous)
            if on_update is not None:
                await on_update(task)
        return task

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow tasks in the background while this is entered; resumes the journal's unfinished tasks."""
        async with anyio.create_task_group() as group:
            self._background = group
            self._follow_slots = anyio.Semaphore(MAX_BACKGROUND_FOLLOWS)
            group.start_soon(self._resume_soon, time.time())
            try:
                yield
            finally:
                self._background = None
                group.cancel_scope.cancel()

    async def _resume_soon(self, started: float) -> None:
        # Not while a client is still being answered its handshake: the journal's import and disk work
        # (a worker thread) would compete with the start-up a user waits for; the resumed tasks can wait.
        await anyio.sleep(RESUME_AFTER_SECONDS)
        await self.resume(before=started)

    async def resume(self, before: float) -> None:
        """Pick up what stopped processes left (recorded before `before`, when this one started): unknown
        outcomes marked, unfinished tasks followed. What this process submits since is its own to follow, and
        what another running process submitted is that one's. Partial downloads killed processes left go too."""
        try:
            cleared = await anyio.to_thread.run_sync(clear_staging, self.settings.output_dir)
        except OSError as exc:
            log.warning("could not look for partial downloads in %s: %s", self.settings.output_dir, exc)
        else:
            if cleared:
                log.info("removed the partial downloads of %d save(s) that stopped processes left", cleared)
        # A journal another process holds must not take the server down: say so, and serve on.
        try:
            interrupted = await self.journal.mark_interrupted(before)
        except JournalError as exc:
            log.warning("could not mark interrupted submissions: %s", exc.message)
        else:
            if interrupted:
                log.warning("%d submission(s) were interrupted mid-request; their outcome is unknown", interrupted)
        try:
            adopted, running = await self.journal.adopt_unfinished(
                time.time() - RESULT_URL_LIFETIME.total_seconds(), before
            )
        except JournalError as exc:
            log.warning("could not resume unfinished tasks: %s", exc.message)
            return
        log.debug("resuming %d unfinished task(s); %d followed by other running processes", len(adopted), running)
        for entry in adopted:
            assert entry.task_id is not None
            self.follow_in_background(entry.task_id)

    def follow_in_background(self, task_id: str) -> bool:
        """Keep following `task_id` until it ends and its images are saved; False if nothing runs tasks."""
        if self._background is None:
            return False
        if task_id not in self._followed:
            self._followed.add(task_id)
            self._background.start_soon(self._follow, task_id)
        return True

    def is_followed(self, task_id: str) -> bool:
        return task_id in self._followed

    async def _follow(self, task_id: str) -> None:
        assert self._follow_slots is not None
        try:
            async with self._follow_slots:
                try:
                    ours, entry = await self.journal.take(task_id)
                except JournalError:
                    ours, entry = True, None
                if not ours:
                    log.info("not following %s: another running server process follows it", task_id)
                    return
                give_up_at = (entry.created_at if entry else time.time()) + FOLLOW_LIMIT_SECONDS
                # Look at least once however old the task: one resumed after a long pause may have completed
                # meanwhile, and its images stay downloadable for a day.
                failed_saves = 0
                while True:
                    try:
                        task = await self.wait(task_id, max(0.0, give_up_at - time.time()))
                        if task.succeeded:
                            results = await self.save(task)
                            if results.save_error is None:
                                return
                            failed_saves += 1
                            if failed_saves >= MAX_BACKGROUND_SAVES:
                                log.warning("gave up saving %s for now: %s", task_id, results.save_error)
                                return
                        elif task.is_terminal:
                            return
                    except NotFoundError:
                        await self.journal.record_status(
                            task_id, "expired", None, error_code="resource_not_found", finished=1
                        )
                        return
                    except EvolinkError as exc:
                        log.warning("following %s: %s; trying again later", task_id, exc.message)
                    if time.time() >= give_up_at:
                        break
                    await anyio.sleep(BACKGROUND_RETRY_SECONDS)
                log.warning("stopped following %s: it did not finish within %ds", task_id, FOLLOW_LIMIT_SECONDS)
        finally:
            self._followed.discard(task_id)

    # Results

    def known_results(self, task_id: str, entry: Entry | None) -> TaskResults | None:
        """Images already saved for this task: by this process, or by an earlier one per its journal `entry`."""
        known = self._results.get(task_id)
        if known is not None and known.save_error is None:
            return known
        if entry is None or not entry.saved_paths or entry.save_error:
            return None
        paths = [Path(p) for p in entry.saved_paths]
        if not all(p.is_file() for p in paths):
            return None
        images = [
            SavedImage(
                index=i,
                url=url,
                path=path,
                mime_type=mimetypes.guess_type(path.name)[0] or "image/png",
                bytes=path.stat().st_size,
            )
            for i, (url, path) in enumerate(zip(entry.result_urls, paths, strict=False))
        ]
        urls, notes = self._usable_urls(entry.model, entry.result_urls)
        results = TaskResults(
            images=images,
            urls=urls,
            urls_expire_at=datetime.fromtimestamp(entry.updated_at, timezone.utc) + RESULT_URL_LIFETIME,
            notes=notes,
        )
        self._results[task_id] = results
        return results

    def _usable_urls(self, model: str | None, urls: list[str]) -> tuple[list[str], list[str]]:
        """The result URLs worth saving (no more than the model can make), and a note on any left out."""
        spec = self.catalog.get(model) if model else None
        limit = max(spec.n.allowed()) if spec is not None and spec.n is not None else MAX_RESULT_URLS
        if len(urls) <= limit:
            return urls, []
        if spec is not None and spec.n is not None:
            why = f"{spec.id} makes at most {limit}"
        else:
            why = f"at most {limit} are saved for {model or 'a model'}, which documents no image count"
        note = (
            f"The task answered {len(urls)} result URLs; {why}, so only the first {limit} were saved: "
            f"the other {len(urls) - limit} were not downloaded."
        )
        return urls[:limit], [note]

    @staticmethod
    def _named_at(task: Task, entry: Entry | None, earlier: TaskResults | None) -> datetime:
        """The time in a task's file names, the same on every save: its submission's, as early as it is known."""
        if earlier is not None and earlier.named_at is not None:
            return earlier.named_at
        if entry is not None:
            return datetime.fromtimestamp(entry.created_at, timezone.utc)
        if task.created is not None and 0 < task.created < 2**35:  # an upstream's word: only a plausible time
            return datetime.fromtimestamp(task.created, timezone.utc)
        return datetime.now(timezone.utc)

    async def save(self, task: Task, *, deadline: float | None = None) -> TaskResults:
        """Download and save a completed task's images once; later calls return the same files. After a
        partial failure, a call saves only what is missing, under the same names.

        `deadline` (a time.monotonic() value) bounds the downloads: a call's wait; else the client's own limit."""
        lock = self._result_locks.setdefault(task.id, anyio.Lock())
        async with lock:
            try:
                entry = await self.journal.by_task_id(task.id)
            except JournalError as exc:  # the journal adds facts to the sidecar: never lose the images over it
                log.warning("saving %s without its journal entry: %s", task.id, exc.message)
                entry = None
            known = self.known_results(task.id, entry)
            if known is not None:
                return known
            model = task.model or (entry.model if entry else None)
            urls, notes = self._usable_urls(model, task.image_urls)
            named_at = self._named_at(task, entry, self._results.get(task.id))
            results = TaskResults(
                urls=urls,
                urls_expire_at=datetime.now(timezone.utc) + RESULT_URL_LIFETIME,
                notes=notes,
                named_at=named_at,
            )
            sidecar: dict[str, Any] = {
                "prompt": entry.prompt if entry else None,
                "model": model,
                "parameters": entry.request if entry else None,
                "credits_reserved": task.usage.credits_reserved,
                "source_urls": urls,
                "urls_expire_at": results.urls_expire_at.isoformat() if results.urls_expire_at else None,
                "submitted_at": datetime.fromtimestamp(entry.created_at, timezone.utc).isoformat() if entry else None,
            }
            directory = self.settings.output_dir
            try:
                directory.mkdir(parents=True, exist_ok=True)
                saved = await anyio.to_thread.run_sync(already_saved, directory, task.id, named_at, urls)
            except OSError as exc:
                errors = [f"cannot create the output directory {directory}: {exc.strerror or exc}"]
            else:
                results.images, errors = await save_results(
                    self.client,
                    task.id,
                    urls,
                    directory,
                    max_bytes=self.settings.max_download_bytes,
                    sidecar=sidecar,
                    when=named_at,
                    saved=saved,
                    deadline=deadline,
                )
            if errors:
                results.save_error = "; ".join(errors)
                log.warning("saving results of %s failed: %s", task.id, results.save_error)
            try:
                await self.journal.record_saved(
                    task.id, urls, [str(i.path) for i in results.images], results.save_error
                )
            except JournalError as exc:
                log.warning("could not record the saved results of %s: %s", task.id, exc.message)
            self._results[task.id] = results
            return results
