"""The README's "Works with" table is the client matrix, and the npm rows name the versions CI installs."""

from __future__ import annotations

import json

from works_with import HERE, README, render, rows

NODE_PROJECT = HERE / "typescript"


def test_readme_works_with_table_matches_the_client_matrices() -> None:
    readme = README.read_text("utf-8")
    assert render(readme) == readme, (
        "README's Works with table is stale: run `python tests/clients/works_with.py --write`"
    )


def test_every_npm_row_names_the_exact_version_package_json_pins_and_the_lockfile_installs() -> None:
    pins = json.loads((NODE_PROJECT / "package.json").read_text("utf-8"))["dependencies"]
    locked = json.loads((NODE_PROJECT / "package-lock.json").read_text("utf-8"))["packages"]
    npm_rows = [row for row in rows() if row["package"].startswith("npm ")]
    assert {row["package"].removeprefix("npm ") for row in npm_rows} == set(pins), "a pinned package has no row"
    for row in npm_rows:
        name = row["package"].removeprefix("npm ")
        assert pins[name] == row["version"], (
            f"{name}: package.json pins {pins[name]!r}, the table says {row['version']!r}"
        )
        assert locked[f"node_modules/{name}"]["version"] == row["version"], f"{name}: package-lock.json disagrees"
