"""The README's generated tables match the code, and its set-up commands are the ones CI runs."""

from pathlib import Path

from evolink_mcp.catalog import load_catalog
from evolink_mcp.docs import render

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tables_match_the_tool_specs_catalog_and_settings() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert render(readme, load_catalog()) == readme, "README is stale: run `python -m evolink_mcp.docs`"


def test_readme_has_exactly_two_setup_commands_near_the_top() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = [block for block in setup.split("```bash\n")[1:]]
    assert len(commands) == 2
    assert "--sandbox" in commands[0] and "generate" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "Try it with the built-in sandbox" in ci and "<!-- test-command -->" in ci
