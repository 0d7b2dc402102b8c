"""The generation use cases, shared by the MCP tools and the CLI: `generate` and `check`, each returning one
`TaskOutcome` that the caller renders. Nothing here knows MCP."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import anyio

from ..catalog import (
    Catalog,
    Estimate,
    GenerationRequest,
    ModelSpec,
    Problem,
    build_body,
    echo,
    errors_only,
    estimate_credits,
    reference_kind,
    reference_size_problems,
    resolve_model,
    validate_request,
)
from ..evolink import (
    EvolinkClient,
    EvolinkError,
    InvalidRequestError,
    RequestInProgressError,
    SpendingCapError,
    SubmissionOutcomeUnknownError,
    UnexpectedServerError,
)
from ..journal import REFUSED, SUBMITTED, SUBMITTING, UNKNOWN, Journal, JournalError, TaskRecord
from ..media import (
    MAX_UPLOAD_BYTES,
    SAVED_IMAGES,
    TASK_IMAGES,
    check_local_image,
    reopen_local_image,
    upload_name,
    writable_folder,
)
from ..present import submitted_line
from ..settings import Settings
from .follower import Follower
from .polling import Clock, Update, wait_for_end
from .previews import Inline, Preview
from .results import KeyedLocks, ResultStore, TaskResults

log = logging.getLogger(__name__)

Charged = Literal["no", "unknown"]
# Asked when a request's estimate is over the cap: True to go ahead anyway (the MCP tool asks the user).
ConfirmOverCap = Callable[[Estimate, float], Awaitable[bool]]


@dataclass
class PreparedRequest:
    """A request that passed every local check; local references still to be uploaded."""

    spec: ModelSpec
    request: GenerationRequest
    warnings: list[Problem]
    local_refs: dict[str, tuple[Path, str]]  # reference string -> (path, mime type)
    output_dir: str | None = None  # where its images go, when not the configured output folder


@dataclass
class Submission:
    """A submitted generation: its task's record, and how it came about."""

    record: TaskRecord
    reused: bool = False  # the journal already had this request's task: nothing was sent
    note: str | None = None


@dataclass
class TaskOutcome:
    """What a use case ends with, for a caller to render: the task (its record) and, when it completed, its saved
    images; or, when no task came of it, the error and whether anything was charged."""

    record: TaskRecord | None = None
    results: TaskResults | None = None
    previews: list[Preview] = field(default_factory=list)  # the images sent inline: previews, or files in full
    previews_skipped: int = 0  # left out because the server was busy making others: worth asking again
    inline_notes: list[str] = field(default_factory=list)  # why an image asked for in full is only a preview
    warnings: list[str] = field(default_factory=list)
    poll_error: EvolinkError | None = None  # following failed for now; the task itself is safe
    followed: bool = False  # the server follows it in the background
    error: EvolinkError | None = None  # no task: why
    charged: Charged | None = None  # for `error` on a (paid) submission


_TASK_PREFIX, _, _TASK_SUFFIX = TASK_IMAGES.partition("{task_id}")
# Another process submitting the same request key: how long to wait for its task, and how often to look.
IN_PROGRESS_WAIT_SECONDS = 10.0
IN_PROGRESS_POLL_SECONDS = 0.25
_OWN_IMAGE = re.compile(
    rf"{re.escape(SAVED_IMAGES)}(?P<name>[^/?#]+)"
    rf"|{re.escape(_TASK_PREFIX)}(?P<task_id>[^/?#]+){re.escape(_TASK_SUFFIX)}(?P<task_image>[^/?#]+)"
)


def check_cap(max_credits: float | None) -> None:
    """A per-call cap must be above 0 (0 would refuse everything): InvalidRequestError if not."""
    if max_credits is not None and max_credits <= 0:
        raise InvalidRequestError(f"max_credits must be above 0 (got {max_credits:g}); leave it out for no cap.")


