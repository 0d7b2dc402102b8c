"""manifest.json (MCPB): valid for the official CLI and in step with the server it describes."""

from __future__ import annotations

import re

import pytest
from packaging_support import REPO, Mcpb, manifest

import evolink_mcp
from evolink_mcp.settings import ENV_VARS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PLACEHOLDER = re.compile(r"^\$\{user_config\.(\w+)\}$")


@pytest.mark.slow
def test_the_official_mcpb_cli_validates_the_manifest(mcpb: Mcpb) -> None:
    out = mcpb.cli("validate", "manifest.json")

    assert "validation passes" in out.lower()


def test_the_manifest_lists_exactly_the_tools_the_server_registers(server_tool_names: list[str]) -> None:
    declared = [tool["name"] for tool in manifest()["tools"]]

    assert sorted(declared) == sorted(server_tool_names)


def test_the_manifest_version_is_the_package_version_from_its_single_source() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    source = REPO / pyproject["tool"]["hatch"]["version"]["path"]
    source_version = re.search(r'^__version__ = "([^"]+)"', source.read_text(), re.M)

    assert source_version is not None, f"no __version__ in {source}"
    assert manifest()["version"] == evolink_mcp.__version__ == source_version.group(1)


def test_every_user_config_key_reaches_the_server_as_a_known_evolink_variable() -> None:
    data = manifest()
    env = data["server"]["mcp_config"]["env"]
    known = {var.name for var in ENV_VARS}
    mapped = {m.group(1): name for name, value in env.items() if (m := PLACEHOLDER.match(value))}

    assert set(mapped) == set(data["user_config"]), "every user_config key, and only those, is passed on"
    for key, name in mapped.items():
        assert name.startswith("EVOLINK_") and name in known, f"user_config.{key} -> {name}"


def test_the_api_key_is_marked_sensitive_and_nothing_is_required() -> None:
    user_config = manifest()["user_config"]

    assert user_config["api_key"]["sensitive"] is True
    assert not [key for key, option in user_config.items() if option.get("required")], (
        "a required option would stop the bundle from starting in sandbox mode without it"
    )
