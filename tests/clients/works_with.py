"""The README's "Works with" table, generated from the client matrices (`tests/clients/*/matrix.json`).

`python tests/clients/works_with.py` prints the table; `--write` rewrites README.md's block between
`<!-- works-with:start -->` and `<!-- works-with:end -->`. `test_works_with_table.py` fails on drift.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
COLUMNS = ("client", "package", "version", "transport", "verified")
BLOCK = re.compile(r"(<!-- works-with:start -->\n).*?(<!-- works-with:end -->)", re.DOTALL)


def matrix_files() -> list[Path]:
    return sorted(HERE.glob("*/matrix.json"))


def rows() -> list[dict[str, str]]:
    """Every row of every matrix, in file order; each row has exactly the COLUMNS."""
    found: list[dict[str, str]] = []
    for path in matrix_files():
        for row in json.loads(path.read_text("utf-8")):
            if set(row) != set(COLUMNS):
                raise ValueError(f"{path}: a row must have exactly {', '.join(COLUMNS)}; got {sorted(row)}")
            found.append(row)
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table() -> str:
    lines = ["| client | package | transport | verified against the sandbox |", "|---|---|---|---|"]
    for row in rows():
        registry, _, name = row["package"].partition(" ")
        package = f"`{name}` {row['version']} ({registry})" if name else f"`{registry}` {row['version']}"
        lines.append(f"| {_cell(row['client'])} | {package} | {_cell(row['transport'])} | {_cell(row['verified'])} |")
    return "\n".join(lines)


def render(readme: str) -> str:
    """`readme` with its works-with block rebuilt from the matrices."""
    if not BLOCK.search(readme):
        raise ValueError("README.md has no <!-- works-with:start --> ... <!-- works-with:end --> block")
    body = table()
    return BLOCK.sub(lambda match: f"{match.group(1)}{body}\n{match.group(2)}", readme)


def main(argv: list[str]) -> int:
    if "--write" in argv:
        README.write_text(render(README.read_text("utf-8")), "utf-8")
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
