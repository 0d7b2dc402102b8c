"""The studio is negotiated: a client without MCP Apps support sees the server as before; one with it gets the
view (one self-contained HTML resource under a strict CSP), the bound tools and the gallery's data."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import anyio
import pytest
from mcp_types import BlobResourceContents, TextResourceContents

from evolink_mcp.studio import STUDIO_URI
from mcp_session import INSTANT, Session

pytestmark = pytest.mark.anyio

STUDIO_TOOLS = ["show_images", "studio_tasks"]


async def test_a_client_without_apps_support_sees_no_studio_at_all(mcp: Session) -> None:
    tools = (await mcp.client.list_tools()).tools
    resources = (await mcp.client.list_resources()).resources

    assert "generate_image" in [tool.name for tool in tools]
    assert not {tool.name for tool in tools} & set(STUDIO_TOOLS)
    assert all(tool.meta is None for tool in tools)
    assert not [r for r in resources if str(r.uri).startswith("ui://")]


@pytest.mark.parametrize("name", ["show_images", "studio_tasks"])
async def test_a_client_without_apps_support_calling_a_studio_tool_gets_the_unknown_tool_answer(
    mcp: Session, name: str
) -> None:
    studio = await mcp.client.call_tool(name, {"task_ids": ["x"]} if name == "studio_tasks" else {})
    unknown = await mcp.client.call_tool("no_such_tool", {})

    assert studio.is_error and unknown.is_error
    assert studio.model_dump(exclude={"content"}) == unknown.model_dump(exclude={"content"})
    assert Session.text(studio) == Session.text(unknown).replace("no_such_tool", name)


async def test_an_apps_client_gets_generate_image_and_check_task_bound_to_the_studio(
    apps_mcp: Session, mcp: Session
) -> None:
    tools = {tool.name: tool for tool in (await apps_mcp.client.list_tools()).tools}
    without_apps = [tool.name for tool in (await mcp.client.list_tools()).tools]

    assert list(tools) == [*without_apps, *STUDIO_TOOLS]
    for name in ("generate_image", "check_task", "show_images"):
        assert tools[name].meta == {"ui": {"resourceUri": STUDIO_URI}}
    assert tools["studio_tasks"].meta == {"ui": {"resourceUri": STUDIO_URI, "visibility": ["app"]}}  # not the model's
    assert STUDIO_URI in [str(r.uri) for r in (await apps_mcp.client.list_resources()).resources]


async def test_the_studio_is_one_html_document_that_runs_only_its_own_inline_script_and_style(
    apps_mcp: Session,
) -> None:
    (content,) = (await apps_mcp.client.read_resource(STUDIO_URI)).contents
    assert isinstance(content, TextResourceContents)
    html = content.text

    assert content.mime_type == "text/html;profile=mcp-app"
    assert content.meta == {"ui": {"csp": {}, "prefersBorder": False}}  # no domain: no network of its own
    (csp,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    digest = {text: base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() for text in (script, style)}
    assert f"script-src 'sha256-{digest[script]}'" in csp and f"style-src 'sha256-{digest[style]}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp and "unsafe" not in csp
    assert not re.search(r"https?://", html), "the view names no address to load or call"
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\b", script)


async def test_show_images_gives_each_recent_generation_whole_with_images_the_view_can_read(
    apps_mcp: Session,
) -> None:
    long_prompt = "A lighthouse on a cliff at dusk, " * 10 + INSTANT  # longer than list_tasks' 200-character cut
    first = await apps_mcp.call("generate_image", {"prompt": long_prompt, "model": "gpt-image-2", "size": "1:1"})
    second = await apps_mcp.call(
        "generate_image", {"prompt": "A red fox in snow" + INSTANT, "model": "doubao-seedream-4.5", "n": 2}
    )

    shown = await apps_mcp.call("show_images", {"limit": 5})
    gallery = Session.data(shown)

    assert gallery["count"] == 2
    newest, oldest = gallery["tasks"]
    assert newest["task_id"] == Session.data(second)["task_id"] and len(newest["images"]) == 2
    assert oldest["task_id"] == Session.data(first)["task_id"]
    assert oldest["prompt"] == long_prompt and oldest["model"] == "gpt-image-2"
    assert oldest["params"]["size"] == "1:1" and "prompt" not in oldest["params"]
    assert oldest["status"] == "completed" and oldest["credits"] > 0
    assert oldest["task_id"] in Session.text(shown)
    (image,) = oldest["images"]
    assert image["path"] == Session.data(first)["images"][0]["path"]
    (blob,) = (await apps_mcp.client.read_resource(image["resource_uri"])).contents
    assert base64.b64decode(blob.model_dump()["blob"])[:8] == b"\x89PNG\r\n\x1a\n"

    looked_up = Session.data(await apps_mcp.call("studio_tasks", {"task_ids": [oldest["task_id"], "task-unknown"]}))
    assert looked_up["count"] == 1 and looked_up["tasks"][0] == oldest


async def test_an_image_saved_in_a_folder_of_its_own_is_shown_with_the_link_generate_image_gave(
    apps_mcp: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "project" / "renders"  # not the server's output folder
    made = Session.data(
        await apps_mcp.call("generate_image", {"prompt": "A tide pool" + INSTANT, "output_dir": str(folder)})
    )
    (made_image,) = made["images"]

    (shown,) = Session.data(await apps_mcp.call("show_images", {}))["tasks"]
    (looked_up,) = Session.data(await apps_mcp.call("studio_tasks", {"task_ids": [made["task_id"]]}))["tasks"]

    (image,) = shown["images"]
    assert image["path"] == made_image["path"] and Path(image["path"]).parent == folder.resolve()
    assert image["resource_uri"] == made_image["resource_uri"] == looked_up["images"][0]["resource_uri"]
    (blob,) = (await apps_mcp.client.read_resource(image["resource_uri"])).contents
    assert isinstance(blob, BlobResourceContents) and blob.mime_type == "image/png"
    assert base64.b64decode(blob.blob) == await anyio.Path(image["path"]).read_bytes()
