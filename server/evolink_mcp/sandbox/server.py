"""Running the sandbox: in a background thread for tests (`SandboxServer`), or blocking (`serve`)."""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any

from ..settings import SANDBOX_TASK_SECONDS
from .app import DroppedConnection, create_app
from .config import SandboxConfig
from .state import Sandbox

logger = logging.getLogger("evolink_mcp.sandbox")
STARTUP_TIMEOUT = 15.0


class _QuietScriptedDrops(logging.Filter):
    """uvicorn logs an error with a traceback for every scripted connection drop: keep those quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def _quiet_scripted_drops() -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietScriptedDrops) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_QuietScriptedDrops())


def _uvicorn_config(state: Sandbox, host: str, port: int, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        http="h11",  # the scripted drops rely on h11's checks; pinned so installing httptools changes nothing
        lifespan="off",
        log_config=None,  # never reconfigure the host process's logging
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


class SandboxServer:
    """The sandbox served by uvicorn on a background thread; a context manager.

    `with SandboxServer(SandboxConfig(task_seconds=0.05)) as server:` -> `server.base_url`, `server.state`.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state: Sandbox | None = None,
        log_level: str = "warning",
    ) -> None:
        self.state = state if state is not None else Sandbox(config or SandboxConfig())
        self.host = host
        self.port = port
        self.log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox server is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def config(self) -> SandboxConfig:
        return self.state.config

    def start(self) -> SandboxServer:
        """Start serving; returns once the socket is listening."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError("the sandbox server is already running")
        _quiet_scripted_drops()
        server = uvicorn.Server(_uvicorn_config(self.state, self.host, self.port, self.log_level))
        thread = threading.Thread(target=server.run, name="evolink-sandbox", daemon=True)
        thread.start()
        stopped = threading.Event()
        for _ in range(int(STARTUP_TIMEOUT / 0.01)):
            if server.started or not thread.is_alive():
                break
            stopped.wait(0.01)
        if not server.started:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT)
            raise RuntimeError(f"the sandbox did not start on {self.host}:{self.port} (see the log above)")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread
        logger.info("sandbox listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Shut down the server and delete stored files."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT)
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 4010,
    *,
    task_seconds: float = SANDBOX_TASK_SECONDS,
    api_key: str | None = None,
    config: SandboxConfig | None = None,
    log_level: str = "info",
) -> None:
    """Serve the sandbox until interrupted (`evolink-mcp sandbox --port 4010`); logs go to stderr."""
    import uvicorn

    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    _quiet_scripted_drops()
    state = Sandbox(config or SandboxConfig(task_seconds=task_seconds, api_key=api_key))
    logger.info("Evolink sandbox on http://%s:%s (tasks take %gs)", host, port, state.config.task_seconds)
    try:
        uvicorn.Server(_uvicorn_config(state, host, port, log_level)).run()
    finally:
        state.close()
