"""Run the benchmarks (all, or those named) and print each figure next to its reference from the same run.

.venv/bin/python bench/run.py                      # everything, a few minutes on 2 cores (the soak about 2)
.venv/bin/python bench/run.py cold_start polling   # some
.venv/bin/python bench/run.py --markdown out.md    # also write the table as Markdown (for RESULTS.md)
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
import time
from pathlib import Path

from common import Row  # bench/ is not a package: run as a script, its modules import each other by name

BENCHMARKS = (
    "cold_start",
    "call_overhead",
    "polling",
    "upload_memory",
    "concurrency",
    "replicas",
    "context_cost",
    "hostile_memory",
    "soak",
)
COLUMNS = ("figure", "ours", "reference", "ratio", "target", "met?")


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _cells(row: Row) -> list[str]:
    return [row.figure, row.ours, row.reference, row.ratio, row.target, row.verdict]


def text_table(rows: list[Row]) -> str:
    cells = [list(COLUMNS), *(_cells(r) for r in rows)]
    widths = [min(60, max(len(c[i]) for c in cells)) for i in range(len(COLUMNS))]
    lines = []
    for number, (row_cells, row) in enumerate(zip(cells, [None, *rows], strict=True)):
        lines.append(" | ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip())
        if number == 0:
            lines.append("-+-".join("-" * w for w in widths))
        elif row is not None and row.note:
            lines.append(f"    {row.note}")
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join([*COLUMNS, "notes"]) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    lines += ["| " + " | ".join(cell(c) for c in [*_cells(r), r.note]) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown to this file")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    about = machine()
    print("  ".join(f"{k}: {v}" for k, v in about.items()), flush=True)
    rows: list[Row] = []
    took: dict[str, float] = {}
    for name in names:
        print(f"running {name} ...", flush=True)
        started = time.monotonic()
        rows += importlib.import_module(name).run()
        took[name] = time.monotonic() - started
    about["load after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(text_table(rows))
    print("\n" + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in took.items()))
    missed = [r.figure.strip() for r in rows if r.met is False]
    print(f"targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else ""))
    if args.markdown:
        header = "\n".join(f"- {k}: {v}" for k, v in about.items())
        args.markdown.write_text(f"{header}\n\n{markdown_table(rows)}\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
