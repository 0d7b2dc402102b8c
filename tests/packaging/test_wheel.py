"""The wheel: builds from the repo, installs into a fresh virtualenv, and every documented way of
starting it (`evolink-mcp`, `python -m evolink_mcp`, `uvx evolink-mcp`) answers."""

from __future__ import annotations

import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging_support import REPO, base_python, run, server_log, stdio_session, uv_env

import evolink_mcp

pytestmark = pytest.mark.slow

VERSION_LINE = f"evolink-mcp {evolink_mcp.__version__}"


@dataclass(frozen=True)
class Venv:
    root: Path
    home: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def env(self) -> dict[str, str]:
        """Nothing of ours: the venv's bin on a system PATH and a throwaway HOME."""
        return {"PATH": f"{self.bin}{os.pathsep}/usr/bin:/bin", "HOME": str(self.home)}


def fresh_venv(root: Path) -> Venv:
    run([base_python(), "-m", "venv", root / "venv"], timeout=120)
    (root / "home").mkdir()
    return Venv(root / "venv", root / "home")


@pytest.fixture(scope="session")
def wheel(pypi: None, packaging_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, "."],
        timeout=240,
        env={**packaging_env, "HOME": os.environ["HOME"]},
        cwd=REPO,
    )
    (built,) = out.glob("evolink_mcp-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, packaging_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel and its dependencies (from the package index or pip's cache) in a fresh venv."""
    venv = fresh_venv(tmp_path_factory.mktemp("installed"))
    run(
        [venv.bin / "python", "-m", "pip", "install", "--quiet", wheel],
        timeout=300,
        env={**packaging_env, "HOME": os.environ["HOME"]},
    )
    return venv


def test_the_wheel_carries_the_model_catalog_and_the_sandbox(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "evolink_mcp/catalog/models.json" in names
    assert "evolink_mcp/sandbox/__init__.py" in names
    assert not [name for name in names if name.startswith("tests/")]


def test_the_installed_console_script_answers_its_version(installed: Venv) -> None:
    out = run(["evolink-mcp", "--version"], timeout=60, env=installed.env).stdout

    assert out.strip() == VERSION_LINE


def test_python_dash_m_evolink_mcp_answers_its_version(installed: Venv) -> None:
    out = run(["python", "-m", "evolink_mcp", "--version"], timeout=60, env=installed.env).stdout

    assert out.strip() == VERSION_LINE


@pytest.mark.anyio
async def test_the_installed_server_lists_its_tools_over_stdio_in_sandbox_mode(
    installed: Venv, server_tool_names: list[str], tmp_path: Path
) -> None:
    errlog = tmp_path / "server.log"
    async with stdio_session(
        str(installed.bin / "evolink-mcp"), ["--sandbox"], env=installed.env, errlog=errlog, cwd=tmp_path
    ) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        models = await client.call_tool("list_models", {})

    assert sorted(tools) == sorted(server_tool_names), server_log(errlog)
    assert not models.is_error, server_log(errlog)


def test_uvx_from_the_wheel_answers_its_version(uv_bin: Path, wheel: Path, tmp_path: Path) -> None:
    env = {
        **uv_env(tmp_path, tmp_path / "uv-cache"),
        "PATH": f"{uv_bin}{os.pathsep}/usr/bin:/bin",
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
    }

    out = run(
        [uv_bin / "uvx", "--python", base_python(), "--from", wheel, "evolink-mcp", "--version"], timeout=240, env=env
    ).stdout

    assert out.strip().splitlines()[-1] == VERSION_LINE
