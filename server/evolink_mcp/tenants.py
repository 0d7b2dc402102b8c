"""Callers with their own Evolink keys over HTTP (EVOLINK_TENANT_KEYS=header).

Each key is a tenant, named by a keyed hash of it (HMAC-SHA256 with EVOLINK_TENANT_SECRET, so every replica names
it alike): its own client, output folder (`output_dir/<tenant id>/`), journal records and background following. A
key lives in memory only, while its caller is active: after EVOLINK_TENANT_IDLE_SECONDS without a request it is
dropped, and its unfinished tasks wait in the journal until its next request resumes them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from .images import ImageService
from .journal import Journal, TaskRecord
from .tools.common import REQUEST_DEPS, Deps

log = logging.getLogger(__name__)

KEY_HEADER = "X-Evolink-Api-Key"
TENANT_ID_CHARS = 32  # 128 bits of the HMAC: a folder name, never the key
MAX_LIVE_TENANTS = 1000  # keys held at once; beyond it the least recently active one is dropped first
IDLE_CHECKS_PER_PERIOD = 4
TENANT_RESULT_CACHE_SIZE = 8  # results (with previews) kept in memory per live tenant: bounded however many there are
# A tenant's unfinished tasks are looked for among its newest submissions when it becomes active again.
RESUME_SCAN = 500


def usable_key(key: str) -> bool:
    """Whether `key` can be an Evolink key sent in a header: printable ASCII, no spaces."""
    return bool(key) and all("!" <= c <= "~" for c in key)


@dataclass
class Tenant:
    id: str
    deps: Deps
    last_seen: float
    done: anyio.Event = field(default_factory=anyio.Event)  # set when its key is dropped


class Tenants:
    """The tenants seen lately, each with its own view of the process's dependencies."""

    def __init__(self, deps: Deps) -> None:
        secret = deps.settings.tenant_secret
        assert secret is not None, "Settings require EVOLINK_TENANT_SECRET with EVOLINK_TENANT_KEYS=header"
        self.root = deps
        self._secret = secret.get_secret_value().encode()
        self._live: OrderedDict[str, Tenant] = OrderedDict()
        self._group: TaskGroup | None = None
        journal = deps.service.journal
        self._journal = journal.base if isinstance(journal, TenantJournal) else journal

    def __len__(self) -> int:
        return len(self._live)

    def tenant_id(self, key: str) -> str:
        """The name of `key`'s tenant: a keyed hash, the same on every replica sharing the secret."""
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:TENANT_ID_CHARS]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Tenants' background following while this is entered; idle keys dropped."""
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._drop_idle)
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()
                self._live.clear()

    def deps_for(self, key: str) -> Deps:
        """The dependencies as `key`'s caller sees them, its tenant started if it was not live."""
        tenant_id = self.tenant_id(key)
        tenant = self._live.get(tenant_id) or self._start(tenant_id, key)
        tenant.last_seen = time.monotonic()
        self._live.move_to_end(tenant_id)
        return tenant.deps

    def _start(self, tenant_id: str, key: str) -> Tenant:
        root = self.root
        settings = replace(
            root.settings,
            output_dir=root.settings.output_dir / tenant_id,
            api_key=None,
            result_cache_size=min(root.settings.result_cache_size, TENANT_RESULT_CACHE_SIZE),
        )
        client = root.client.with_key(key)
        journal = TenantJournal(self._journal, tenant_id)
        service = ImageService(settings, root.catalog, client, journal, clock=root.service.clock)
        # No shared folders: what one tenant may read or write, another must not. Its own output folder it may.
        deps = Deps(settings, root.catalog, client, service, allowed_dirs=(settings.output_dir,))
        tenant = Tenant(tenant_id, deps, time.monotonic())
        self._live[tenant_id] = tenant
        if self._group is not None:
            self._group.start_soon(self._follow_while_live, tenant)
        while len(self._live) > MAX_LIVE_TENANTS:
            self._drop(next(iter(self._live)))
        log.info("tenant %s active (%d live)", tenant_id, len(self._live))
        return tenant

    async def _follow_while_live(self, tenant: Tenant) -> None:
        """The tenant's tasks followed in the background (those it left unfinished before resumed first), with its
        key, until the key is dropped."""
        async with tenant.deps.service.running():
            await tenant.done.wait()

    def _drop(self, tenant_id: str) -> None:
        tenant = self._live.pop(tenant_id, None)
        if tenant is not None:
            tenant.done.set()
            log.info("tenant %s idle: its key dropped from memory", tenant_id)

    async def _drop_idle(self) -> None:
        idle = self.root.settings.tenant_idle_seconds
        while True:
            await self.root.service.clock.sleep(idle / IDLE_CHECKS_PER_PERIOD)
            now = time.monotonic()
            for tenant_id in [t.id for t in self._live.values() if now - t.last_seen > idle]:
                self._drop(tenant_id)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware: every message handled as its caller's tenant (the key its HTTP request carries)."""
        headers = getattr(ctx.request, "headers", None)
        key = headers.get(KEY_HEADER) if headers is not None else None
        if not key:
            if ctx.request_id is None:
                return await call_next(ctx)  # a notification: nothing of anyone's is read or written
            raise MCPError(code=INVALID_REQUEST, message=f"Send your own Evolink API key in {KEY_HEADER}.")
        token = REQUEST_DEPS.set(self.deps_for(key.strip()))
        try:
            return await call_next(ctx)
        finally:
            REQUEST_DEPS.reset(token)


