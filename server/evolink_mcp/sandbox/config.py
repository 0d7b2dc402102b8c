"""Sandbox settings: timings, limits and the accepted key."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import SANDBOX_TASK_SECONDS

MB = 1024 * 1024


@dataclass(frozen=True)
class SandboxConfig:
    """How the simulated Evolink service behaves; tests shrink `task_seconds` to a few milliseconds."""

    task_seconds: float = SANDBOX_TASK_SECONDS
    api_key: str | None = None  # None: any non-empty bearer key is accepted
    max_cached_images: int = 32
    max_files: int = 100
    max_file_bytes: int = 100 * MB
    file_ttl_hours: int = 72
    user_group: str = "default"
    public_url: str | None = None  # base of result and file URLs; None: the URL the request came in on
    balance: float = 10_000.0  # the account's credits; each submission reserves its price from them (402 when short)

    def __post_init__(self) -> None:
        if self.task_seconds < 0:
            raise ValueError("task_seconds must be >= 0")
        if self.max_cached_images < 1:
            raise ValueError("max_cached_images must be >= 1")
        if self.balance < 0:
            raise ValueError("balance must be >= 0")
