"""Command line: `evolink-mcp` (stdio server), serve, generate, models, sandbox."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import __version__
from .settings import Settings, SettingsError

SANDBOX_KEY = "sandbox-key"
EXIT_FAILED, EXIT_INVALID, EXIT_ERROR, EXIT_STILL_RUNNING = 1, 2, 3, 4


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox",
        action="store_true",
        default=None,
        help="use the built-in Evolink simulator (no key, no network)",
    )
    parser.add_argument("--default-model", help="model used when none is named (EVOLINK_DEFAULT_MODEL)")
    parser.add_argument("--log-level", help="stderr log level (EVOLINK_LOG_LEVEL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evolink-mcp",
        description="MCP server for the Evolink image API. With no command: the stdio server.",
    )
    parser.add_argument("--version", action="version", version=f"evolink-mcp {__version__}")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the MCP server (stdio, SSE or streamable HTTP)")
    serve.add_argument("--transport", choices=["stdio", "sse", "streamable-http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token", help="bearer token required over HTTP (EVOLINK_MCP_TOKEN)")
    _add_common(serve)

    generate = commands.add_parser("generate", help="generate images from a terminal and save them")
    generate.add_argument("prompt")
    generate.add_argument("--model")
    generate.add_argument("--size")
    generate.add_argument("--quality")
    generate.add_argument("--resolution")
    generate.add_argument("--n", type=int)
    generate.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="reference image (repeat for several)",
    )
    generate.add_argument("--mask", metavar="PATH_OR_URL")
    generate.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model-specific parameter, VALUE parsed as JSON when it can be",
    )
    generate.add_argument("--out", type=Path, help="output directory (EVOLINK_OUTPUT_DIR)")
    generate.add_argument("--wait", type=float, default=300, help="seconds to wait for the result")
    generate.add_argument(
        "--request-id",
        help="your id for this request: the same id again returns its task instead of paying twice",
    )
    _add_common(generate)

    models = commands.add_parser("models", help="print the model catalog")
    models.add_argument("--mode", help="only models with this mode")
    models.add_argument("--json", action="store_true", help="print JSON")
    _add_common(models)

    tasks = commands.add_parser("tasks", help="recent generations from the journal, newest first")
    tasks.add_argument("--status", help="only tasks with this status (completed, failed, pending, unknown, ...)")
    tasks.add_argument("--limit", type=int, default=20)
    tasks.add_argument("--json", action="store_true", help="print JSON")

    sandbox = commands.add_parser("sandbox", help="serve the Evolink simulator alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=4010)
    sandbox.add_argument("--task-seconds", type=float, default=6.0)
    return parser


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    try:
        return Settings.from_env(
            sandbox=getattr(args, "sandbox", None),
            default_model=getattr(args, "default_model", None),
            log_level=getattr(args, "log_level", None),
            **overrides,
        )
    except SettingsError as exc:
        raise SystemExit(f"evolink-mcp: {exc}") from None


@contextmanager
def sandbox_if_asked(settings: Settings) -> Iterator[Settings]:
    """In sandbox mode, serve the simulator in-process and point the settings at it."""
    if not settings.sandbox:
        yield settings
        return
    from .sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(task_seconds=settings.sandbox_task_seconds)) as running:
        yield settings.with_overrides(
            base_url=running.base_url, files_base_url=running.base_url, api_key=_secret(SANDBOX_KEY)
        )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def _setup_logging(settings: Settings) -> None:
    from .logs import configure_logging

    secrets = [s.get_secret_value() for s in (settings.api_key, settings.mcp_token) if s is not None]
    configure_logging(settings.log_level, secrets)


def run_serve(args: argparse.Namespace) -> None:
    settings = _settings(args, mcp_token=_secret(args.token) if args.token else None)
    _setup_logging(settings)
    if args.transport != "stdio":
        from .transports import check_http_exposure

        check_http_exposure(settings, args.host)  # before importing the SDK: refusing must be quick
    import gc

    import anyio

    # Importing the SDK makes about a million objects that live as long as the process; cyclic collections
    # during start-up only walk them again (~10% of spawn -> tools/list). Collect again once they are frozen.
    gc.disable()
    from .app import build_deps, build_server

    with sandbox_if_asked(settings) as settings:
        http = args.transport != "stdio"
        deps = build_deps(settings, allowed_dirs=settings.allowed_dirs if http else None)
        if not http:
            from .transports import serve_stdio

            server = build_server(deps)
            gc.freeze()
            gc.enable()
            anyio.run(serve_stdio, server)
            return
        from .transports import http_loop_options, serve_http

        gc.freeze()
        gc.enable()
        anyio.run(lambda: serve_http(deps, host=args.host, port=args.port), backend_options=http_loop_options())


def _parse_extra(pairs: Sequence[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"evolink-mcp: --extra expects KEY=VALUE, got {pair!r}")
        try:
            extra[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            extra[key.strip()] = raw
    return extra


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal, else one line per change)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""

    async def update(self, task: Any) -> None:
        if not self.last:
            credits = f", {task.credits:g} credits reserved" if task.credits is not None else ""
            sys.stderr.write(f"task {task.task_id} submitted ({task.model}{credits})\n")
        progress = task.progress or 0
        done = int(progress // 5)
        left = task.estimated_seconds_left
        eta = f" ~{left:.0f}s left" if left and not task.is_terminal else ""
        line = f"[{'#' * done}{'.' * (20 - done)}] {progress:3.0f}% {task.status}{eta}"
        if line == self.last:
            return
        self.last = line
        sys.stderr.write(("\r" + line.ljust(60)) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")


async def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from .app import build_deps
    from .catalog import GenerationRequest
    from .evolink import InvalidRequestError, task_failure_advice

    deps = build_deps(settings, allowed_dirs=None)
    request = GenerationRequest(
        prompt=args.prompt,
        size=args.size,
        quality=args.quality,
        resolution=args.resolution,
        n=args.n,
        image_urls=list(args.image),
        mask_url=args.mask,
        extra=_parse_extra(args.extra),
    )
    bar = ProgressBar()
    try:
        outcome = await deps.service.generate(
            args.model,
            request,
            allowed_dirs=None,
            request_key=args.request_id,
            wait_seconds=args.wait,
            on_update=bar.update,
            inline="none",
        )
    finally:
        bar.close()
        await deps.client.aclose()
        deps.service.journal.close()
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    record, error = outcome.record, outcome.error
    if record is None:
        assert error is not None
        if isinstance(error, InvalidRequestError):
            print(f"error: {error.message}\nnext step: {error.next_step}", file=sys.stderr)
            return EXIT_INVALID
        print(f"error ({error.category}): {error.message}\nnext step: {error.next_step}", file=sys.stderr)
        key = error.to_dict().get("idempotency_key")
        if outcome.charged == "unknown":
            print("charged: unknown — a task may have been created.", file=sys.stderr)
        if key:
            print(f"retry with --request-id {key}: if the task exists it is returned, not paid twice", file=sys.stderr)
        return EXIT_ERROR
    results = outcome.results
    if results is not None:
        for image in results.images:
            print(image.path)
        if results.save_error:
            print(f"error: saving failed: {results.save_error}", file=sys.stderr)
            for url in results.urls:
                print(f"result URL (expires in 24 h): {url}", file=sys.stderr)
            return EXIT_ERROR
        return 0
    if record.status == "failed":
        advice = task_failure_advice(record.error_code or None)
        print(
            f"error: task {record.task_id} failed: {record.error_code}: {record.error_message or ''}\n"
            f"next step: {advice.next_step}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if record.is_terminal:
        print(f"error: task {record.task_id} ended with status {record.status!r}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"task {record.task_id} is still {record.status} ({record.progress or 0:.0f}%); check it later with the "
        "check_task tool",
        file=sys.stderr,
    )
    return EXIT_STILL_RUNNING


def run_generate(args: argparse.Namespace) -> int:
    import anyio

    settings = _settings(args, output_dir=args.out.expanduser().resolve() if args.out else None)
    _setup_logging(settings.with_overrides(log_level="WARNING") if settings.log_level == "INFO" else settings)
    with sandbox_if_asked(settings) as settings:
        return anyio.run(_generate, settings, args)


def run_models(args: argparse.Namespace) -> int:
    from .catalog import CatalogError, load_catalog
    from .present import summarize

    settings = _settings(args)
    try:
        catalog = load_catalog(settings.catalog_file, settings.default_model)
    except CatalogError as exc:
        raise SystemExit(f"evolink-mcp: {exc}") from None
    if args.json:  # everything the catalog knows, as the evolink://models resource gives it
        chosen_specs = [
            {**m, "default": m["id"] == catalog.default.id}
            for m in catalog.to_json()
            if not args.mode or args.mode in m["modes"]
        ]
        print(json.dumps(chosen_specs, indent=2, ensure_ascii=False))
        return 0
    chosen = [summarize(m, catalog.default.id) for m in catalog.models if not args.mode or args.mode in m.modes]
    rows = [("MODEL", "MODES", "SIZES", "QUALITY/TIER", "N", "REFS")]
    for m in chosen:
        sizes = ",".join(m.sizes[:6]) + ("…" if len(m.sizes) > 6 else "") + (" +WxH" if m.pixel_sizes else "")
        tiers = "/".join(m.quality or m.resolution) or "-"
        if m.quality and m.resolution:
            tiers = "/".join(m.quality) + " | " + "/".join(m.resolution)
        n = f"{m.n[0]}-{m.n[-1]}" if len(m.n) > 1 else "1"
        rows.append(
            (
                m.id + (" *" if m.default else "") + (" (beta)" if m.beta else ""),
                ",".join(m.modes),
                sizes or "-",
                tiers,
                n,
                str(m.max_reference_images or "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"\n{len(chosen)} models; * = default ({catalog.default.id}). Details: evolink-mcp models --json")
    return 0


_TERMINAL_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(text: str) -> str:
    """`text` with what a terminal would act on (escape sequences, bidi overrides) shown as escapes."""
    return _TERMINAL_CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _printable(task: Any) -> Any:
    """A TaskSummary whose text (much of it from upstream) is safe to print to a terminal."""
    fields = task.model_dump(exclude={"prompt"})  # entry_line shows the prompt's repr: escaped already
    changed = {
        k: _escaped(v) if isinstance(v, str) else [_escaped(i) for i in v]
        for k, v in fields.items()
        if isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
    }
    return task.model_copy(update=changed)


def run_tasks(args: argparse.Namespace) -> int:
    import anyio

    from .journal import Journal, entry_line, summarize_entry

    settings = _settings(args)
    journal = Journal(settings.state_dir)
    try:
        entries = anyio.run(lambda: journal.recent(status=args.status, limit=args.limit))
        tasks = [summarize_entry(e) for e in entries]
        if args.json:
            # ASCII: JSON escapes C0 controls only; C1 controls and bidi overrides are upstream text too.
            print(json.dumps([t.model_dump(exclude_none=True) for t in tasks], indent=2, ensure_ascii=True))
        else:
            for task in tasks:
                print(entry_line(_printable(task)))
            print(f"{len(tasks)} task(s); journal: {journal.location}", file=sys.stderr)
    finally:
        journal.close()
    return 0


def run_sandbox(args: argparse.Namespace) -> None:
    from .sandbox import serve

    serve(args.host, args.port, task_seconds=args.task_seconds)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]  # bare `evolink-mcp [--sandbox]`: the stdio server desktop clients launch
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        run_serve(args)
    elif args.command == "generate":
        sys.exit(run_generate(args))
    elif args.command == "models":
        sys.exit(run_models(args))
    elif args.command == "tasks":
        sys.exit(run_tasks(args))
    elif args.command == "sandbox":
        run_sandbox(args)