class TenantJournal(Journal):
    """One tenant's view of the journal: every operation on its own tasks only. Resuming is per tenant too: its
    unfinished tasks are adopted when it becomes active, since following them takes its key. What needs no key
    (marking interrupted submissions, renewing leases) is the process's: done by the `process_wide` view alone,
    the single tenant's, which the process's own service holds."""

    def __new__(cls, base: Journal, tenant: str, *, process_wide: bool = False) -> TenantJournal:
        return object.__new__(cls)

    def __init__(self, base: Journal, tenant: str, *, process_wide: bool = False) -> None:
        self.base, self.tenant, self.process_wide = base, tenant, process_wide
        self.owner, self.lease_seconds = base.owner, base.lease_seconds

    @property
    def location(self) -> str:
        return self.base.location

    async def open(self) -> None:
        await self.base.open()

    async def ping(self) -> None:
        await self.base.ping()

    async def aclose(self) -> None:
        if self.process_wide:
            await self.base.aclose()

    def close(self) -> None:
        if self.process_wide:
            self.base.close()

    async def record_intent(
        self,
        request_key: str,
        fingerprint: str,
        model: str,
        prompt: str | None,
        request: dict[str, Any],
        output_dir: str | None = None,
        *,
        tenant: str | None = None,
    ) -> TaskRecord:
        return await self.base.record_intent(
            request_key, fingerprint, model, prompt, request, output_dir, tenant=self.tenant
        )

    async def record_outcome(self, request_key: str, state: str, *, tenant: str | None = None) -> None:
        await self.base.record_outcome(request_key, state, tenant=self.tenant)

    async def record_submitted(
        self, request_key: str, task_id: str, status: str, credits: float | None, *, tenant: str | None = None
    ) -> None:
        await self.base.record_submitted(request_key, task_id, status, credits, tenant=self.tenant)

    async def record_status(
        self, task_id: str, status: str, progress: float | None, *, tenant: str | None = None, **extra: Any
    ) -> None:
        await self.base.record_status(task_id, status, progress, tenant=self.tenant, **extra)

    async def record_saved(
        self,
        task_id: str,
        result_urls: Sequence[str],
        saved_paths: Sequence[str],
        save_error: str | None,
        *,
        tenant: str | None = None,
    ) -> None:
        await self.base.record_saved(task_id, result_urls, saved_paths, save_error, tenant=self.tenant)

    async def record_output_dir(self, task_id: str, output_dir: str | None, *, tenant: str | None = None) -> None:
        await self.base.record_output_dir(task_id, output_dir, tenant=self.tenant)

    async def by_request_key(self, request_key: str, *, tenant: str | None = None) -> TaskRecord | None:
        return await self.base.by_request_key(request_key, tenant=self.tenant)

    async def by_task_id(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        return await self.base.by_task_id(task_id, tenant=self.tenant)

    def by_task_id_now(self, task_id: str, *, tenant: str | None = None) -> TaskRecord | None:
        return self.base.by_task_id_now(task_id, tenant=self.tenant)

    async def same_request_since(
        self, fingerprint: str, since: float, *, tenant: str | None = None
    ) -> TaskRecord | None:
        return await self.base.same_request_since(fingerprint, since, tenant=self.tenant)

    async def credits_seen(
        self, model: str, limit: int = 50, *, tenant: str | None = None
    ) -> list[tuple[dict[str, Any], float]]:
        return await self.base.credits_seen(model, limit, tenant=self.tenant)

    async def recent(
        self, status: str | None = None, limit: int = 20, *, tenant: str | None = None
    ) -> list[TaskRecord]:
        return await self.base.recent(status, limit, tenant=self.tenant)

    async def mark_interrupted(self, before: float) -> int:
        return await self.base.mark_interrupted(before) if self.process_wide else 0

    async def adopt_unfinished(self, newer_than: float, before: float) -> tuple[list[TaskRecord], int]:
        candidates = [
            record
            for record in await self.recent(limit=RESUME_SCAN)
            if record.task_id is not None and not record.finished and newer_than < record.created_at < before
        ]
        adopted = []
        for record in candidates:
            assert record.task_id is not None
            ours, current = await self.take(record.task_id)
            if ours:
                adopted.append(current or record)
        return adopted, len(candidates) - len(adopted)

    async def take(self, task_id: str, *, tenant: str | None = None) -> tuple[bool, TaskRecord | None]:
        return await self.base.take(task_id, tenant=self.tenant)

    async def renew_leases(self) -> int:
        return await self.base.renew_leases() if self.process_wide else 0

    async def release(self, task_id: str, *, tenant: str | None = None) -> None:
        await self.base.release(task_id, tenant=self.tenant)
