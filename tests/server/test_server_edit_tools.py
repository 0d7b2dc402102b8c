"""upscale_image and remove_background: the catalog's upscale and background-removal models as tools, end to end
against the sandbox, with errors that name the models that can do it (nothing sent)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from mcp_session import INSTANT

if TYPE_CHECKING:
    from evolink_mcp.sandbox import SandboxServer
    from mcp_session import Session

pytestmark = pytest.mark.anyio


def _bodies(sandbox: SandboxServer) -> list[dict[str, object]]:
    return [task.request_body for task in sandbox.state.tasks.values()]


async def test_remove_background_sends_the_image_to_a_remove_bg_model_and_saves_the_result(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path], tmp_path: Path
) -> None:
    photo = make_png("photo.png")
    result = await mcp.call("remove_background", {"image": str(photo), "output_dir": str(tmp_path / "cutouts")})

    data = mcp.data(result)
    assert data["status"] == "completed" and Path(data["images"][0]["path"]).parent == (tmp_path / "cutouts")
    (body,) = _bodies(sandbox)
    assert body["model"] == "mj-v8.2-remove-bg" and "prompt" not in body
    assert len(body["image_urls"]) == 1 and str(body["image_urls"][0]).startswith(sandbox.base_url)  # uploaded
    assert mcp.images(result)  # shown like generate_image's


async def test_remove_background_with_a_model_that_cannot_names_those_that_can(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path]
) -> None:
    result = await mcp.call("remove_background", {"image": str(make_png()), "model": "gemini-3.1-flash-image-preview"})

    error = mcp.error(result)
    assert error["charged"] == "no" and "cannot remove backgrounds" in error["message"]
    assert "mj-v7-remove-bg, mj-v8.1-remove-bg, mj-v8.2-remove-bg" in error["message"]
    assert not sandbox.state.tasks


async def test_upscale_image_upscales_one_image_of_a_midjourney_task(mcp: Session, sandbox: SandboxServer) -> None:
    grid = await mcp.call("generate_image", {"prompt": "a castle" + INSTANT, "model": "mj-v7"})
    task_id = mcp.data(grid)["task_id"]

    result = await mcp.call("upscale_image", {"task_id": task_id, "index": 2, "creative": True})

    data = mcp.data(result)
    assert data["status"] == "completed" and await anyio.Path(data["images"][0]["path"]).is_file()
    body = _bodies(sandbox)[-1]
    assert body["model"] == "mj-v7-upscale"
    assert body["model_params"] == {"task_id": task_id, "image_number": 2, "type": "creative"}


@pytest.mark.parametrize("image", ["https://example.com/photo.png", "/home/me/photo.png", "~/photo.png"])
async def test_upscale_image_of_an_image_rather_than_a_task_says_which_models_upscale_and_sends_nothing(
    image: str, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("upscale_image", {"task_id": image})

    error = mcp.error(result)
    assert error["charged"] == "no" and "mj-v7-upscale" in error["message"] and "is an image" in error["message"]
    assert "mj-v7" in error["next_step"]
    assert not sandbox.state.tasks


async def test_upscale_image_of_a_task_another_model_made_is_refused_before_anything_is_paid(
    mcp: Session, sandbox: SandboxServer
) -> None:
    made = await mcp.call("generate_image", {"prompt": "a castle" + INSTANT})
    before = len(sandbox.state.tasks)

    result = await mcp.call("upscale_image", {"task_id": mcp.data(made)["task_id"]})

    error = mcp.error(result)
    assert error["charged"] == "no" and "gemini-3.1-flash-image-preview" in error["message"]
    assert "mj-v7-upscale upscales only mj-v7 tasks" in error["message"]
    assert len(sandbox.state.tasks) == before


async def test_upscale_image_with_a_model_that_cannot_names_those_that_can(
    mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("upscale_image", {"task_id": "task-unified-1-abc", "model": "mj-v7-remove-bg"})

    error = mcp.error(result)
    assert "mj-v7-remove-bg cannot upscale; the models that can: mj-v7-upscale." in error["message"]
    assert not sandbox.state.tasks
