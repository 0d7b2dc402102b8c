"""Saved images as resources: readable from any process, after a restart, and nothing else from the disk."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import BlobResourceContents

from mcp_session import INSTANT, Connect, ServerFor, Session

pytestmark = pytest.mark.anyio


async def test_a_saved_image_link_reads_back_from_a_new_server_process_and_is_listed(
    server_for: ServerFor, connect: Connect, tmp_path: Path
) -> None:
    async with connect(server_for()) as first:
        result = await first.call("generate_image", {"prompt": "a lighthouse" + INSTANT})
        (link,) = first.links(result)
    saved = Path(first.data(result)["images"][0]["path"])

    async with connect(server_for()) as restarted:  # a new server: nothing registered in memory carries over
        read = await restarted.client.read_resource(link.uri)
        listed = await restarted.client.list_resources()

    (contents,) = read.contents
    assert isinstance(contents, BlobResourceContents) and contents.mime_type == "image/png"
    assert base64.b64decode(contents.blob) == await anyio.Path(saved).read_bytes()
    assert [r.uri for r in listed.resources if str(r.uri).startswith("evolink://images/")] == [link.uri]


@pytest.mark.parametrize(
    "name",
    [
        "..%2Fsecret.png",
        "%2E%2E%2Fsecret.png",
        "nested%2Fsecret.png",
        "notes.png",  # a file that sits in the folder but is no image
        "escape.png",  # a symlink out of the folder
        "missing.png",
    ],
)
async def test_only_images_inside_the_output_folder_are_served(name: str, mcp: Session, tmp_path: Path) -> None:
    output = tmp_path / "images"
    (output / "nested").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"top secret")
    (output / "nested" / "secret.png").write_bytes(secret.read_bytes())
    (output / "notes.png").write_text("not an image")
    (output / "escape.png").symlink_to(secret)

    with pytest.raises(MCPError):
        await mcp.client.read_resource(f"evolink://images/{name}")


async def test_resource_links_can_be_left_out_for_clients_that_mishandle_them(
    server_for: ServerFor, connect: Connect
) -> None:
    async with connect(server_for(resource_links=False)) as mcp:
        result = await mcp.call("generate_image", {"prompt": "a lighthouse" + INSTANT})

    assert mcp.links(result) == [] and mcp.images(result)  # still a preview, and the path in text
    image = mcp.data(result)["images"][0]
    assert image["path"] in mcp.text(result) and image["resource_uri"].startswith("evolink://images/")
