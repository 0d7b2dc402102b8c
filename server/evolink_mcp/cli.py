"""Command line: `evolink-mcp` (stdio server), serve, generate, check, models, tasks, doctor, gallery, sandbox."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .catalog import DEFAULT_MODEL
from .settings import SANDBOX_TASK_SECONDS, Settings, SettingsError

if TYPE_CHECKING:
    from .journal import TaskRecord

SANDBOX_KEY = "sandbox-key"
EXIT_FAILED, EXIT_INVALID, EXIT_ERROR, EXIT_STILL_RUNNING = 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


# What `tasks --status` takes: a task's status upstream, or where a submission stands in the journal.
TASK_STATUSES = ("pending", "processing", "completed", "failed", "unknown", "submitting", "refused")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox",
        action="store_true",
        default=None,
        help="use the built-in Evolink simulator: no key, no network (default: EVOLINK_SANDBOX, else off)",
    )
    parser.add_argument(
        "--default-model",
        help=f"model used when none is named (default: EVOLINK_DEFAULT_MODEL, else {DEFAULT_MODEL})",
    )
    parser.add_argument("--log-level", help="stderr log level (default: EVOLINK_LOG_LEVEL, else INFO)")


def _add_result_options(parser: argparse.ArgumentParser, wait: float) -> None:
    """What generate and check share: where to save, how long to wait, how to print, whether to show."""
    parser.add_argument("--out", type=Path, help="output folder (default: EVOLINK_OUTPUT_DIR, else ~/Pictures/Evolink)")
    parser.add_argument("--wait", type=float, default=wait, help=f"seconds to wait for the result (default: {wait:g})")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (task id, status, paths, URLs, credits, charged) instead of paths (default: off)",
    )
    parser.add_argument(
        "--open", action="store_true", help="show the saved images in the system's image viewer (default: off)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evolink-mcp",
        description="MCP server for the Evolink image API. With no command: the stdio server.",
    )
    parser.add_argument("--version", action="version", version=f"evolink-mcp {__version__}")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the MCP server (stdio, SSE or streamable HTTP)")
    serve.add_argument(
        "--transport", choices=["stdio", "sse", "streamable-http"], default="stdio", help="transport (default: stdio)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default: 8000)")
    serve.add_argument("--token", help="bearer token required over HTTP (default: EVOLINK_MCP_TOKEN, else none)")
    _add_common(serve)

    generate = commands.add_parser("generate", help="generate images from a terminal and save them")
    generate.add_argument("prompt", help="what to create, or how to change the reference images")
    generate.add_argument("--model", help="model id, see `evolink-mcp models` (default: the default model)")
    generate.add_argument("--size", help="aspect ratio such as 16:9, or WxH (default: the model's)")
    generate.add_argument("--quality", help="quality tier such as high or 2K (default: the model's)")
    generate.add_argument("--resolution", help="pixel tier, for models with both (default: the model's)")
    generate.add_argument("--n", type=int, help="how many images (default: the model's, usually 1)")
    generate.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="reference image, repeat for several: a path, a URL or an evolink://images/ URI (default: none)",
    )
    generate.add_argument("--mask", metavar="PATH_OR_URL", help="PNG mask for inpainting (default: none)")
    generate.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model-specific parameter, VALUE parsed as JSON when it can be (default: none)",
    )
    generate.add_argument(
        "--max-credits", type=float, help="refuse if it would reserve more (default: EVOLINK_MAX_CREDITS_PER_CALL)"
    )
    generate.add_argument(
        "--request-id",
        help="your id for this request: the same id again returns its task instead of paying twice (default: none)",
    )
    _add_result_options(generate, wait=300)
    _add_common(generate)

    check = commands.add_parser("check", help="wait for a task, save its images and print their paths")
    check.add_argument("task_id", help="the task id generate printed")
    _add_result_options(check, wait=300)
    _add_common(check)

    models = commands.add_parser("models", help="print the model catalog")
    models.add_argument("--mode", help="only models with this mode, e.g. edit or inpaint (default: all)")
    models.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    _add_common(models)

    tasks = commands.add_parser("tasks", help="recent generations from the journal, newest first")
    tasks.add_argument("--status", choices=TASK_STATUSES, help="only tasks with this status (default: all)")
    tasks.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    tasks.add_argument("--json", action="store_true", help="print JSON (default: one line per task)")

    doctor = commands.add_parser("doctor", help="check the setup: settings, key, API, folders, journal; client configs")
    _add_common(doctor)

    gallery = commands.add_parser("gallery", help="write an HTML page of the saved images and print its path")
    gallery.add_argument(
        "--out", type=Path, help="images folder (default: EVOLINK_OUTPUT_DIR, else ~/Pictures/Evolink)"
    )
    gallery.add_argument("--limit", type=int, default=200, help="newest tasks from the journal (default: 200)")

    sandbox = commands.add_parser("sandbox", help="serve the Evolink simulator alone")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=4010, help="port (default: 4010)")
    sandbox.add_argument(
        "--task-seconds",
        type=float,
        default=SANDBOX_TASK_SECONDS,
        help=f"how long each task takes (default: {SANDBOX_TASK_SECONDS:g})",
    )
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

    secrets = [s.get_secret_value() for s in (settings.api_key, settings.mcp_token, settings.tenant_secret) if s]
    configure_logging(settings.log_level, [*secrets, *settings.mcp_tokens])  # each token alone too (rotation)


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
            anyio.run(serve_stdio, server, deps.service.journal)
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
        self.task_id: str | None = None  # once the task exists: what Ctrl-C names
        self.last = ""

    async def announce(self, task: TaskRecord) -> None:
        from .present import submitted_line

        self.task_id = task.task_id
        sys.stderr.write(submitted_line(task) + "\n")

    async def update(self, task: TaskRecord) -> None:
        if self.task_id is None:
            await self.announce(task)
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
        self.last = ""


# The MCP tools' names and arguments in the use case's messages, as a terminal user types them.
_TERMINAL_WORDS = (
    (re.compile(r"\b[Cc]all list_models\b"), "Run `evolink-mcp models`"),
    (re.compile(r"\blist_models\b"), "`evolink-mcp models`"),
    (re.compile(r"\blist_tasks\b"), "`evolink-mcp tasks`"),
    (re.compile(r"\b[Cc]all check_task\b|\bcheck_task\b"), "`evolink-mcp check TASK_ID`"),
    (re.compile(r"\bclient_request_id\b"), "--request-id"),
    (re.compile(r"\bmax_credits\b"), "--max-credits"),
    (re.compile(r"\bwait_seconds\b"), "--wait"),
)


def _for_terminal(text: str) -> str:
    for pattern, words in _TERMINAL_WORDS:
        text = pattern.sub(words, text)
    return text


def _say(text: str) -> None:
    print(_for_terminal(text), file=sys.stderr)


async def _run_task(settings: Settings, args: argparse.Namespace, bar: ProgressBar) -> int:
    """generate or check over the one use case, then its outcome printed."""
    import anyio

    from .app import build_deps
    from .catalog import GenerationRequest

    deps = build_deps(settings, allowed_dirs=None)
    try:
        if args.command == "check":
            outcome = await deps.service.check(args.task_id.strip(), args.wait, on_update=bar.update, inline="none")
        else:
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
            outcome = await deps.service.generate(
                args.model,
                request,
                allowed_dirs=None,
                request_key=args.request_id,
                max_credits=args.max_credits,
                wait_seconds=args.wait,
                on_update=bar.update,
                inline="none",
            )
    finally:
        bar.close()
        with anyio.CancelScope(shield=True):  # also when Ctrl-C cancelled the wait
            await deps.client.aclose()
            deps.service.journal.close()
    if outcome.record is not None and bar.task_id is None and args.command == "generate":
        await bar.announce(outcome.record)  # not waited for (--wait 0): the id is still the first thing said
    if args.json:
        print(json.dumps(_outcome_json(outcome), indent=2, ensure_ascii=False))
    else:
        for warning in outcome.warnings:
            _say(f"warning: {warning}")
    code = _exit_code(outcome, quiet=args.json)
    if args.open and outcome.results is not None:
        _open_images([image.path for image in outcome.results.images])
    return code


def _outcome_json(outcome: Any) -> dict[str, Any]:
    """What a script needs of an outcome: the task, its files and URLs, its credits and whether it was charged."""
    record, results, error = outcome.record, outcome.results, outcome.error
    out: dict[str, Any] = {}
    if record is not None:
        out.update(
            task_id=record.task_id,
            status=record.status,
            progress=record.progress,
            model=record.model,
            credits=record.credits,
            # Reserved when the task was made; a failed task's refund is not documented.
            charged="unknown" if record.status == "failed" else "yes",
            paths=[str(image.path) for image in results.images] if results else [],
            urls=list(results.urls) if results else [],
        )
        if record.status == "failed":
            error_text = f"{record.error_code}: {record.error_message or ''}"
            out["error"] = {"category": "task_failed", "message": error_text}
        elif results is not None and results.save_error:
            out["error"] = {"category": "save_failed", "message": results.save_error}
    if error is not None:
        out.update(
            charged=outcome.charged or "no",
            error={
                "category": error.category,
                "message": _for_terminal(error.message),
                "next_step": _for_terminal(error.next_step),
            },
        )
    out["warnings"] = [_for_terminal(w) for w in outcome.warnings]
    return out


def _exit_code(outcome: Any, *, quiet: bool) -> int:
    """The exit code of an outcome, and (unless `quiet`: --json said it all) what it means on stdout and stderr."""
    from .evolink import InvalidRequestError

    say = (lambda text: None) if quiet else _say
    record, error = outcome.record, outcome.error
    if record is None:
        assert error is not None
        if isinstance(error, InvalidRequestError):
            say(f"error: {error.message}\nnext step: {error.next_step}")
            return EXIT_INVALID
        say(f"error ({error.category}): {error.message}\nnext step: {error.next_step}")
        key = error.to_dict().get("idempotency_key")
        if outcome.charged == "unknown":
            say("charged: unknown — a task may have been created.")
        if key:
            say(f"retry with --request-id {key}: if the task exists it is returned, not paid twice")
        return EXIT_ERROR
    results = outcome.results
    if results is not None:
        if not quiet:
            for image in results.images:
                print(image.path)
        if results.save_error:
            say(f"error: saving failed: {results.save_error}")
            for url in results.urls:
                say(f"result URL (expires in 24 h): {url}")
            return EXIT_ERROR
        return 0
    return _no_images_exit_code(outcome, say)


def _no_images_exit_code(outcome: Any, say: Callable[[str], None]) -> int:
    """The exit code of a task with no saved images (failed, ended, not handled, still running), and why."""
    from .evolink import task_failure_advice

    record = outcome.record
    if record.status == "failed":
        advice = task_failure_advice(record.error_code or None)
        say(
            f"error: task {record.task_id} failed: {record.error_code}: {record.error_message or ''}\n"
            f"next step: {advice.next_step}"
        )
        return EXIT_FAILED
    if outcome.poll_error is not None and record.is_terminal:
        say(
            f"error: task {record.task_id} is {record.status}, but handling it failed ({outcome.poll_error.message})"
            f"\nnext step: `evolink-mcp check {record.task_id}` fetches it"
        )
        return EXIT_ERROR
    if record.is_terminal:
        say(f"error: task {record.task_id} ended with status {record.status!r}")
        return EXIT_FAILED
    say(
        f"task {record.task_id} is still {record.status} ({record.progress or 0:.0f}%); "
        f"`evolink-mcp check {record.task_id}` fetches it"
    )
    return EXIT_STILL_RUNNING


def _open_images(paths: Sequence[Path]) -> None:
    """Show `paths` in the system's viewer, without waiting for it."""
    import subprocess

    for path in paths:
        if sys.platform == "win32":
            os.startfile(path)  # type: ignore[attr-defined]  # Windows only
            continue
        opener = shutil.which("open" if sys.platform == "darwin" else "xdg-open")
        if opener is None:
            print(f"warning: no {'open' if sys.platform == 'darwin' else 'xdg-open'} to show {path}", file=sys.stderr)
            return
        subprocess.Popen(
            [opener, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the viewer outlives this command, and its Ctrl-C
        )


def run_task(args: argparse.Namespace) -> int:
    """`generate` or `check`: Ctrl-C stops waiting, never the task, and says how to fetch it."""
    import anyio

    settings = _settings(args, output_dir=args.out.expanduser().resolve() if args.out else None)
    _setup_logging(settings.with_overrides(log_level="WARNING") if settings.log_level == "INFO" else settings)
    bar = ProgressBar()
    try:
        with sandbox_if_asked(settings) as settings:
            if settings.sandbox and args.command == "check":
                _say("note: the sandbox started for this command knows no earlier task.")
            return anyio.run(_run_task, settings, args, bar)
    except KeyboardInterrupt:
        bar.close()
        if bar.task_id is None:
            print("\ninterrupted; `evolink-mcp tasks` shows whether a task was created.", file=sys.stderr)
        else:
            print(f"\ntask {bar.task_id} continues; `evolink-mcp check {bar.task_id}` fetches it.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _table(rows: Sequence[Sequence[str]], columns: int, *, gap: str = "  ", narrowest: int = 5) -> list[str]:
    """`rows` as aligned lines no wider than `columns`: the widest other column gives way first (cells cut with
    …), the first (the model id, what a user copies) only when nothing else can."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def too_wide() -> bool:
        return sum(widths) + len(gap) * (len(widths) - 1) > columns

    while too_wide() and max(widths[1:]) > narrowest:
        widths[widths.index(max(widths[1:]), 1)] -= 1
    while too_wide() and widths[0] > narrowest:
        widths[0] -= 1

    def cell(text: str, width: int) -> str:
        return (text if len(text) <= width else text[: width - 1] + "…").ljust(width)

    return [gap.join(cell(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


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
    for line in _table(rows, shutil.get_terminal_size().columns):
        print(line)
    print(f"\n{len(chosen)} models; * = default ({catalog.default.id}).\nDetails: evolink-mcp models --json")
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

    from .journal import entry_line, open_journal, summarize_entry

    settings = _settings(args)
    journal = open_journal(settings)
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


def run_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    flags = {"sandbox": args.sandbox, "default_model": args.default_model, "log_level": args.log_level}
    with sandbox_if_asked(_settings(args)) as settings:
        return doctor(settings, flags=flags)


def run_gallery(args: argparse.Namespace) -> int:
    from .gallery import write_gallery

    settings = _settings(args, output_dir=args.out.expanduser().resolve() if args.out else None)
    try:
        page = write_gallery(settings, limit=args.limit)
    except OSError as exc:
        raise SystemExit(f"evolink-mcp: cannot write the gallery in {settings.output_dir}: {exc}") from None
    print(page)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]  # bare `evolink-mcp [--sandbox]`: the stdio server desktop clients launch
    args = build_parser().parse_args(argv)
    runners = {
        "generate": run_task,
        "check": run_task,
        "models": run_models,
        "tasks": run_tasks,
        "doctor": run_doctor,
        "gallery": run_gallery,
    }
    try:
        if args.command == "serve":
            run_serve(args)
        elif args.command == "sandbox":
            run_sandbox(args)
        else:
            code = runners[args.command](args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
            sys.exit(code)
    except KeyboardInterrupt:  # Ctrl-C is how a terminal user stops a command: no traceback
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # `evolink-mcp models --json | head`: the reader has all it wanted
        # Python's own advice: point stdout at devnull so the exit's flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
