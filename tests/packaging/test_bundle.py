"""The Claude Desktop bundle: packed by scripts/build-bundle, unpacked by the official CLI, launched from
the unpacked files exactly as a host computes the command from the manifest."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS, get_default_environment
from mcp_types import TextContent
from packaging_support import (
    REPO,
    Mcpb,
    base_python,
    manifest,
    run,
    server_log,
    stdio_session,
)

pytestmark = pytest.mark.slow

MCPB_PLATFORMS = {"darwin": "darwin", "win32": "win32"}  # and "linux" for the rest
GENERATION_WAIT_SECONDS = 45  # the bundle cannot shorten the sandbox's task time (4 s by default)


@dataclass(frozen=True)
class Bundle:
    file: Path
    root: Path  # where `mcpb unpack` put it

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"


@pytest.fixture(scope="session")
def bundle(mcpb: Mcpb, pypi: None, packaging_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """scripts/build-bundle for the base interpreter, then `mcpb unpack` into a fresh directory."""
    work = tmp_path_factory.mktemp("bundle")
    env = {
        **packaging_env,
        "PATH": f"{mcpb.bin_dir}{os.pathsep}{packaging_env['PATH']}",
        "HOME": os.environ["HOME"],
        "PYTHON": str(base_python()),
    }
    built = run([REPO / "scripts" / "build-bundle", work / "dist"], timeout=420, env=env, cwd=REPO)
    file = Path(built.stdout.strip().splitlines()[-1])
    assert file.is_file(), f"build-bundle printed {file}, which does not exist"
    assert file.name == f"evolink-mcp-{manifest()['version']}.mcpb"
    mcpb.cli("unpack", file, work / "unpacked")
    return Bundle(file, work / "unpacked")


@dataclass(frozen=True)
class Launch:
    command: str
    args: list[str]
    env: dict[str, str]  # everything the child gets: the config's env, PATH and HOME


def desktop_launch(mcpb: Mcpb, bundle: Bundle, home: Path, output_dir: Path) -> tuple[dict[str, Any], Launch]:
    """The host's launch config for sandbox mode with an output folder and no API key."""
    home.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = mcpb.launch_config(
        bundle.manifest_path,
        extension_path=bundle.root,
        user_config={"sandbox": True, "output_dir": str(output_dir)},
        system_dirs={
            "HOME": str(home),
            "DESKTOP": str(home / "Desktop"),
            "DOCUMENTS": str(home / "Documents"),
            "DOWNLOADS": str(home / "Downloads"),
        },
    )
    # Only the base interpreter is on PATH: nothing from our virtualenv can be picked up.
    env = {**config["env"], "PATH": str(base_python().parent), "HOME": str(home)}
    return config, Launch(config["command"], config["args"], env)


def test_the_packed_bundle_manifest_validates_and_declares_the_os_and_python_its_wheels_need(
    mcpb: Mcpb, bundle: Bundle
) -> None:
    mcpb.cli("validate", bundle.manifest_path)
    packed, source = manifest(bundle.manifest_path), manifest()
    major, minor = sys.version_info[:2]

    assert {k: v for k, v in packed.items() if k != "compatibility"} == {
        k: v for k, v in source.items() if k != "compatibility"
    }
    assert packed["compatibility"]["platforms"] == [MCPB_PLATFORMS.get(sys.platform, "linux")]
    assert packed["compatibility"]["runtimes"]["python"] == f">={major}.{minor} <{major}.{minor + 1}"
    assert (bundle.root / packed["server"]["entry_point"]).is_file()


@pytest.mark.anyio
async def test_the_unpacked_bundle_launched_like_claude_desktop_lists_its_tools_and_generates_in_sandbox(
    mcpb: Mcpb,
    bundle: Bundle,
    server_tool_names: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output_dir = tmp_path / "Evolink images"
    config, launch = desktop_launch(mcpb, bundle, tmp_path / "home", output_dir)
    no_deps = run([base_python(), "-c", "import mcp"], timeout=30, env={"PATH": launch.env["PATH"]}, check=False)
    assert no_deps.returncode != 0, "the base interpreter has mcp itself: this test could not tell"
    assert config["env"]["EVOLINK_API_KEY"] == "${user_config.api_key}", "an unset key stays a placeholder"
    for name in DEFAULT_INHERITED_ENV_VARS:  # the SDK's client would pass these on from our environment
        if name not in launch.env:
            monkeypatch.delenv(name, raising=False)
    assert get_default_environment() | launch.env == launch.env

    errlog = tmp_path / "server.log"
    async with stdio_session(
        launch.command, launch.args, env=launch.env, errlog=errlog, cwd=tmp_path / "home"
    ) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool(
            "generate_image", {"prompt": "a small red kite", "wait_seconds": GENERATION_WAIT_SECONDS}
        )

    assert sorted(tools) == sorted(tool["name"] for tool in manifest(bundle.manifest_path)["tools"])
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


def test_the_bundled_bytecode_is_used_as_shipped_after_unpacking(mcpb: Mcpb, bundle: Bundle, tmp_path: Path) -> None:
    """Unpacking resets file times: timestamp-checked .pyc would be stale and recompiled at every start."""
    _, launch = desktop_launch(mcpb, bundle, tmp_path / "home", tmp_path / "out")
    python = shutil.which(launch.command, path=launch.env["PATH"])
    assert python is not None
    server_dir = (bundle.root / manifest(bundle.manifest_path)["server"]["entry_point"]).parent
    code = f"import sys; sys.path.insert(0, {str(server_dir)!r}); import evolink_mcp.app"

    verbose = run([python, "-v", "-c", code], timeout=60, env=launch.env).stderr

    stale = [line for line in verbose.splitlines() if "bytecode is stale" in line]
    assert not stale, "\n".join(stale[:10])
    for package in (server_dir / "evolink_mcp", server_dir / "lib" / "mcp"):
        assert f"code object from '{package}/__pycache__/" in verbose, f"{package} was not loaded from .pyc"


def test_the_bundled_server_needs_nothing_from_the_host_pythons_site_packages(
    mcpb: Mcpb, bundle: Bundle, tmp_path: Path
) -> None:
    """The host interpreter has packages of its own (pydantic, here): the bundle must not lean on them."""
    _, launch = desktop_launch(mcpb, bundle, tmp_path / "home", tmp_path / "out")
    python = str(shutil.which(launch.command, path=launch.env["PATH"]))
    server_dir = (bundle.root / manifest(bundle.manifest_path)["server"]["entry_point"]).parent
    lib = server_dir / "lib"
    code = (
        f"import sys; sys.path.insert(0, {str(server_dir)!r})\n"
        "import evolink_mcp.app, evolink_mcp.media, evolink_mcp.sandbox, evolink_mcp.transports\n"
        "import PIL.Image, uvicorn\n"
        "for name, module in list(sys.modules.items()):\n"
        "    print(name, getattr(module, '__file__', None) or '')\n"
    )

    # -S: no site-packages at all, only PYTHONPATH (the bundle) and the standard library.
    run([python, "-S", "-c", code], timeout=60, env=launch.env)
    loaded = [line.split(" ", 1) for line in run([python, "-c", code], timeout=60, env=launch.env).stdout.splitlines()]

    bundled = {path.name.removesuffix(".py") for path in lib.iterdir()}
    shadowed = [
        f"{name} {path}"
        for name, path in loaded
        if path and not path.startswith(str(bundle.root)) and name.split(".")[0] in bundled
    ]
    assert not shadowed, "host packages loaded instead of the bundled ones:\n" + "\n".join(shadowed)