def _key_used_for_another_request(request_key: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"client_request_id {request_key!r} was already used for a different request.",
        next_step="Use a new client_request_id for a new request, or repeat the original request exactly to get "
        "its task.",
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
        self,
        settings: Settings,
        catalog: Catalog,
        client: EvolinkClient,
        journal: Journal | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self.journal = journal or Journal(None)
        self.clock = clock or Clock()
        self.results = ResultStore(settings, catalog, client, self.journal)
        self.follower = Follower(self)
        self._same_request = KeyedLocks()

    # The use cases

    async def generate(
        self,
        model: str | None,
        request: GenerationRequest,
        *,
        allowed_dirs: Sequence[Path] | None,
        request_key: str | None = None,
        max_credits: float | None = None,
        wait_seconds: float | None = None,
        on_update: Update | None = None,
        inline: Inline = "preview",
        confirm_over_cap: ConfirmOverCap | None = None,
        output_dir: str | None = None,
    ) -> TaskOutcome:
        """Resolve the model, check the request and the spending cap (over it: refused, unless `confirm_over_cap`
        says go ahead), upload local references, submit (once per request key), wait with updates, save. A refusal
        comes back as the outcome's error."""
        caps = [c for c in (max_credits, self.settings.max_credits_per_call) if c is not None]
        cap = min(caps) if caps else None
        try:
            check_cap(max_credits)
            prepared = self.prepare(model, request, allowed_dirs=allowed_dirs)
            prepared.output_dir = self.output_folder(output_dir, allowed_dirs)
            estimate = await self.check_spending(prepared, cap, confirm_over_cap)
            if cap is not None and estimate is not None and estimate.credits is not None and estimate.credits > cap:
                cap = None  # going over it was agreed to
        except EvolinkError as exc:
            return TaskOutcome(error=exc, charged="no")
        try:
            submission = await self.submit(prepared, request_key=request_key)
        except EvolinkError as exc:
            return TaskOutcome(error=exc, charged=exc.charged)
        record = submission.record
        warnings = [p.message for p in prepared.warnings]
        if submission.reused and request_key is not None:
            warnings.append(f"client_request_id {request_key!r} already has this task: nothing new was sent.")
        if submission.note:
            warnings.append(submission.note)
        if cap is not None and record.credits is not None and record.credits > cap:
            warnings.append(
                f"This task reserved {record.credits:g} credits, over your cap of {cap:g}. Evolink has no way to "
                "cancel a task, so it will run; lower quality or n next time."
            )
        wait = self.settings.wait_seconds if wait_seconds is None else wait_seconds
        return await self.follow(record, wait, on_update=on_update, inline=inline, warnings=warnings)

    async def check(
        self,
        task_id: str,
        wait_seconds: float = 0,
        *,
        on_update: Update | None = None,
        inline: Inline = "preview",
        output_dir: str | None = None,
        allowed_dirs: Sequence[Path] | None = None,
    ) -> TaskOutcome:
        """A task's state, waited for up to `wait_seconds`; a completed task's images saved (once, in `output_dir`
        if given) and shown."""
        try:
            folder = self.output_folder(output_dir, allowed_dirs)
        except EvolinkError as exc:
            return TaskOutcome(error=exc)
        record: TaskRecord | None = None  # read once: each journal read is a worker-thread round trip
        try:
            record = await self.journal.by_task_id(task_id)
            if record is not None and await self.results.known(record) is not None:
                outcome = await self._outcome(record, inline=inline)  # saved already: no need to ask upstream
                saved_in = Path(record.saved_paths[0]).parent  # saved as folder / name: no need to resolve
                if output_dir is not None and saved_in != (Path(folder) if folder else self.settings.output_dir):
                    outcome.warnings.append(
                        f"Its images were saved before, in {saved_in}; output_dir applies to images not saved yet."
                    )
                return outcome
        except JournalError as exc:
            log.warning("check_task %s: %s; asking upstream", task_id, exc.message)
        try:
            record = await self.look(task_id, record)
        except EvolinkError as exc:
            return TaskOutcome(error=exc)
        if output_dir is not None and folder != record.output_dir:
            record.output_dir = folder
            if record.request_key is not None:
                await self.journal.record_output_dir(task_id, folder)
        return await self.follow(record, wait_seconds, on_update=on_update, inline=inline)

    async def follow(
        self,
        record: TaskRecord,
        wait_seconds: float,
        *,
        on_update: Update | None = None,
        inline: Inline = "preview",
        warnings: list[str] | None = None,
    ) -> TaskOutcome:
        """Wait up to `wait_seconds` with updates, then the outcome; what is still running is followed on in
        the background (also when the caller stops waiting: the images are paid for all the same)."""
        assert record.task_id is not None
        # Its result downloads too end with the wait (given at least min_save_seconds): a slow one is left to the
        # background follower rather than hold the call.
        save_deadline = time.monotonic() + max(wait_seconds, self.settings.min_save_seconds)
        poll_error: EvolinkError | None = None
        try:
            with self.follower.waiting(record.task_id):  # this call follows it: no adoption scan takes it up
                if wait_seconds > 0 and not record.is_terminal:
                    try:
                        await self.wait(record, wait_seconds, on_update=on_update)
                    except EvolinkError as exc:  # never lose the task over a failed poll
                        poll_error = exc
                if not record.is_terminal:
                    self.follower.follow(record.task_id, record)
                return await self._outcome(
                    record, warnings=warnings, poll_error=poll_error, save_deadline=save_deadline, inline=inline
                )
        except anyio.get_cancelled_exc_class():
            self.follower.follow(record.task_id, record)
            raise
        except Exception:  # a bug of ours must not cost the caller the task: its id, what it cost, its images
            log.exception("handling task %s failed", record.task_id)
            followed = self.follower.follow(record.task_id, record)
            failure = UnexpectedServerError("the server failed while handling it; its log says why")
            return TaskOutcome(record, warnings=list(warnings or []), poll_error=failure, followed=followed)

    async def _outcome(
        self,
        record: TaskRecord,
        *,
        warnings: list[str] | None = None,
        poll_error: EvolinkError | None = None,
        save_deadline: float | None = None,
        inline: Inline = "preview",
    ) -> TaskOutcome:
        assert record.task_id is not None
        outcome = TaskOutcome(record, warnings=list(warnings or []), poll_error=poll_error)
        if record.succeeded:
            outcome.results = await self.results.save(record, deadline=save_deadline)
            outcome.previews, outcome.previews_skipped, outcome.inline_notes = await self.results.inline(
                outcome.results, inline
            )
            if outcome.results.save_error:
                self.follower.follow(record.task_id, record)  # keeps trying to save on its own, a few times
        elif not record.is_terminal:
            outcome.followed = self.follower.is_followed(record.task_id)
        return outcome

    # Checking and submitting

    def output_folder(self, output_dir: str | None, allowed_dirs: Sequence[Path] | None) -> str | None:
        """The folder a call asked its images saved in, checked writable and created (over HTTP inside the allowed
        folders or the output folder); None for the configured output folder. Raises InvalidRequestError."""
        if output_dir is None:
            return None
        roots = None if allowed_dirs is None else [*allowed_dirs, self.settings.output_dir]
        folder = writable_folder(output_dir, param="output_dir", allowed_dirs=roots)
        return None if folder == self.settings.output_dir.resolve() else str(folder)

    def prepare(
        self, model: str | None, request: GenerationRequest, *, allowed_dirs: Sequence[Path] | None
    ) -> PreparedRequest:
        """Every check that needs no network: model, parameters, local files. Raises InvalidRequestError."""
        request = replace(
            request,
            image_urls=[self.own_image(r, "image_urls") for r in request.image_urls],
            mask_url=self.own_image(request.mask_url, "mask_url") if request.mask_url else request.mask_url,
        )
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
                # Over the documented figure but within the newer one: sent, with a warning.
                problems += reference_size_problems(spec, param, ref, local_refs[ref][0].stat().st_size)
        return PreparedRequest(spec, request, [p for p in problems if p.severity == "warning"], local_refs)

    def own_image(self, ref: str, param: str) -> str:
        """The path of the saved image one of this server's own URIs names (evolink://images/NAME in the output
        folder, evolink://tasks/ID/images/NAME by the journal); any other reference as it is."""
        match = _OWN_IMAGE.fullmatch(ref.strip())
        if match is None:
            return ref
        missing = InvalidRequestError(
            f"{param}: {echo(ref)} names no image this server saved.",
            next_step="Use the path or resource_uri a result gave; list_tasks shows the saved files.",
        )
        name = unquote(match["name"] or match["task_image"])
        if "/" in name or "\\" in name or name.startswith("."):
            raise missing
        if match["name"]:
            return str(self.settings.output_dir / name)
        try:
            record = self.journal.by_task_id_now(unquote(match["task_id"]))
        except JournalError:
            raise missing from None
        path = next((p for p in (record.saved_paths if record else []) if Path(p).name == name), None)
        if path is None:
            raise missing
        return path

    async def credits_seen(self, prepared: PreparedRequest) -> float | None:
        """Credits this request will likely reserve, from what the same model and tier reserved before."""
        wanted = build_body(prepared.spec, prepared.request)
        count = wanted.get("n") or 1
        for request, credits in await self.journal.credits_seen(prepared.spec.id):
            if _tier(request) == _tier(wanted):
                return credits / (request.get("n") or 1) * count
        return None

    async def estimate(self, prepared: PreparedRequest) -> Estimate:
        """What this request should reserve: the catalog's published price, or what the same model and tier
        reserved before where that is more (a price read on a page may have gone up) or nothing is published."""
        published = estimate_credits(prepared.spec, prepared.request)
        seen = await self.credits_seen(prepared)
        if seen is None or (published.credits is not None and published.credits >= seen):
            return published
        basis = f"earlier requests of {prepared.spec.id} at this tier reserved {seen:g}"
        if published.credits is not None:
            basis += f", more than its published price ({published.credits:g})"
        return replace(published, credits=round(seen, 4), basis=basis)

    async def check_spending(
        self, prepared: PreparedRequest, cap: float | None, confirm_over_cap: ConfirmOverCap | None = None
    ) -> Estimate | None:
        """Refuse (before anything is sent) a request whose estimate exceeds `cap`, unless `confirm_over_cap` agrees
        to it; returns the estimate."""
        if cap is None:
            return None
        estimate = await self.estimate(prepared)
        if estimate.credits is None or estimate.credits <= cap:
            return estimate
        over = (
            f"This request would reserve about {estimate.credits:g} credits ({prepared.spec.id}: {estimate.basis}), "
            f"over the cap of {cap:g}"
        )
        next_step = (
            "Raise max_credits (or EVOLINK_MAX_CREDITS_PER_CALL), or pick a cheaper model, a lower quality tier "
            "or fewer images."
        )
        if confirm_over_cap is None:
            raise SpendingCapError(f"{over}.", next_step=next_step)
        if not await confirm_over_cap(estimate, cap):
            raise SpendingCapError(
                f"{over}, and the user did not agree to go over it.",
                next_step="Do not send it again as is; " + next_step[0].lower() + next_step[1:],
            )
        log.info("%s: the user agreed to %g credits over the cap of %g", prepared.spec.id, estimate.credits, cap)
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
        """What makes two requests the same request: the model, every parameter as given, and which version of
        each local reference file (a file edited since is a new request)."""
        files = sorted(upload_name(path) for path, _ in prepared.local_refs.values())
        fields = {"model": prepared.spec.id, **asdict(prepared.request), **({"files": files} if files else {})}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()

    async def submit(self, prepared: PreparedRequest, *, request_key: str | None = None) -> Submission:
        """Submit the (paid) generation once per request key; a key seen before returns its task instead. Without
        a key, the same request made within EVOLINK_DEDUPE_SECONDS returns the first one's task (a client that
        timed out and asked again must not pay twice)."""
        window = self.settings.dedupe_seconds
        if request_key is not None:
            async with self._same_request.hold(f"request-key:{request_key}"):  # the same key twice at once: one POST
                return await self._submit(prepared, request_key)
        if window <= 0:
            return await self._submit(prepared, None)
        fingerprint = self.fingerprint(prepared)
        async with self._same_request.hold(fingerprint):  # the same request twice at once: one POST
            earlier = await self.journal.same_request_since(fingerprint, time.time() - window)
            if earlier is None:
                return await self._submit(prepared, None)
        age = time.time() - earlier.created_at
        log.info("the same request as task %s, %.0f s ago: nothing sent", earlier.task_id, age)
        note = (
            f"The same request (model and parameters) was made {age:.0f} s ago: its "
            f"task {earlier.task_id} is returned and nothing new was sent or charged. For another image from the "
            "same request, give a new client_request_id."
        )
        return Submission(earlier, reused=True, note=note)

    async def _submit(self, prepared: PreparedRequest, request_key: str | None) -> Submission:
        key = request_key or str(uuid.uuid4())
        fingerprint = self.fingerprint(prepared)
        note = None
        if request_key is not None:
            known = await self.journal.by_request_key(request_key)
            if known is not None:
                if known.fingerprint != fingerprint:
                    raise _key_used_for_another_request(request_key)
                if known.task_id is not None:
                    log.info("request %s already has task %s: nothing sent", request_key, known.task_id)
                    return Submission(known, reused=True)
                if known.state in (SUBMITTING, UNKNOWN):
                    note = (
                        "An earlier attempt with this client_request_id lost its answer and no task was found "
                        "for it; it was sent again with the same idempotency key."
                    )
        request = await self.upload_local_refs(prepared) if prepared.local_refs else prepared.request
        body = build_body(prepared.spec, request)
        # Once the intent is recorded, finish the POST and record its answer even if the caller cancels.
        with anyio.CancelScope(shield=True):
            record = await self.journal.record_intent(
                key,
                fingerprint,
                prepared.spec.id,
                request.prompt,
                {k: v for k, v in body.items() if k not in ("prompt", "model")},
                prepared.output_dir,
            )
            ours = record.task_id is None and record.owner == self.journal.owner
            if ours:
                await self._post(record, body, key)
        if not ours:
            if record.fingerprint != fingerprint:
                raise _key_used_for_another_request(key)
            return await self._submitted_elsewhere(record, key)
        log.info("%s", submitted_line(record))
        return Submission(record, note=note)

    async def _post(self, record: TaskRecord, body: dict[str, Any], key: str) -> None:
        """The paid POST of the intent in `record`, its answer recorded there and in the journal."""
        try:
            task = await self.client.submit_generation(body, idempotency_key=key)
        except SubmissionOutcomeUnknownError:
            await self.journal.record_outcome(key, UNKNOWN)
            raise
        except EvolinkError:
            await self.journal.record_outcome(key, REFUSED)
            raise
        record.state, record.task_id = SUBMITTED, task.id
        changed = record.apply(task)
        await self.journal.record_submitted(key, task.id, task.status, task.usage.credits_reserved)
        if task.is_terminal:  # ended at once (failed, say): no poll will record how
            await self.journal.record_status(task.id, **changed)

    async def _submitted_elsewhere(self, record: TaskRecord, key: str) -> Submission:
        """The task of a request key another process took (as this one recorded its intent): once that process's
        POST is answered, a short wait at most."""
        deadline = self.clock.now() + IN_PROGRESS_WAIT_SECONDS
        while record.task_id is None and record.state == SUBMITTING and self.clock.now() < deadline:
            await self.clock.sleep(IN_PROGRESS_POLL_SECONDS)
            record = await self.journal.by_request_key(key) or record
        if record.task_id is None:
            raise RequestInProgressError(
                f"client_request_id {key!r} was being submitted by another call at the same time "
                "(another replica, perhaps), and it has no task yet; nothing was sent by this call."
            )
        log.info("request %s already has task %s: nothing sent", key, record.task_id)
        return Submission(record, reused=True)

    # Following tasks

    async def look(self, task_id: str, record: TaskRecord | None = None) -> TaskRecord:
        """The task's state upstream, in its `record` (one made if the journal does not know it); a status
        change is journaled."""
        task = await self.client.get_task(task_id)
        record = record or TaskRecord.of_task(task)
        changed = record.apply(task)
        if changed:
            await self.journal.record_status(task_id, **changed)
        return record

    async def wait(self, record: TaskRecord, wait_seconds: float, *, on_update: Update | None = None) -> None:
        """Poll until the task ends or `wait_seconds` pass; `record` holds the last state seen."""
        assert record.task_id is not None
        task_id = record.task_id

        async def look(record: TaskRecord) -> None:
            await self.look(task_id, record)

        await wait_for_end(record, look, wait_seconds, clock=self.clock, on_update=on_update)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow tasks in the background while this is entered; resumes the journal's unfinished tasks."""
        async with self.follower.running():
            yield

    def follow_in_background(self, task_id: str) -> bool:
        return self.follower.follow(task_id)

    def is_followed(self, task_id: str) -> bool:
        return self.follower.is_followed(task_id)
