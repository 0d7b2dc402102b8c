"""list_models and the catalog resources: what an agent reads before it pays for a generation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from mcp.shared.exceptions import MCPError

from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.tools import Deps

if TYPE_CHECKING:
    from mcp_session import Session

pytestmark = pytest.mark.anyio


async def test_list_models_structured_content_carries_the_texts_facts_at_little_more_than_its_size(
    mcp: Session,
) -> None:
    result = await mcp.call("list_models", {})

    structured = json.dumps(mcp.data(result), separators=(",", ":"))
    # A framework handing the model the structured content (pydantic-ai) costs it about what the text would.
    assert len(structured.encode()) <= 1.6 * len(mcp.text(result).encode())
    assert '"beta":false' not in structured and '"aliases":[]' not in structured


async def test_list_models_filters_by_mode_and_can_leave_out_beta_models(
    mcp: Session, deps: Deps, sandbox: SandboxServer
) -> None:
    catalog = deps.catalog
    expected = [m.id for m in catalog.models if "edit" in m.modes and not m.beta]
    assert any(m.beta and "edit" in m.modes for m in catalog.models)  # so leaving beta out changes something

    result = await mcp.call("list_models", {"mode": "edit", "include_beta": False})

    assert not result.is_error
    data = mcp.data(result)
    assert [m["id"] for m in data["models"]] == expected and data["count"] == len(expected)
    assert all("edit" in m["modes"] and "beta" not in m for m in data["models"])  # a false fact is left out
    assert data["default_model"] == catalog.default.id
    lines = mcp.text(result).splitlines()
    assert lines[0].startswith(f"{len(expected)} model(s)")
    assert [line.split(":")[0].split(" ")[0] for line in lines[1:-1]] == expected
    assert "evolink://models" in lines[-1] and data["details"] == "evolink://models"  # where the rest is
    assert sandbox.state.requests() == []  # the catalog is local: listing it is free


async def test_an_unknown_mode_is_refused_with_every_mode_there_is(mcp: Session, deps: Deps) -> None:
    modes = sorted({mode for spec in deps.catalog.models for mode in spec.modes})

    result = await mcp.call("list_models", {"mode": "paint"})

    assert result.is_error
    data = mcp.error(result)
    assert data["category"] == "invalid_request" and "list_models" in data["next_step"]
    assert "mode: 'paint'" in mcp.text(result) and ", ".join(modes) in mcp.text(result)


async def test_list_models_without_filters_lists_every_model_with_its_limits(mcp: Session, deps: Deps) -> None:
    result = await mcp.call("list_models", {})

    data = mcp.data(result)
    assert data["count"] == len(deps.catalog.models)
    by_id = {m["id"]: m for m in data["models"]}
    seedream = by_id["doubao-seedream-4.0"]
    assert seedream["n"] == list(range(1, 16)) and seedream["quality"] == ["1K", "2K", "4K"]
    assert by_id["gemini-3-pro-image-preview"]["aliases"] == ["nano-banana-pro"]
    assert by_id[deps.catalog.default.id]["default"] is True


async def test_the_models_resource_lists_the_whole_catalog(mcp: Session, deps: Deps) -> None:
    read = await mcp.client.read_resource("evolink://models")

    (contents,) = read.contents
    assert contents.mime_type == "application/json"
    body = json.loads(contents.text)  # type: ignore[union-attr]
    assert body["default_model"] == deps.catalog.default.id
    assert [m["id"] for m in body["models"]] == deps.catalog.ids


@pytest.mark.parametrize("name", ["gemini-3-pro-image-preview", "nano-banana-pro", "NANO-BANANA-PRO"])
async def test_one_model_resource_answers_by_id_or_alias(name: str, mcp: Session) -> None:
    read = await mcp.client.read_resource(f"evolink://models/{name}")

    body = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert body["id"] == "gemini-3-pro-image-preview" and "nano-banana-pro" in body["aliases"]


async def test_an_unknown_model_resource_is_an_error_suggesting_the_nearest_id(mcp: Session) -> None:
    with pytest.raises(MCPError, match=r"Unknown model 'nano-banana-prox'\. Did you mean 'nano-banana-pro'\?"):
        await mcp.client.read_resource("evolink://models/nano-banana-prox")


async def test_the_model_resource_template_is_listed(mcp: Session) -> None:
    templates = await mcp.client.list_resource_templates()

    assert "evolink://models/{model_id}" in [t.uri_template for t in templates.resource_templates]
