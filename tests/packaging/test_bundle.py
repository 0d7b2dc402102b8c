"""The Claude Desktop bundle: packed by scripts/build-bundle, unpacked by the official CLI, launched from the
unpacked files exactly as a host computes the command from the manifest, on a machine whose only Python is
the one under test. The host's uv installs the dependencies for that Python on the first launch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS, get_default_environment
from mcp_types import TextContent
from packaging_support import (
    REPO,
    Mcpb,
    manifest,
    python_on_path,
    run,
    server_log,
    stdio_session,
    uv_env,
)

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

pytestmark = pytest.mark.slow

PYTHONS = ("3.11", "3.12")  # two minor versions the bundle must run on, from one build
OLD_PYTHON = "3.9"  # macOS's /usr/bin/python3
GENERATION_WAIT_SECONDS = 45  # the bundle cannot shorten the sandbox's task time (4 s by default)
FIRST_LAUNCH_SECONDS = 240  # the first launch installs the dependencies before the server answers
COMPILED = (".so", ".pyd", ".dylib", ".dll", ".pyc")


def pyproject(path: Path = REPO / "pyproject.toml") -> dict[str, Any]:
    return tomllib.loads(path.read_text())


@dataclass(frozen=True)
class Built:
    file: Path
    uv_bin: Path  # the host's uv
    uv_cache: Path  # shared by the launches, as one user's cache would be

    def unpack(self, mcpb: Mcpb, into: Path) -> Path:
        mcpb.cli("unpack", self.file, into)
        return into


@pytest.fixture(scope="session")
def built(mcpb: Mcpb, uv_bin: Path, packaging_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("bundle")
    env = {
        **packaging_env,
        **uv_env(Path(os.environ["HOME"]), work / "uv-cache"),
        "PATH": os.pathsep.join([str(mcpb.bin_dir), str(uv_bin), packaging_env["PATH"]]),
    }
    out = run([REPO / "scripts" / "build-bundle", work / "dist"], timeout=300, env=env, cwd=REPO).stdout
    file = Path(out.strip().splitlines()[-1])
    assert file.is_file(), f"build-bundle printed {file}, which does not exist"
    assert file.name == f"evolink-mcp-{manifest()['version']}.mcpb"
    return Built(file, uv_bin, work / "uv-cache")


@pytest.fixture(scope="session")
def unpacked(mcpb: Mcpb, built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One unpacked copy for the tests that launch nothing through uv (so it never gets a .venv)."""
    return built.unpack(mcpb, tmp_path_factory.mktemp("unpacked") / "evolink-mcp")


@dataclass(frozen=True)
class Launch:
    command: str
    args: list[str]
    env: dict[str, str]  # everything the child gets: the config's env, PATH, HOME and uv's network set-up


def desktop_launch(mcpb: Mcpb, built: Built, root: Path, python_bin: Path, home: Path, output_dir: Path) -> Launch:
    """The host's launch config for sandbox mode with an output folder and no API key, on a PATH holding the
    host's uv and one Python."""
    home.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = mcpb.launch_config(
        root / "manifest.json",
        extension_path=root,
        user_config={"sandbox": True, "output_dir": str(output_dir)},
        system_dirs={
            "HOME": str(home),
            "DESKTOP": str(home / "Desktop"),
            "DOCUMENTS": str(home / "Documents"),
            "DOWNLOADS": str(home / "Downloads"),
        },
    )
    assert config["env"]["EVOLINK_API_KEY"] == "${user_config.api_key}", "an unset key stays a placeholder"
    env = {
        **config["env"],
        **uv_env(home, built.uv_cache),
        "PATH": os.pathsep.join([str(built.uv_bin), str(python_bin)]),
    }
    return Launch(config["command"], config["args"], env)


def test_one_bundle_for_every_platform_no_compiled_code_inside_and_the_manifest_as_written(
    mcpb: Mcpb, unpacked: Path
) -> None:
    mcpb.cli("validate", unpacked / "manifest.json")
    packed = manifest(unpacked / "manifest.json")
    bundle_project = pyproject(unpacked / "pyproject.toml")
    locked = {package["name"] for package in tomllib.loads((unpacked / "uv.lock").read_text())["package"]}
    http_extras = {
        requirement.split(">")[0].split(";")[0].strip().lower()
        for requirement in pyproject()["project"]["optional-dependencies"]["http"]
    }

    assert packed == manifest(), "the bundle carries manifest.json as written"
    assert packed["server"]["type"] == "uv"
    assert (unpacked / packed["server"]["entry_point"]).is_file()
    compiled = [str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.suffix in COMPILED]
    assert not compiled, f"compiled files tie a bundle to one OS and Python: {compiled[:10]}"
    assert not (unpacked / "server" / "lib").exists()
    assert bundle_project["project"]["requires-python"] == pyproject()["project"]["requires-python"]
    assert bundle_project["project"]["dependencies"] == pyproject()["project"]["dependencies"]
    assert {"mcp", "pydantic-core", "pillow"} <= locked
    assert not locked & http_extras, "the stdio-only bundle installs no HTTP speed-ups"


