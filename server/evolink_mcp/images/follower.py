"""Following tasks in the background until their images are saved: tasks a call stopped waiting for, and the
unfinished tasks stopped processes left (resumed at start-up)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from ..evolink import EvolinkError, NotFoundError
from ..journal import JournalError, TaskRecord
from ..media import clear_staging
from .results import RESULT_URL_LIFETIME

if TYPE_CHECKING:
    from .service import ImageService

log = logging.getLogger(__name__)

FOLLOW_LIMIT_SECONDS = 20 * 60  # image tasks take seconds to a few minutes; past this, stop looking
MAX_BACKGROUND_FOLLOWS = 16
BACKGROUND_RETRY_SECONDS = 10.0
RESUME_AFTER_SECONDS = 1.0
MAX_BACKGROUND_SAVES = 5  # then the journal keeps the URLs for check_task or the next start-up


class Follower:
    """Background following for one service, while `running` is entered."""

    def __init__(self, service: ImageService) -> None:
        self.service = service
        self._group: TaskGroup | None = None
        self._slots: anyio.Semaphore | None = None
        self._followed: set[str] = set()
        self._waited_on: Counter[str] = Counter()  # tasks calls are waiting on, how many calls each

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Follow tasks in the background while this is entered; resumes the journal's unfinished tasks."""
        async with anyio.create_task_group() as group:
            self._group = group
            self._slots = anyio.Semaphore(MAX_BACKGROUND_FOLLOWS)
            group.start_soon(self._resume_soon, time.time())
            if self.service.journal.lease_seconds is not None:
                group.start_soon(self._keep_leases, self.service.journal.lease_seconds)
                group.start_soon(self._adopt_every, self.service.settings.journal_adopt_seconds)
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def _resume_soon(self, started: float) -> None:
        # Not while a client is still being answered its handshake: the journal's import and disk work
        # (a worker thread) would compete with the start-up a user waits for; the resumed tasks can wait.
        await self.service.clock.sleep(RESUME_AFTER_SECONDS)
        await self.resume(before=started)

    async def _keep_leases(self, lease_seconds: float) -> None:
        """Renew this process's leases while it runs: a replica that stops (killed too) loses them at expiry."""
        while True:
            await self.service.clock.sleep(lease_seconds / 3)
            try:
                await self.service.journal.renew_leases()
            except JournalError as exc:
                log.warning("could not renew this process's leases: %s", exc.message)

    async def _adopt_every(self, seconds: float) -> None:
        """Replicas: adopt, now and then, the tasks whose follower stopped (its leases expired) since start-up."""
        while True:
            await self.service.clock.sleep(seconds)
            await self.adopt(before=time.time())

    async def resume(self, before: float) -> None:
        """Pick up what stopped processes left (recorded before `before`, when this one started): unknown
        outcomes marked, unfinished tasks followed. What this process submits since is its own to follow, and
        what another running process submitted is that one's. Partial downloads killed processes left go too."""
        output_dir = self.service.settings.output_dir
        try:
            cleared = await anyio.to_thread.run_sync(clear_staging, output_dir)
        except OSError as exc:
            log.warning("could not look for partial downloads in %s: %s", output_dir, exc)
        else:
            if cleared:
                log.info("removed the partial downloads of %d save(s) that stopped processes left", cleared)
        await self.adopt(before)

    async def adopt(self, before: float) -> None:
        """Follow the unfinished tasks (recorded before `before`) that no running process follows; mark the
        submissions stopped processes left mid-POST as of unknown outcome."""
        journal = self.service.journal
        # A journal another process holds must not take the server down: say so, and serve on.
        try:
            interrupted = await journal.mark_interrupted(before)
        except JournalError as exc:
            log.warning("could not mark interrupted submissions: %s", exc.message)
        else:
            if interrupted:
                log.warning("%d submission(s) were interrupted mid-request; their outcome is unknown", interrupted)
        try:
            adopted, running = await journal.adopt_unfinished(time.time() - RESULT_URL_LIFETIME.total_seconds(), before)
        except JournalError as exc:
            log.warning("could not resume unfinished tasks: %s", exc.message)
            return
        adopted = [
            r for r in adopted if r.task_id and not (self.is_followed(r.task_id) or r.task_id in self._waited_on)
        ]
        log.log(
            logging.INFO if adopted else logging.DEBUG,
            "adopting %d unfinished task(s) no running process follows; %d followed by other running processes",
            len(adopted),
            running,
        )
        for record in adopted:
            assert record.task_id is not None
            self.follow(record.task_id)

    def follow(self, task_id: str, record: TaskRecord | None = None) -> bool:
        """Keep following `task_id` until it ends and its images are saved; False if nothing runs tasks. `record`
        is what the caller knows of it, used where the journal does not know the task (where to save it)."""
        if self._group is None:
            return False
        if task_id not in self._followed:
            self._followed.add(task_id)
            self._group.start_soon(self._follow, task_id, None if record is None else replace(record))
        return True

    @contextmanager
    def waiting(self, task_id: str) -> Iterator[None]:
        """A call waits on `task_id` (and saves its images) meanwhile: this process follows it already."""
        self._waited_on[task_id] += 1
        try:
            yield
        finally:
            self._waited_on[task_id] -= 1
            if not self._waited_on[task_id]:
                del self._waited_on[task_id]

    def is_followed(self, task_id: str) -> bool:
        return task_id in self._followed

    async def _follow(self, task_id: str, known: TaskRecord | None) -> None:
        assert self._slots is not None
        try:
            async with self._slots:
                await self._follow_to_the_end(task_id, known)
        finally:
            self._followed.discard(task_id)

    async def _follow_to_the_end(self, task_id: str, known: TaskRecord | None) -> None:
        service = self.service
        try:
            ours, record = await service.journal.take(task_id)
        except JournalError:
            ours, record = True, None
        record = record or known
        if not ours:
            log.info("not following %s: another running server process follows it", task_id)
            return
        give_up_at = (record.created_at if record else time.time()) + FOLLOW_LIMIT_SECONDS
        # Look at least once however old the task: one resumed after a long pause may have completed
        # meanwhile, and its images stay downloadable for a day.
        failed_saves = 0
        while True:
            try:
                record = await service.look(task_id, record)
                await service.wait(record, max(0.0, give_up_at - time.time()))
                if record.succeeded:
                    results = await service.results.save(record)
                    if results.save_error is None:
                        return
                    failed_saves += 1
                    if failed_saves >= MAX_BACKGROUND_SAVES:
                        log.warning("gave up saving %s for now: %s", task_id, results.save_error)
                        return
                elif record.is_terminal:
                    return
            except NotFoundError:
                await service.journal.record_status(
                    task_id, "expired", None, error_code="resource_not_found", finished=1
                )
                return
            except EvolinkError as exc:
                log.warning("following %s: %s; trying again later", task_id, exc.message)
            if time.time() >= give_up_at:
                break
            await service.clock.sleep(BACKGROUND_RETRY_SECONDS)
        log.warning("stopped following %s: it did not finish within %ds", task_id, FOLLOW_LIMIT_SECONDS)
