"""Results a hostile or broken upstream hands back: bombs, thousands of URLs, half-failed downloads.

Each through a real MCP client and a server whose upstream is the stand-in of hostile_results.py.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_results import TASK_ID, HostileUpstream, bilevel_png
from PIL import Image

from evolink_mcp.images.results import MAX_RESULT_URLS
from evolink_mcp.media import DOWNLOADS_PER_TASK

pytestmark = pytest.mark.anyio

GENERATE = {"prompt": "a lighthouse at dusk", "model": "gpt-image-1"}


def no_preview_logs(caplog: pytest.LogCaptureFixture) -> int:
    return sum("no preview of" in record.getMessage() for record in caplog.records)


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def is_saved(path: str, directory: Path) -> bool:
    return Path(path).is_file() and Path(path).parent == directory


def sidecar_indices(directory: Path) -> list[int]:
    (sidecar,) = directory.glob("*.json")
    return [image["index"] for image in json.loads(sidecar.read_text())["images"]]


# Finding 3: an image no preview can be made of still comes back as the task, its file and the reason.


async def test_a_decompression_bomb_result_returns_its_task_saved_file_and_why_there_is_no_preview(
    server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream, output_dir: Path, caplog: Any
) -> None:
    hostile.images["/r/1.png"] = bilevel_png(20000, 20000)  # 400 MP: over Pillow's own bomb limit

    async with connect(server_over()) as mcp:
        made = await mcp.call("generate_image", GENERATE)
        checked = [await mcp.call("check_task", {"task_id": TASK_ID}) for _ in range(2)]

    for result in (made, *checked):
        text = mcp.text(result)
        assert not result.is_error, text
        data = mcp.data(result)
        assert data["task_id"] == TASK_ID and data["status"] == "completed" and "save_error" not in data
        (image,) = data["images"]
        assert is_saved(image["path"], output_dir)
        assert image["path"] in text and data["credits_reserved"] == 1.0
        assert mcp.images(result) == [] and len(mcp.links(result)) == 1
        assert "No preview of image 1: it has too many pixels to preview" in text and "the file is saved" in text
    assert no_preview_logs(caplog) == 1, "the failing preview is tried once, then remembered"
    assert hostile.downloads["/r/1.png"] == 1


async def test_a_truncated_result_image_is_saved_and_reported_without_a_preview(
    server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream, output_dir: Path
) -> None:
    whole = io.BytesIO()
    Image.effect_noise((400, 300), 60).save(whole, "PNG")
    hostile.images["/r/1.png"] = whole.getvalue()[: len(whole.getvalue()) // 2]

    async with connect(server_over()) as mcp:
        result = await mcp.call("generate_image", GENERATE)

    text = mcp.text(result)
    assert not result.is_error, text
    assert is_saved(mcp.data(result)["images"][0]["path"], output_dir)
    assert "No preview of image 1: it could not be decoded" in text and mcp.images(result) == []


# Finding 5: the pixels a preview decodes are bounded.


async def test_a_result_over_the_preview_pixel_limit_gets_no_preview_and_says_so(
    server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream
) -> None:
    hostile.images["/r/1.png"] = bilevel_png(8000, 8000)  # 64 MP: under Pillow's limit, over ours

    async with connect(server_over()) as mcp:
        result = await mcp.call("generate_image", GENERATE)

    text = mcp.text(result)
    assert not result.is_error, text
    assert mcp.images(result) == []
    assert "No preview of image 1: 8000x8000 is over the 50-megapixel limit for previews" in text


async def test_a_large_jpeg_is_previewed_from_a_downscaled_decode(
    server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream
) -> None:
    big = io.BytesIO()
    Image.new("L", (7200, 7200), 128).save(big, "JPEG")  # 52 MP, but its draft decodes an eighth of each side
    hostile.images["/r/1.png"] = big.getvalue()

    async with connect(server_over()) as mcp:
        result = await mcp.call("generate_image", GENERATE)

    assert not result.is_error and len(mcp.images(result)) == 1, mcp.text(result)
    assert "No preview" not in mcp.text(result)


# Finding 4: no more results than the model can make, a few downloads at a time.


@pytest.mark.parametrize(("model", "limit"), [("gpt-image-1", 4), ("a-model-nobody-documents", MAX_RESULT_URLS)])
async def test_a_task_answering_thousands_of_urls_saves_only_what_its_model_can_make_a_few_at_a_time(
    model: str, limit: int, server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream, output_dir: Path
) -> None:
    hostile.model = model
    hostile.results = [f"/r/{i}.png" for i in range(3000)]
    hostile.download_seconds = 0.02  # long enough for downloads to overlap

    async with connect(server_over()) as mcp:
        result = await mcp.call("generate_image", GENERATE)

    text = mcp.text(result)
    assert not result.is_error, text
    data = mcp.data(result)
    assert len(data["images"]) == limit and all(is_saved(i["path"], output_dir) for i in data["images"])
    assert "save_error" not in data
    assert "The task answered 3000 result URLs; " in text and f"at most {limit}" in text and model in text
    assert f"the other {3000 - limit} were not downloaded" in text
    assert sum(hostile.downloads.values()) == limit
    assert hostile.most_in_flight <= DOWNLOADS_PER_TASK
    assert len(names_in(output_dir)) == limit + 1  # the images and one sidecar


# Finding 11: a half-failed save keeps what it saved; the retry fetches only the rest, under the same names.


async def test_when_one_of_two_downloads_fails_the_retry_fetches_only_the_missing_one_under_the_same_names(
    server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream, output_dir: Path
) -> None:
    hostile.results = ["/r/a.png", "/r/b.png"]
    hostile.failing = {"/r/b.png"}

    async with connect(server_over()) as mcp:
        first = await mcp.call("generate_image", GENERATE)
        kept = mcp.data(first)["images"][0]["path"]
        indices_after_first = sidecar_indices(output_dir)
        hostile.failing.clear()
        second = await mcp.call("check_task", {"task_id": TASK_ID})

    data = mcp.data(first)
    assert "image 2" in data["save_error"] and "path" not in data["images"][1] and is_saved(kept, output_dir)
    assert indices_after_first == [0]  # the saved one, recorded
    data = mcp.data(second)
    assert "save_error" not in data, mcp.text(second)
    assert data["images"][0]["path"] == kept
    assert hostile.downloads["/r/a.png"] == 1, "the image saved the first time is not fetched again"
    names = names_in(output_dir)
    assert len(names) == 3 and [n for n in names if n.endswith(".png")] == sorted(
        Path(i["path"]).name for i in data["images"]
    )
    assert sidecar_indices(output_dir) == [0, 1]


async def test_saved_results_never_leave_partial_files_or_staging_folders(
    server_over: Callable[..., Any], connect: Any, hostile: HostileUpstream, output_dir: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    hostile.results = ["/r/a.png", "/r/b.png"]
    hostile.failing = {"/r/b.png"}

    async with connect(server_over()) as mcp:
        await mcp.call("generate_image", GENERATE)

    assert [n for n in names_in(output_dir) if n.startswith(".")] == []