@pytest.mark.anyio
@pytest.mark.parametrize("python_version", PYTHONS)
async def test_the_bundle_launched_like_claude_desktop_installs_for_the_users_python_and_generates_in_sandbox(
    python_version: str,
    mcpb: Mcpb,
    built: Built,
    server_tool_names: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = built.unpack(mcpb, tmp_path / "extension")
    output_dir = tmp_path / "Evolink images"
    python_bin = python_on_path(python_version, tmp_path / "python-bin")
    launch = desktop_launch(mcpb, built, root, python_bin, tmp_path / "home", output_dir)
    for name in DEFAULT_INHERITED_ENV_VARS:  # the SDK's client would pass these on from our environment
        if name not in launch.env:
            monkeypatch.delenv(name, raising=False)
    assert get_default_environment() | launch.env == launch.env

    errlog = tmp_path / "server.log"
    async with stdio_session(
        launch.command,
        launch.args,
        env=launch.env,
        errlog=errlog,
        cwd=tmp_path / "home",
        time_limit=FIRST_LAUNCH_SECONDS,
    ) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool(
            "generate_image", {"prompt": "a small red kite", "wait_seconds": GENERATION_WAIT_SECONDS}
        )

    assert sorted(tools) == sorted(tool["name"] for tool in manifest(root / "manifest.json")["tools"])
    assert sorted(tools) == sorted(server_tool_names)
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    assert not result.is_error, f"{text}\n{server_log(errlog)}"
    assert result.structured_content is not None
    assert result.structured_content["status"] == "completed", text
    saved = [Path(image["path"]) for image in result.structured_content["images"]]
    assert saved, text
    for path in saved:
        assert path.parent == output_dir
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # What served those calls: the bundle's code, on dependencies uv installed for this Python, and no
    # HTTP speed-ups.
    probe = (
        "import importlib.util, json, sys, evolink_mcp, mcp, pydantic_core\n"
        "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'evolink_mcp': evolink_mcp.__file__,\n"
        "  'deps': [mcp.__file__, pydantic_core.__file__],\n"
        "  'speedups': [n for n in ('uvloop', 'httptools') if importlib.util.find_spec(n)]}))\n"
    )
    facts = json.loads(
        run(
            [launch.command, "run", "--frozen", "--project", root, "python", "-c", probe],
            timeout=60,
            env={**launch.env, "PYTHONPATH": str(root / "server")},
        ).stdout
    )
    assert facts["version"] == python_version
    assert facts["evolink_mcp"].startswith(str(root / "server"))
    assert all(dep.startswith(str(root / ".venv")) for dep in facts["deps"]), facts["deps"]
    assert facts["speedups"] == []


def test_an_old_python_gets_one_line_naming_the_python_the_bundle_needs(
    built: Built, unpacked: Path, tmp_path: Path
) -> None:
    needed = pyproject()["project"]["requires-python"].removeprefix(">=")
    old_bin = python_on_path(OLD_PYTHON, tmp_path / "python-bin")

    direct = run([old_bin / "python3", unpacked / "server" / "main.py"], timeout=30, env={}, check=False)
    # The host's uv, with only that Python here and no download allowed, refuses before running anything.
    through_uv = run(
        [built.uv_bin / "uv", "run", "--frozen", "--project", unpacked, unpacked / "server" / "main.py"],
        timeout=60,
        env={**uv_env(tmp_path / "home", built.uv_cache), "PATH": os.pathsep.join([str(built.uv_bin), str(old_bin)])},
        check=False,
    )

    assert direct.returncode == 1
    assert direct.stdout == ""
    assert len(direct.stderr.splitlines()) == 1, direct.stderr
    assert f"needs Python {needed} or newer" in direct.stderr
    assert f"is Python {OLD_PYTHON}:" in direct.stderr
    assert "https://www.python.org/downloads/" in direct.stderr
    assert through_uv.returncode != 0
    assert f">={needed}" in through_uv.stderr
    assert not (unpacked / ".venv").exists()


def test_a_python_without_the_dependencies_gets_one_line_saying_uv_installs_them(
    unpacked: Path, tmp_path: Path
) -> None:
    python_bin = python_on_path(PYTHONS[-1], tmp_path / "python-bin")

    result = run([python_bin / "python3", unpacked / "server" / "main.py"], timeout=30, env={}, check=False)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "dependencies are not installed" in result.stderr
    assert "uv run" in result.stderr
