"""`evolink-mcp doctor`: the settings this install runs with and where each came from, whether it can work (key,
API, output folder, journal), and the client configurations to paste. The key is never shown."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .settings import ENV_VARS, Settings, env_text

SECRETS = ("api_key", "mcp_token")
FLAGS = {"sandbox": "--sandbox", "default_model": "--default-model", "log_level": "--log-level"}


def doctor(settings: Settings, flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> int:
    """Print the report; 0 when every check passes, 1 otherwise."""
    env = os.environ if env is None else env
    print("Settings (value, and where it came from):")
    for var in ENV_VARS:
        value = getattr(settings, var.field)
        if isinstance(value, SecretStr) or var.field in SECRETS:
            shown = "set (not shown)" if value is not None and value.get_secret_value() else "not set"
        elif isinstance(value, tuple):
            shown = os.pathsep.join(str(v) for v in value) or "(none)"
        else:
            shown = "(none)" if value is None else str(value)
        if settings.sandbox and var.field in ("api_key", "base_url", "files_base_url"):
            source = "the sandbox, started for this check"
        elif flags.get(var.field) is not None:
            source = f"flag {FLAGS[var.field]}"
        elif env_text(env, var.name) is not None:
            source = f"env {var.name}"
        else:
            source = "default"
        print(f"  {var.name} = {shown}  [{source}]")
    print("\nChecks:")
    checks = [_key(settings), _api(settings), _output_folder(settings.output_dir), _journal(settings)]
    for ok, line in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {line}")
    print("\n" + client_configs())
    return 0 if all(ok for ok, _ in checks) else 1


def _key(settings: Settings) -> tuple[bool, str]:
    if settings.sandbox:
        return True, "API key: not needed (sandbox)"
    if settings.has_api_key:
        return True, "API key: set (not shown)"
    return False, "API key: not set; set EVOLINK_API_KEY (https://evolink.ai), or try --sandbox"


def _api(settings: Settings) -> tuple[bool, str]:
    """A free GET: the credits balance with a key, else the base URL itself."""
    import anyio

    from .evolink import EvolinkClient, EvolinkError, RetryPolicy

    async def ask() -> tuple[bool, str]:
        client = EvolinkClient(settings.api_key, base_url=settings.base_url, retry=RetryPolicy(deadline=10.0))
        try:
            balance = await client.get_balance()
        except EvolinkError as exc:
            reached = exc.to_dict().get("status") is not None  # an HTTP answer: the API is there
            return reached and not settings.has_api_key, f"API {settings.base_url}: {exc.message}"
        finally:
            await client.aclose()
        left = balance.user.remaining_credits
        credits = f"; {left:g} credits left" if left is not None else ""
        return True, f"API {settings.base_url}: reachable, key accepted{credits}"

    return anyio.run(ask)


def _output_folder(folder: Path) -> tuple[bool, str]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return False, f"output folder {folder}: not writable ({exc.strerror or exc}); set EVOLINK_OUTPUT_DIR"
    return True, f"output folder {folder}: writable"


def _journal(settings: Settings) -> tuple[bool, str]:
    import anyio

    from .journal import JournalError, open_journal

    journal = open_journal(settings)
    try:
        anyio.run(lambda: journal.recent(limit=1))
    except JournalError as exc:
        return False, f"journal {journal.location}: {exc.message}"
    finally:
        journal.close()
    if journal.problem:
        return False, f"journal {journal.location}; set EVOLINK_STATE_DIR to a writable folder"
    return True, f"journal {journal.location}: readable"


def client_configs() -> str:
    """How each client starts this server (the key as a placeholder)."""
    command = shutil.which("evolink-mcp") or sys.argv[0]
    env = {"EVOLINK_API_KEY": "<your Evolink API key>"}
    desktop = {"mcpServers": {"evolink": {"command": command, "env": env}}}
    vscode = {"servers": {"evolink": {"type": "stdio", "command": command, "env": env}}}
    return "\n".join(
        [
            "Client configurations:",
            "  Claude Desktop (claude_desktop_config.json) and Cursor (.cursor/mcp.json):",
            _indented(json.dumps(desktop, indent=2)),
            "  Claude Code:",
            f"    claude mcp add evolink -e EVOLINK_API_KEY=<your Evolink API key> -- {command}",
            "  VS Code (.vscode/mcp.json):",
            _indented(json.dumps(vscode, indent=2)),
        ]
    )


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
