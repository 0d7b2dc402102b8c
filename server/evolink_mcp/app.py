"""Builds the MCPServer: dependencies, tools, resources and the lifespan that shares them."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.tools import Tool
from mcp_types import Resource as MCPResource

from . import __version__
from .catalog import Catalog, load_catalog
from .evolink import EvolinkClient, RetryPolicy
from .images import Clock, ImageService
from .journal import SINGLE_TENANT, JournalError, open_journal, summarize_entry
from .media import SAVED_IMAGES, TASK_IMAGES, sniff_image
from .prompts import prompt_specs
from .settings import Settings
from .studio import only_for_apps_clients, studio_extension, with_studio
from .tools import Deps, tool_specs
from .tools.common import IMAGE_TYPES, current_deps, saved_image_uri

SERVER_NAME = "evolink-mcp"
RECENT_TASKS_LISTED = 50  # resources/list names the saved images of this many recent tasks
INSTRUCTIONS = (
    "Create or edit images with generate_image: it costs credits, waits for the result, saves the files "
    "locally and shows a preview. If it returns while the task is still running, call check_task with "
    "the task_id. Use list_models to pick a model and valid sizes/qualities; pass local paths or "
    "upload_file URLs as reference images."
)


def build_deps(
    settings: Settings,
    *,
    allowed_dirs: Sequence[Path] | None,
    catalog: Catalog | None = None,
    retry: RetryPolicy | None = None,
    clock: Clock | None = None,
) -> Deps:
    """The one set of dependencies for this process (no network, no I/O beyond reading the catalog)."""
    catalog = catalog or load_catalog(settings.catalog_file, settings.default_model)
    client = EvolinkClient(
        settings.api_key,
        base_url=settings.base_url,
        files_base_url=settings.files_base_url,
        retry=retry,
        download_allow_hosts=settings.download_allow_hosts,
    )
    journal = open_journal(settings)
    if settings.multi_tenant:  # each caller's tasks are resumed with its own key, when it next calls (tenants.py)
        from .tenants import TenantJournal

        journal = TenantJournal(journal, SINGLE_TENANT, process_wide=True)
    return Deps(
        settings=settings,
        catalog=catalog,
        client=client,
        service=ImageService(settings, catalog, client, journal, clock=clock),
        # The server's own output folder is always readable by it: a saved image can be edited over any transport.
        allowed_dirs=None if allowed_dirs is None else (*allowed_dirs, settings.output_dir),
    )


@asynccontextmanager
async def process_resources(deps: Deps) -> AsyncIterator[None]:
    """What lives as long as the process serves: background task following, the HTTP client, the journal."""
    try:
        await deps.service.journal.open()  # PostgreSQL unreachable at start-up: a clear error, the server stops
        async with deps.service.running():
            yield
    finally:
        await deps.client.aclose()
        await deps.service.journal.aclose()


@lru_cache(maxsize=8)
def server_tools(catalog: Catalog, default_wait: float) -> tuple[Tool, ...]:
    """The SDK tools for this catalog, studio ones included. Building them validates every schema (~50 ms), so it
    is done once per catalog: every server built from an equal catalog shares them (they keep no state)."""
    return tuple(spec.to_tool() for spec in with_studio(tool_specs(catalog, default_wait)))


@lru_cache(maxsize=8)
def server_prompts(catalog: Catalog) -> tuple[Prompt, ...]:
    """The SDK prompts for this catalog, built once per catalog as the tools are."""
    return tuple(
        Prompt.from_function(spec.fn, name=spec.name, title=spec.title, description=spec.description)
        for spec in prompt_specs(catalog)
    )


def build_server(deps: Deps, *, manage_process_resources: bool = True) -> EvolinkServer:
    """An MCPServer over `deps`: every tool spec, the catalog resources, saved images as resources.

    With `manage_process_resources`, the first session's lifespan runs `process_resources` (stdio, in-memory
    clients); HTTP transports run it in their own application lifespan instead, since SSE enters the
    server lifespan once per connection.
    """
    sessions = 0

    @asynccontextmanager
    async def lifespan(_: MCPServer[Deps]) -> AsyncIterator[Deps]:
        nonlocal sessions
        sessions += 1
        try:
            if manage_process_resources and sessions == 1:
                async with process_resources(deps):
                    yield deps
            else:
                yield deps
        finally:
            sessions -= 1

    server = EvolinkServer(
        deps,
        title="Evolink Images",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://evolink.ai",
        lifespan=lifespan,
        log_level=deps.settings.log_level,
        tools=list(server_tools(deps.catalog, deps.settings.wait_seconds)),
        extensions=[studio_extension()],  # MCP Apps: seen only by clients that negotiated it (studio/)
        middleware=[only_for_apps_clients],
    )
    _add_resources(server, deps)
    for prompt in server_prompts(deps.catalog):
        server.add_prompt(prompt)
    return server


def _add_resources(server: MCPServer[Deps], deps: Deps) -> None:
    """The catalog, the journal's tasks, and saved images (any this server's output folder holds, from any
    process: read from disk on each request, not registered one by one)."""
    catalog = deps.catalog

    @server.resource("evolink://models", name="models", title="Evolink image models", mime_type="application/json")
    def all_models() -> str:
        """Every model in the catalog with its limits (JSON)."""
        return json.dumps({"default_model": catalog.default.id, "models": catalog.to_json()}, ensure_ascii=False)

    @server.resource(
        "evolink://models/{model_id}",
        name="model",
        title="One Evolink image model",
        mime_type="application/json",
    )
    def one_model(model_id: str) -> str:
        """One model's limits (JSON), by id or alias."""
        spec = catalog.get(model_id)
        if spec is None:
            hint = catalog.suggest(model_id)
            raise ResourceError(f"Unknown model {model_id!r}." + (f" Did you mean {hint[0]!r}?" if hint else ""))
        return spec.model_dump_json(exclude_none=True)

    @server.resource(
        "evolink://tasks/{task_id}", name="task", title="A submitted generation", mime_type="application/json"
    )
    def one_task(task_id: str) -> str:
        """What the journal knows of a task: status, prompt, model, credits, saved files (JSON)."""
        entry = current_deps(deps).service.journal.by_task_id_now(task_id)
        if entry is None:
            raise ResourceError(f"No task {task_id!r} in this server's journal; list_tasks shows the recent ones.")
        return summarize_entry(entry).model_dump_json(exclude_none=True)

    _add_saved_image_templates(server, deps)


