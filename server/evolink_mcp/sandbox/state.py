"""The sandbox's state: tasks, files, scripted faults and the request log, shared by the app and tests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from ..catalog import Catalog, GenerationRequest, ModelSpec, load_catalog
from .config import SandboxConfig
from .files import FileStore
from .render import ImageCache
from .tasks import SandboxTask, credits_for, image_dimensions, image_format, new_task_id, parse_markers

# Endpoint names for faults and the log. A fault on "files" matches every files-API route.
ENDPOINTS = (
    "generations",
    "tasks",
    "credits",
    "files/upload/base64",
    "files/upload/stream",
    "files/upload/url",
    "files/list",
    "files/quota",
    "files/delete",
    "results",
    "downloads",
    "other",
)
DropWhen = Literal["before", "after"]


class InsufficientBalance(Exception):
    """The account's credits do not cover what a submission would reserve."""

    def __init__(self, needed: float, left: float) -> None:
        super().__init__(f"This request needs {needed:g} credits; the balance is {left:g}.")


def endpoint_of(method: str, path: str) -> str | None:
    """The endpoint name of a request, or None for the sandbox's own control routes."""
    if path.startswith("/_sandbox"):
        return None
    if path.rstrip("/") == "/v1/images/generations":
        return "generations"
    if path.startswith("/v1/tasks/"):
        return "tasks"
    if path.rstrip("/") == "/v1/credits":
        return "credits"
    if path.startswith("/api/v1/files/"):
        rest = path.removeprefix("/api/v1/files/").rstrip("/")
        if method.upper() == "DELETE":
            return "files/delete"
        key = f"files/{rest}"
        return key if key in ENDPOINTS else "files/other"
    if path.startswith("/results/"):
        return "results"
    if path.startswith("/files/"):
        return "downloads"
    return "other"


def _matches(pattern: str, method: str | None, endpoint: str, request_method: str) -> bool:
    if method is not None and method.upper() != request_method.upper():
        return False
    return endpoint == pattern or endpoint.startswith(pattern + "/")


@dataclass
class Fault:
    """A scripted answer for the next `remaining` matching requests."""

    id: int
    kind: Literal["status", "drop"]
    endpoint: str
    method: str | None = None
    remaining: int = 1
    status: int | None = None
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    when: DropWhen = "before"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Latency:
    """Added delay for matching requests (`remaining` None: until cleared)."""

    id: int
    endpoint: str
    ms: float
    method: str | None = None
    remaining: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "latency", **asdict(self)}


