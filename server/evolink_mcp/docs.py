"""README tables generated from the tool specs, the catalog and the settings: `python -m evolink_mcp.docs`.

`--check` exits non-zero when README.md has drifted from the code (CI runs it through the test suite).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from .catalog import Catalog, load_catalog
from .settings import ENV_VARS, Settings
from .tools import tool_specs


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def tools_table(catalog: Catalog) -> str:
    rows = ["| tool | what it does | annotations |", "|---|---|---|"]
    for spec in tool_specs(catalog, Settings().wait_seconds):
        hints = spec.annotations
        flags = [
            "read-only" if hints.read_only_hint else "writes",
            "idempotent" if hints.idempotent_hint else "not idempotent",
        ]
        if hints.destructive_hint:
            flags.append("destructive")
        if hints.open_world_hint:
            flags.append("calls Evolink")
        params = ", ".join(p for p in spec.to_tool().parameters.get("properties", {}))
        rows.append(f"| `{spec.name}({params})` | {_cell(spec.description)} | {', '.join(flags)} |")
    return "\n".join(rows)


def models_table(catalog: Catalog) -> str:
    rows = ["| model | modes | sizes | quality / tier | n | refs | extra |", "|---|---|---|---|---|---|---|"]
    for spec in catalog.models:
        name = f"`{spec.id}`" + (" (default)" if spec.id == catalog.default.id else "")
        name += " beta" if spec.beta else ""
        name += "".join(f"<br>alias `{a}`" for a in spec.aliases)
        sizes = "-"
        if spec.size is not None and spec.size_field:
            sizes = " ".join(spec.size.ratios)
            if spec.size.pixel is not None:
                sizes = (sizes + " or " if sizes else "") + spec.size.pixel.describe()
        tiers = "/".join(spec.quality_values()) or "-"
        if spec.resolution is not None and spec.resolution.param != "quality":
            tiers += f"; resolution {'/'.join(spec.resolution.values)}"
        counts = spec.n.allowed() if spec.n else [1]
        n = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else "1"
        refs = str(spec.image_urls.max_items) if spec.image_urls else "-"
        if spec.image_urls and spec.image_urls.required:
            refs += " (required)"
        extra = ", ".join(f"`{k}`" for k in spec.extra_params) or "-"
        rows.append(f"| {name} | {', '.join(spec.modes)} | {_cell(sizes)} | {tiers} | {n} | {refs} | {extra} |")
    return "\n".join(rows)


def env_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {_cell(v.default)} | {_cell(v.meaning)} |" for v in ENV_VARS]
    return "\n".join(rows)


def _replacer(body: str) -> Callable[[re.Match[str]], str]:
    return lambda match: f"{match.group(1)}{body}\n{match.group(2)}"


def render(readme: str, catalog: Catalog) -> str:
    """`readme` with every generated block (between its markers) rebuilt."""
    blocks = {"tools": tools_table(catalog), "models": models_table(catalog), "env": env_table()}
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
        if not pattern.search(readme):
            raise ValueError(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block")
        readme = pattern.sub(_replacer(body), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(next((a for a in args if not a.startswith("-")), "README.md"))
    current = path.read_text("utf-8")
    fresh = render(current, load_catalog())
    if "--check" in args:
        if fresh != current:
            print(f"{path} is out of date: run `python -m evolink_mcp.docs`", file=sys.stderr)
            return 1
        return 0
    path.write_text(fresh, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
