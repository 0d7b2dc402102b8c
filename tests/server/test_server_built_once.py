"""The SDK tools and prompts are built once per catalog (building them validates every schema) and shared by
every server over an equal catalog; a different catalog or wait default gets its own."""

import json
from pathlib import Path

import pytest

from evolink_mcp.app import server_prompts, server_tools
from evolink_mcp.catalog import load_catalog
from mcp_session import Connect, ServerFor


def _user_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "models.json"
    model = {
        "id": "acme-image-1",
        "title": "Acme Image 1",
        "prompt": {"max": 500, "unit": "characters"},
        "size": {"ratios": ["1:1", "16:9"], "default": "1:1"},
        "modes": ["text-to-image"],
    }
    path.write_text(json.dumps({"models": [model]}), "utf-8")
    return path


def test_servers_over_equal_catalogs_share_one_build_of_the_tools_and_prompts() -> None:
    first, second = load_catalog(), load_catalog()
    assert first is not second and first == second
    assert server_tools(first, 60.0) is server_tools(second, 60.0)
    assert server_prompts(first) is server_prompts(second)


def test_another_catalog_default_model_or_wait_gets_tools_of_its_own(tmp_path: Path) -> None:
    shipped = load_catalog()
    others = [load_catalog(_user_catalog(tmp_path)), load_catalog(default_model="gpt-image-2")]
    assert all(other != shipped for other in others)
    assert all(server_tools(other, 60.0) is not server_tools(shipped, 60.0) for other in others)
    assert server_tools(shipped, 5.0) is not server_tools(shipped, 60.0)


@pytest.mark.anyio
async def test_a_server_with_a_user_catalog_lists_its_model_after_one_without_was_built(
    server_for: ServerFor, connect: Connect, tmp_path: Path
) -> None:
    def model_schema(tools: dict[str, object]) -> dict[str, object]:
        return tools["generate_image"].input_schema["properties"]["model"]  # type: ignore[attr-defined,no-any-return]

    async with connect(server_for()) as plain:
        shipped = model_schema(await plain.tools())
    async with connect(server_for(catalog_file=_user_catalog(tmp_path), default_model="acme-image-1")) as mcp:
        with_user_model = model_schema(await mcp.tools())
        refused = await mcp.call("generate_image", {"prompt": "a fox", "size": "4:3"})

    assert "acme-image-1" not in shipped["enum"]  # type: ignore[operator]
    assert "acme-image-1" in with_user_model["enum"] and with_user_model["default"] == "acme-image-1"  # type: ignore[operator,index]
    assert mcp.error(refused)["problems"][0]["allowed"] == ["1:1", "16:9"]  # the user model's sizes, from its catalog
