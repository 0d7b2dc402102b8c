"""The layering rule: the generation use cases, the catalog, the client and the journal know nothing of MCP, and
`evolink-mcp models` never loads the SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_support import RUN_TIMEOUT

from process_support import clean_env

LOADED_MCP = "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types')))"


def loaded_mcp_modules(tmp_path: Path, code: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\n{LOADED_MCP}"],
        env=clean_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.strip().splitlines()[-1]


def test_the_use_cases_catalog_client_and_journal_import_no_mcp(tmp_path: Path) -> None:
    code = "import evolink_mcp.images, evolink_mcp.catalog, evolink_mcp.evolink, evolink_mcp.journal"
    assert loaded_mcp_modules(tmp_path, code) == "[]"


def test_evolink_mcp_models_does_not_load_the_sdk(tmp_path: Path) -> None:
    code = "from evolink_mcp.cli import main\ntry:\n    main(['models'])\nexcept SystemExit:\n    pass"
    assert loaded_mcp_modules(tmp_path, code) == "[]"