def _add_saved_image_templates(server: MCPServer[Deps], deps: Deps) -> None:
    """Per image type, one resource template over the output folder and one over each task's saved images
    (those saved in a folder a call chose)."""

    def reader(extension: str) -> Callable[[str], bytes]:
        def read(name: str) -> bytes:
            return _read_saved_image(current_deps(deps).settings, name, extension)

        return read

    def task_reader(extension: str) -> Callable[[str, str], bytes]:
        def read(task_id: str, name: str) -> bytes:
            return _read_task_image(current_deps(deps), task_id, f"{name}.{extension}")

        return read

    for extension, mime_type in IMAGE_TYPES.items():
        server.resource(
            f"{SAVED_IMAGES}{{name}}.{extension}",
            name=f"saved-{extension}",
            title=f"A saved image (.{extension})",
            mime_type=mime_type,
        )(reader(extension))
        server.resource(
            f"{TASK_IMAGES}{{name}}.{extension}",
            name=f"task-image-{extension}",
            title=f"A task's saved image, in any folder (.{extension})",
            mime_type=mime_type,
        )(task_reader(extension))


def _read_saved_image(settings: Settings, name: str, extension: str) -> bytes:
    folder = settings.output_dir.resolve()
    path = folder / f"{name}.{extension}"
    unknown = ResourceError(f"No saved image {path.name!r} in the output folder; list_tasks shows the saved files.")
    if "/" in name or "\\" in name or name.startswith(".") or path.resolve().parent != folder:
        raise unknown
    return _read_image(path, settings.max_download_bytes, unknown)


def _read_task_image(deps: Deps, task_id: str, file_name: str) -> bytes:
    """A file the journal names as one of this task's saved images, at its real path (no symlink on the way); over
    HTTP only inside the folders this server may write. No path is ever made from the URI."""
    unknown = ResourceError(f"No saved image {file_name!r} of task {task_id!r}; list_tasks shows the saved files.")
    try:
        entry = deps.service.journal.by_task_id_now(task_id)
    except JournalError:
        raise unknown from None
    path = next((Path(p) for p in (entry.saved_paths if entry else []) if Path(p).name == file_name), None)
    if path is None or not path.is_absolute() or path.resolve() != path:
        raise unknown
    if not _may_serve(deps, path):
        raise unknown
    return _read_image(path, deps.settings.max_download_bytes, unknown)


def _may_serve(deps: Deps, path: Path) -> bool:
    """Over HTTP, only what lies inside the folders this server may write; over stdio, the user's own files."""
    roots = None if deps.allowed_dirs is None else [*deps.allowed_dirs, deps.settings.output_dir]
    return roots is None or any(path.is_relative_to(root.resolve()) for root in roots)


def _read_image(path: Path, max_bytes: int, unknown: ResourceError) -> bytes:
    """The image at `path`, of the type its extension says, or `unknown`."""
    try:  # no symlink followed, so nothing outside the folder is ever served
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise unknown from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(max_bytes + 1)
    extension = path.suffix.lstrip(".")
    if sniff_image(data[:16]) != (extension, IMAGE_TYPES.get(extension)):
        raise unknown  # only images: never an arbitrary file that happens to sit in the folder
    return data


class EvolinkServer(MCPServer[Deps]):
    """The MCP server, whose resource list also names the images of recent tasks (read through the templates)."""

    def __init__(self, deps: Deps, **options: Any) -> None:
        super().__init__(SERVER_NAME, **options)
        self.deps = deps

    async def list_resources(self) -> list[MCPResource]:
        listed = await super().list_resources()
        deps = current_deps(self.deps)  # the caller's own tasks, with per-user keys
        try:
            entries = await deps.service.journal.recent(limit=RECENT_TASKS_LISTED)
        except JournalError:
            return listed
        saved = [(entry.task_id, Path(p)) for entry in entries for p in summarize_entry(entry).saved_paths]
        return listed + await anyio.to_thread.run_sync(_saved_images, deps, saved)


def _saved_images(deps: Deps, saved: list[tuple[str | None, Path]]) -> list[MCPResource]:
    """The saved images still on disk that the templates serve, as resources."""
    found = []
    for task_id, path in saved:
        uri = saved_image_uri(path, deps.settings.output_dir, task_id)
        if uri is not None and path.is_file() and _may_serve(deps, path):
            mime_type = IMAGE_TYPES[path.suffix.lstrip(".")]
            found.append(MCPResource(uri=uri, name=path.name, title=f"Image of task {task_id}", mime_type=mime_type))
    return found
