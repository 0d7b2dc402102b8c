"""What every framework check shares. Standard library only: each check runs in its framework's own virtualenv.

A check is run as `python check_<framework>.py '<server JSON>'`, the JSON being {"command", "args", "env"} of an
`evolink-mcp --sandbox` stdio server (see run.py). It prints what it verified and exits non-zero on a failure.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

SERVER: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
OUTPUT_DIR = Path(SERVER.get("env", {}).get("EVOLINK_OUTPUT_DIR", "."))
TOOLS = {"generate_image", "check_task", "upload_file", "list_models", "list_files", "delete_file", "list_tasks"}
GOOD_CALL = {"prompt": "a red bicycle [sandbox:duration=0]"}
INVALID_CALL = {"prompt": "a red bicycle", "size": "7:3"}
# generate_image's arguments a model in strict mode (every property required) fills in; the rest it leaves empty.
STRICT_USED = {"prompt": GOOD_CALL["prompt"]}


class CheckFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a check; a failed one prints what failed (also from inside a framework's task group) and exits 1."""
    try:
        asyncio.run(main())
    except BaseException as exc:
        while len(getattr(exc, "exceptions", ())) == 1:  # an exception group around one failure
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        if not isinstance(exc, CheckFailed):
            raise
        raise SystemExit(f"FAILED: {exc}") from None


def ok(message: str) -> None:
    print(f"ok: {message}", flush=True)


def saved_file(seen: str) -> Path:
    """The saved image a success text names: it must exist in the server's output folder."""
    found = re.findall(re.escape(str(OUTPUT_DIR)) + r"/[^\s'\"\\,]+\.(?:png|jpe?g|webp)", seen)
    check(found, f"the result names no image saved under {OUTPUT_DIR}: {seen[:600]!r}")
    path = Path(found[0])
    check(path.is_file() and path.stat().st_size > 0, f"{path} named in the result is not on disk")
    return path


def readable_error(seen: str, category: str = "invalid_request") -> None:
    """What the model is shown for an error: our category, next step and charge, not a trace or generic text."""
    check("Traceback" not in seen and "Error executing tool" not in seen, f"a trace or generic error: {seen!r}")
    as_text = f"Error ({category}):" in seen and "Next step:" in seen and "Charged:" in seen
    # Some frameworks show the model the structured error ({"error": {"category", "next_step", ...}}) instead.
    compact = seen.replace('": "', '":"')
    as_json = f'"category":"{category}"' in compact and '"next_step"' in compact and '"charged"' in compact
    check(as_text or as_json, f"not our error wording (category {category}, next step): {seen!r}")


def strict_arguments(strict_schema: dict[str, Any], used: dict[str, Any]) -> dict[str, Any]:
    """generate_image's arguments as a model in strict mode sends them: every property, unused ones empty.

    The empty value must be one the strict schema allows (the model cannot send anything else): "" for a string,
    [] for an array, null where null is allowed; an enum gets its default. A property with none of these would make
    the model invent a value (say max_credits 0), so it fails the check.
    """
    arguments: dict[str, Any] = {}
    forced = []
    for name, prop in strict_schema["properties"].items():
        if name in used:
            arguments[name] = used[name]
            continue
        types = prop.get("type", [])
        types = [types] if isinstance(types, str) else types
        if "enum" in prop:
            arguments[name] = prop.get("default", prop["enum"][0])
        elif "string" in types:
            arguments[name] = ""
        elif "array" in types:
            arguments[name] = []
        elif "null" in types or {"type": "null"} in prop.get("anyOf", []):
            arguments[name] = None
        else:
            forced.append(f"{name} ({prop.get('type')})")
            arguments[name] = None
    check(
        not forced,
        "in strict mode these optional parameters are required and allow no empty value, so a model must invent "
        f"one: {', '.join(forced)}. Publish them as nullable (type [..., 'null']).",
    )
    return arguments


def walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (sub)schema of a JSON schema with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        found.append((path or "/", schema))
        for key, value in schema.items():
            if key in ("properties", "$defs", "definitions", "patternProperties"):
                for name, sub in value.items():
                    found.extend(walk(sub, f"{path}/{key}/{name}"))
            elif key in ("items", "additionalProperties", "not", "contains", "prefixItems", "anyOf", "oneOf", "allOf"):
                subs = value if isinstance(value, list) else [value]
                for i, sub in enumerate(subs):
                    found.extend(walk(sub, f"{path}/{key}/{i}"))
    return found


def provider_safe(tool_name: str, schema: dict[str, Any]) -> None:
    """No keyword a major provider refuses: exclusiveMinimum/Maximum (Gemini), an object with no properties."""
    for path, sub in walk(schema):
        where = f"{tool_name} inputSchema {path}"
        check("exclusiveMinimum" not in sub and "exclusiveMaximum" not in sub, f"{where}: exclusiveMinimum/Maximum")
        types = sub.get("type", [])
        if "object" in ([types] if isinstance(types, str) else types):
            check(sub.get("properties"), f"{where}: an object with no properties (the Gemini API refuses it)")