@dataclass
class LoggedRequest:
    """One request as the sandbox saw it (never the Authorization value)."""

    method: str
    path: str
    query: str
    endpoint: str
    headers: dict[str, str]
    time: float
    request_id: str
    body: Any = None
    status: int | None = None
    dropped: DropWhen | None = None
    fault: int | None = None
    task_id: str | None = None
    file_id: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sandbox:
    """Everything the simulated service knows; thread-safe for a test thread next to the server's loop."""

    config: SandboxConfig = field(default_factory=SandboxConfig)
    catalog: Catalog = field(default_factory=load_catalog, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self._initial_config = self.config
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.tasks: dict[str, SandboxTask] = {}
        self.spent = 0.0  # credits reserved by submissions since the balance was last set
        self.idempotency_keys: dict[tuple[str, str], str] = {}  # (account, Idempotency-Key) -> the task it created
        self.faults: list[Fault] = []
        self.latencies: list[Latency] = []
        self.log: list[LoggedRequest] = []
        self.files = FileStore(
            self.config.max_files, self.config.max_file_bytes, timedelta(hours=self.config.file_ttl_hours)
        )
        self.images = ImageCache(self.config.max_cached_images)

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget tasks, files, faults, the log and cached images; restore the initial config."""
        with self._lock:
            self.config = self._initial_config
            self.spent = 0.0
            self.tasks.clear()
            self.idempotency_keys.clear()
            self.faults.clear()
            self.latencies.clear()
            self.log.clear()
        self.files.clear()
        self.files.max_files = self.config.max_files
        self.files.max_bytes = self.config.max_file_bytes
        self.images.clear()

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change config fields until the next reset (e.g. `configure(api_key="k", max_files=2)`); a `balance`
        given is what the account has from now on."""
        self.config = replace(self.config, **changes)
        if "balance" in changes:
            self.spent = 0.0
        self.files.max_files = self.config.max_files
        self.files.max_bytes = self.config.max_file_bytes
        self.images.max_items = self.config.max_cached_images
        return self.config

    def close(self) -> None:
        """Remove stored files from disk."""
        self.files.close()

    # -- credits ---------------------------------------------------------------------------------

    @property
    def balance(self) -> float:
        """The account's credits left."""
        return round(self.config.balance - self.spent, 4)

    def credits_json(self) -> dict[str, Any]:
        """GET /v1/credits, as documented: the account (`user`) and this API key (`token`, no limit of its own)."""
        spent = round(self.spent, 4)
        return {
            "data": {
                "token": {"remaining_credits": self.balance, "unlimited_credits": True, "used_credits": spent},
                "user": {"remaining_credits": self.balance, "used_credits": spent},
            },
            "message": "",
            "success": True,
        }

    # -- tasks -----------------------------------------------------------------------------------

    def create_task(
        self, spec: ModelSpec, req: GenerationRequest, base_url: str, body: dict[str, Any], account: str = ""
    ) -> SandboxTask:
        markers = parse_markers(req.prompt)
        n = req.n or 1
        width, height = image_dimensions(spec, req)
        outcome, error_code = "completed", None
        if markers.fail:
            outcome, error_code = "failed", markers.fail
        elif markers.status:
            outcome = markers.status
        credits = credits_for(spec, req, n)
        with self._lock:
            if credits > self.balance:
                raise InsufficientBalance(credits, self.balance)
            self.spent += credits
        now = time.time()
        task = SandboxTask(
            id=new_task_id(now),
            model=spec.id,
            created=int(now),
            started=self.clock(),
            duration=self.config.task_seconds if markers.duration is None else markers.duration,
            prompt=req.prompt or "",
            n=n,
            width=width,
            height=height,
            image_format=image_format(req),
            credits=credits,
            user_group=self.config.user_group,
            base_url=base_url.rstrip("/"),
            outcome=outcome,
            error_code=error_code,
            expire_on_completion=markers.expire,
            request_body=body,
            account=account,
        )
        with self._lock:
            self.tasks[task.id] = task
        return task

    def get_task(self, task_id: str) -> SandboxTask | None:
        return self.tasks.get(task_id)

    def expire(self, task_id: str) -> bool:
        """Make the task (and its result URLs) answer 404 from now on."""
        task = self.tasks.get(task_id)
        if task is None:
            return False
        task.expired = True
        return True

    def task_status(self, task_id: str) -> str | None:
        task = self.tasks.get(task_id)
        return None if task is None else task.phase(self.clock())[0]

    # -- faults ----------------------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        status: int,
        *,
        count: int = 1,
        method: str | None = None,
        retry_after: str | float | None = None,
        body: dict[str, Any] | None = None,
    ) -> Fault:
        """The next `count` requests to `endpoint` answer `status` with the documented error body."""
        fault = Fault(
            next(self._ids),
            "status",
            _check_endpoint(endpoint),
            method,
            _check_count(count),
            int(status),
            None if retry_after is None else _retry_after_text(retry_after),
            body,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def drop_next(
        self, endpoint: str, *, count: int = 1, when: DropWhen = "before", method: str | None = None
    ) -> Fault:
        """Close the connection of the next `count` requests: before processing, or after (answer lost)."""
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        fault = Fault(next(self._ids), "drop", _check_endpoint(endpoint), method, _check_count(count), when=when)
        with self._lock:
            self.faults.append(fault)
        return fault

    def add_latency(self, endpoint: str, ms: float, *, method: str | None = None, count: int | None = None) -> Latency:
        """Delay matching requests by `ms` milliseconds (the next `count` of them, or all)."""
        if ms < 0:
            raise ValueError("ms must be >= 0")
        latency = Latency(
            next(self._ids),
            _check_endpoint(endpoint),
            float(ms),
            method,
            None if count is None else _check_count(count),
        )
        with self._lock:
            self.latencies.append(latency)
        return latency

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.latencies.clear()

    def take_fault(self, endpoint: str, method: str) -> Fault | None:
        """The first scripted fault matching this request, consumed once."""
        with self._lock:
            for fault in self.faults:
                if _matches(fault.endpoint, fault.method, endpoint, method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def take_latency(self, endpoint: str, method: str) -> float:
        """Seconds to wait before answering this request."""
        total = 0.0
        with self._lock:
            for latency in list(self.latencies):
                if _matches(latency.endpoint, latency.method, endpoint, method):
                    total += latency.ms / 1000
                    if latency.remaining is not None:
                        latency.remaining -= 1
                        if latency.remaining <= 0:
                            self.latencies.remove(latency)
        return total

    # -- request log -----------------------------------------------------------------------------

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.log.append(entry)

    def requests(self, endpoint: str | None = None, method: str | None = None) -> list[LoggedRequest]:
        """Logged requests, oldest first; `endpoint` "files" matches every files route."""
        with self._lock:
            entries = list(self.log)
        if endpoint is None:
            return [e for e in entries if method is None or e.method == method.upper()]
        return [e for e in entries if _matches(endpoint, method, e.endpoint, e.method)]


def _check_endpoint(endpoint: str) -> str:
    name = endpoint.strip().strip("/")
    if name != "files" and name not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of: files, {', '.join(ENDPOINTS)}")
    return name


def _check_count(count: int) -> int:
    if count < 1:
        raise ValueError("count must be >= 1")
    return int(count)


def _retry_after_text(value: str | float) -> str:
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else str(value)
    return value
