"""MCP prompts: listed with their arguments, and their advice works when an agent follows it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.tools import Deps
from mcp_session import INSTANT

if TYPE_CHECKING:
    from mcp_session import Session

pytestmark = pytest.mark.anyio

PROMPTS = {
    "product_shot": {"product", "setting", "aspect_ratio", "reference_image"},
    "edit_photo": {"image", "change"},
    "consistent_character": {"character", "scenes", "reference_image"},
}


async def test_the_prompts_are_listed_with_described_arguments(mcp: Session) -> None:
    listed = {p.name: p for p in (await mcp.client.list_prompts()).prompts}

    assert set(listed) == set(PROMPTS)
    for name, arguments in PROMPTS.items():
        prompt = listed[name]
        assert prompt.title and prompt.description
        assert {a.name for a in prompt.arguments or []} == arguments
        assert all(a.description for a in prompt.arguments or [])


async def test_a_product_shot_names_a_model_and_size_the_catalog_takes(mcp: Session, deps: Deps) -> None:
    got = await mcp.client.get_prompt("product_shot", {"product": "a matte black bottle", "aspect_ratio": "7:3"})

    (message,) = got.messages
    assert isinstance(message.content, TextContent) and message.role == "user"
    text = message.content.text
    model, size = re.search(r"model='([^']+)' and size='([^']+)'", text).groups()  # type: ignore[union-attr]
    spec = deps.catalog.get(model)
    assert spec is not None and "text-to-image" in spec.modes
    assert spec.size is not None and size in spec.size.ratios  # 7:3 is not one: a size it takes instead


async def test_following_the_edit_prompt_edits_the_image(
    mcp: Session, make_png: object, sandbox: SandboxServer
) -> None:
    photo = make_png("holiday.png")  # type: ignore[operator]
    got = await mcp.client.get_prompt("edit_photo", {"image": str(photo), "change": "make the sky stormy"})
    text = got.messages[0].content.text  # type: ignore[union-attr]
    model = re.search(r"model='([^']+)'", text).group(1)  # type: ignore[union-attr]

    result = await mcp.call(
        "generate_image", {"model": model, "prompt": "make the sky stormy" + INSTANT, "image_urls": [str(photo)]}
    )

    assert not result.is_error, mcp.text(result)
    (posted,) = sandbox.state.requests("generations")
    assert posted.body["model"] == model and len(posted.body["image_urls"]) == 1


async def test_a_prompt_without_its_required_argument_is_refused(mcp: Session) -> None:
    with pytest.raises(MCPError):
        await mcp.client.get_prompt("edit_photo", {"image": "a.png"})
