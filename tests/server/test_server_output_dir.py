"""output_dir on generate_image and check_task: images saved where the call asks, by every path that saves them,
readable as resources; a folder the server may not write refused before anything is paid."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import BlobResourceContents

from mcp_session import INSTANT, Connect, ServerFor, Session, saved_images

if TYPE_CHECKING:
    from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

RUNNING = " [sandbox:duration=0.4]"  # still running when a call with wait_seconds=0 returns


async def test_generate_image_saves_in_the_output_dir_it_names_creating_it_and_serves_it_as_a_resource(
    mcp: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "project" / "assets" / "hero"
    result = await mcp.call("generate_image", {"prompt": "a lighthouse" + INSTANT, "output_dir": str(folder)})

    (image,) = mcp.data(result)["images"]
    saved = Path(image["path"])
    assert saved.parent == folder.resolve() and await anyio.Path(saved).is_file()
    assert image["resource_uri"] == f"evolink://tasks/{mcp.data(result)['task_id']}/images/{saved.name}"
    assert [link.uri for link in mcp.links(result)] == [image["resource_uri"]]
    (sidecar,) = folder.glob("*.json")
    assert json.loads(sidecar.read_text())["output_dir"] == str(folder.resolve())
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").glob("*.png"))

    read = await mcp.client.read_resource(image["resource_uri"])
    (contents,) = read.contents
    assert isinstance(contents, BlobResourceContents) and contents.mime_type == "image/png"
    assert base64.b64decode(contents.blob) == await anyio.Path(saved).read_bytes()
    listed = await mcp.client.list_resources()
    assert image["resource_uri"] in [str(r.uri) for r in listed.resources]


async def test_check_task_saves_in_the_folder_generate_image_was_given(mcp: Session, tmp_path: Path) -> None:
    folder = tmp_path / "chosen"
    started = await mcp.call(
        "generate_image", {"prompt": "a harbour" + RUNNING, "output_dir": str(folder), "wait_seconds": 0}
    )
    assert mcp.data(started)["status"] in ("pending", "processing")

    done = await mcp.call("check_task", {"task_id": mcp.data(started)["task_id"], "wait_seconds": 10})

    (image,) = mcp.data(done)["images"]
    assert Path(image["path"]).parent == folder.resolve()


async def test_the_background_follower_saves_in_the_folder_generate_image_was_given(
    mcp: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "chosen"
    await mcp.call("generate_image", {"prompt": "a harbour" + RUNNING, "output_dir": str(folder), "wait_seconds": 0})

    (saved,) = await saved_images(folder)
    assert not list((tmp_path / "images").glob("*.png"))
    assert saved.parent == folder.resolve()


@pytest.mark.real_time  # on the virtual clock the first server's follower would finish the task at once
async def test_check_task_output_dir_moves_where_a_running_task_is_saved_even_after_a_restart(
    server_for: ServerFor, connect: Connect, tmp_path: Path
) -> None:
    async with connect(server_for()) as first:
        prompt = "a harbour [sandbox:duration=1.5]"
        started = await first.call("generate_image", {"prompt": prompt, "wait_seconds": 0})
        task_id = first.data(started)["task_id"]
        folder = tmp_path / "later"
        checked = await first.call("check_task", {"task_id": task_id, "output_dir": str(folder)})
        assert first.data(checked)["status"] in ("pending", "processing")
    async with connect(server_for()) as restarted:  # the folder is in the journal, not in the first process
        done = await restarted.call("check_task", {"task_id": task_id, "wait_seconds": 10})
    (image,) = restarted.data(done)["images"]
    assert Path(image["path"]).parent == folder.resolve()


async def test_output_dir_outside_the_allowed_folders_is_refused_over_http_with_nothing_sent(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "elsewhere" / "new"
    async with connect(server_for(allowed_dirs=[allowed])) as mcp:
        refused = await mcp.call("generate_image", {"prompt": "a harbour" + INSTANT, "output_dir": str(outside)})
        error = mcp.error(refused)
        assert error["category"] == "invalid_request" and error["charged"] == "no"
        assert "output_dir" in error["message"] and str(allowed) in error["message"]
        assert not sandbox.state.tasks and not outside.exists()

        inside = await mcp.call("generate_image", {"prompt": "a quay" + INSTANT, "output_dir": str(allowed / "a")})
        in_output = await mcp.call(
            "generate_image", {"prompt": "a pier" + INSTANT, "output_dir": str(tmp_path / "images" / "sub")}
        )
        task_id = mcp.data(inside)["task_id"]
        checked = await mcp.call("check_task", {"task_id": task_id, "output_dir": str(outside)})

    assert Path(mcp.data(inside)["images"][0]["path"]).parent == (allowed / "a").resolve()
    assert Path(mcp.data(in_output)["images"][0]["path"]).parent == (tmp_path / "images" / "sub").resolve()
    assert "output_dir" in mcp.error(checked)["message"] and not outside.exists()


async def test_an_output_dir_that_cannot_be_written_is_refused_naming_it_with_nothing_sent(
    mcp: Session, sandbox: SandboxServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for bad in (str(blocker / "sub"), "relative/folder"):
        refused = await mcp.call("generate_image", {"prompt": "a harbour" + INSTANT, "output_dir": bad})
        error = mcp.error(refused)
        assert error["message"].startswith("output_dir:") and error["charged"] == "no", error
    assert not sandbox.state.tasks


async def test_a_task_image_resource_serves_only_what_the_journal_names_and_over_http_only_inside_the_allowed_folders(
    server_for: ServerFor, connect: Connect, tmp_path: Path
) -> None:
    folder = tmp_path / "anywhere"
    async with connect(server_for()) as local:  # stdio: any folder the user can write
        made = await local.call("generate_image", {"prompt": "a harbour" + INSTANT, "output_dir": str(folder)})
    task_id = local.data(made)["task_id"]
    uri = local.data(made)["images"][0]["resource_uri"]
    secret = folder / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n" + b"top secret")

    async with connect(server_for()) as again:
        assert (await again.client.read_resource(uri)).contents
        for name in ("secret.png", "..%2Fsecret.png", "%2E%2E%2Fanywhere%2Fsecret.png"):
            with pytest.raises(MCPError):
                await again.client.read_resource(f"evolink://tasks/{task_id}/images/{name}")
        with pytest.raises(MCPError):
            await again.client.read_resource(uri.replace(task_id, "task-unknown-1"))
    async with connect(server_for(allowed_dirs=[tmp_path / "allowed"])) as http:  # the same journal over HTTP
        with pytest.raises(MCPError):
            await http.client.read_resource(uri)
        listed = await http.client.list_resources()
    assert uri not in [str(r.uri) for r in listed.resources]
    assert await anyio.Path(secret).exists()
