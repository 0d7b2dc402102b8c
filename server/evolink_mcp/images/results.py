"""A completed task's images: saved once, then found again — in a bounded cache, or rebuilt from the journal's
record and the files themselves."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio

from ..catalog import Catalog
from ..evolink import EvolinkClient
from ..journal import Journal, JournalError, TaskRecord
from ..media import SavedImage, already_saved, save_results, sniff_image
from ..settings import Settings
from .previews import FULL_INLINE_BUDGET, Inline, Preview, make_previews, read_full

log = logging.getLogger(__name__)

RESULT_URL_LIFETIME = timedelta(hours=24)
# Result URLs saved for a model the catalog gives no n range (Midjourney's four, a layerize's layers): more than
# any model documents; an upstream answering thousands must not start thousands of downloads.
MAX_RESULT_URLS = 16


@dataclass
class TaskResults:
    """What saving a completed task gave: its files, its URLs, and what to say about them."""

    images: list[SavedImage] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    urls_expire_at: datetime | None = None
    save_error: str | None = None
    notes: list[str] = field(default_factory=list)  # reported with the results: URLs left out, previews missing
    named_at: datetime | None = None  # the time in the file names: a retry saves under the same names
    previews: list[Preview] | None = None  # made on first report, kept as long as the results are cached


class KeyedLocks:
    """One lock per key, dropped as soon as nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (anyio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ResultStore:
    """Saves completed tasks' images once and finds them again; the last `size` results stay in memory (with
    their previews), older ones are rebuilt from the journal's record and the saved files."""

    def __init__(self, settings: Settings, catalog: Catalog, client: EvolinkClient, journal: Journal) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self.journal = journal
        self.size = settings.result_cache_size
        self._cached: OrderedDict[str, TaskResults] = OrderedDict()
        self._locks = KeyedLocks()

    def __len__(self) -> int:
        """How many results are held in memory."""
        return len(self._cached)

    @property
    def locks_held(self) -> int:
        """How many tasks' save locks exist (someone holds or waits for each)."""
        return len(self._locks)

    def _remember(self, task_id: str, results: TaskResults) -> None:
        self._cached[task_id] = results
        self._cached.move_to_end(task_id)
        while len(self._cached) > self.size:
            self._cached.popitem(last=False)

    def cached(self, task_id: str) -> TaskResults | None:
        results = self._cached.get(task_id)
        if results is not None:
            self._cached.move_to_end(task_id)
        return results

    async def known(self, record: TaskRecord) -> TaskResults | None:
        """The images already saved for this task: by this process, or per its journal `record` (by any)."""
        assert record.task_id is not None
        results = self.cached(record.task_id)
        if results is not None and results.save_error is None:
            return results
        if not record.saved_paths or record.save_error:
            return None
        images = await anyio.to_thread.run_sync(_saved_files, record)
        if images is None:
            return None
        urls, notes = self.usable_urls(record.model, record.result_urls)
        results = TaskResults(
            images=images,
            urls=urls,
            urls_expire_at=datetime.fromtimestamp(record.updated_at, timezone.utc) + RESULT_URL_LIFETIME,
            notes=notes,
            named_at=datetime.fromtimestamp(record.created_at, timezone.utc),
        )
        self._remember(record.task_id, results)
        return results

    def usable_urls(self, model: str | None, urls: list[str]) -> tuple[list[str], list[str]]:
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

    async def save(self, record: TaskRecord, *, deadline: float | None = None) -> TaskResults:
        """Download and save a completed task's images once; later calls return the same files. After a
        partial failure, a call saves only what is missing, under the same names. `record` is updated.

        `deadline` (a time.monotonic() value) bounds the downloads: a call's wait; else the client's own limit."""
        task_id = record.task_id
        assert task_id is not None
        async with self._locks.hold(task_id):
            known = await self.known(record)
            if known is not None:
                return known
            earlier = self.cached(task_id)
            urls, notes = self.usable_urls(record.model, record.result_urls)
            # The time in the file names, the same on every save: the submission's.
            named_at = earlier.named_at if earlier and earlier.named_at else None
            named_at = named_at or datetime.fromtimestamp(record.created_at, timezone.utc)
            results = TaskResults(
                urls=urls,
                urls_expire_at=datetime.now(timezone.utc) + RESULT_URL_LIFETIME,
                notes=notes,
                named_at=named_at,
            )
            try:  # the folder asked for last (check_task may have named one since this record was read)
                current = await self.journal.by_task_id(task_id)
            except JournalError:
                current = None
            if current is not None:
                record.output_dir = current.output_dir
            errors = await self._download(record, results, deadline)
            if errors:
                results.save_error = "; ".join(errors)
                log.warning("saving results of %s failed: %s", task_id, results.save_error)
            record.saved_paths = [str(i.path) for i in results.images]
            record.save_error = results.save_error
            try:
                await self.journal.record_saved(task_id, urls, record.saved_paths, results.save_error)
            except JournalError as exc:
                log.warning("could not record the saved results of %s: %s", task_id, exc.message)
            self._remember(task_id, results)
            return results

    async def _download(self, record: TaskRecord, results: TaskResults, deadline: float | None) -> list[str]:
        assert record.task_id is not None and results.named_at is not None
        journaled = record.request_key is not None
        sidecar: dict[str, Any] = {
            "prompt": record.prompt,
            "model": record.model,
            "parameters": record.request if journaled else None,
            "credits_reserved": record.credits,
            "source_urls": results.urls,
            "urls_expire_at": results.urls_expire_at.isoformat() if results.urls_expire_at else None,
            "submitted_at": datetime.fromtimestamp(record.created_at, timezone.utc).isoformat() if journaled else None,
        }
        directory = Path(record.output_dir) if record.output_dir else self.settings.output_dir
        sidecar["output_dir"] = str(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            saved = await anyio.to_thread.run_sync(
                already_saved, directory, record.task_id, results.named_at, results.urls
            )
        except OSError as exc:
            return [f"cannot create the output directory {directory}: {exc.strerror or exc}"]
        results.images, errors = await save_results(
            self.client,
            record.task_id,
            results.urls,
            directory,
            max_bytes=self.settings.max_download_bytes,
            sidecar=sidecar,
            when=results.named_at,
            saved=saved,
            deadline=deadline,
        )
        return errors

    async def inline(self, results: TaskResults, mode: Inline) -> tuple[list[Preview], int, list[str]]:
        """The images to send inline (`mode`: "preview", "full" or "none"), how many previews were left out because
        the server was busy, and why an image asked for in full is only a preview.

        In full: each saved file itself, as far as all of them fit one result (FULL_INLINE_BUDGET, base64
        counted); the others as their previews."""
        if mode == "none":
            return [], 0, []
        if mode == "preview":
            return (*await self.previews(results), [])
        budget = max(FULL_INLINE_BUDGET, self.settings.preview_max_bytes)
        full: dict[int, Preview] = {}
        why: dict[int, str] = {}
        for image in results.images:
            read = await anyio.to_thread.run_sync(read_full, image, budget)
            if isinstance(read, Preview):
                full[image.index] = read
            else:
                why[image.index] = read
        previews: dict[int, Preview] = {}
        skipped = 0
        whole = sum(len(p.data_base64) for p in full.values())
        if len(full) < len(results.images) or whole > budget:  # some go as previews: made (and cached) for all
            made, skipped = await self.previews(results)
            previews = {p.index: p for p in made}
        sent: dict[int, Preview] = dict(previews)
        spent = sum(len(p.data_base64) for p in sent.values())
        for index, file in sorted(full.items()):  # in order, as far as they fit beside the other previews
            cost = len(file.data_base64) - (len(previews[index].data_base64) if index in previews else 0)
            if spent + cost <= budget:
                sent[index], spent = file, spent + cost
            else:
                why[index] = f"with the other images it would be over the {budget // 1024} KiB a result may carry"
        notes = [f"Image {i + 1} is inline as a preview only: {why[i]}; the full file is saved." for i in sorted(why)]
        return [sent[i] for i in sorted(sent)], skipped, notes

    async def previews(self, results: TaskResults) -> tuple[list[Preview], int]:
        """The previews of saved results (made once while they are cached), and how many were left out because
        the server was saturated."""
        if results.previews is not None:
            return results.previews, 0
        made = await make_previews(results.images, self.settings.preview_max_bytes)
        if not made.skipped_busy:  # else the next look tries again; a preview that failed would only fail again
            results.previews = made.made
            results.notes.extend(made.missing)
        return made.made, made.skipped_busy


def _saved_files(record: TaskRecord) -> list[SavedImage] | None:
    """The record's saved images, each still a file and an image by its bytes; None if any is not."""
    images = []
    for index, (url, name) in enumerate(zip(record.result_urls, record.saved_paths, strict=False)):
        path = Path(name)
        try:
            with path.open("rb") as file:
                kind = sniff_image(file.read(16))
                size = path.stat().st_size
        except OSError:
            return None
        if kind is None:
            return None
        images.append(SavedImage(index=index, url=url, path=path, mime_type=kind[1], bytes=size))
    return images
