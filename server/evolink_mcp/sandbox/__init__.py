"""An Evolink-compatible simulator: generation, tasks and files APIs with scripted faults (tests, demos).

Importing this package is cheap: Starlette, uvicorn and Pillow load only when the app or a server is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .state import ENDPOINTS, Fault, Latency, LoggedRequest, Sandbox
from .tasks import SandboxTask

if TYPE_CHECKING:
    from .app import DroppedConnection, create_app
    from .server import SandboxServer, serve

_LAZY = {
    "create_app": ".app",
    "DroppedConnection": ".app",
    "SandboxServer": ".server",
    "serve": ".server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENDPOINTS",
    "DroppedConnection",
    "Fault",
    "Latency",
    "LoggedRequest",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "SandboxTask",
    "create_app",
    "serve",
]
