"""inline on generate_image and check_task: "preview" (the default), "full" (the saved file itself, as far as the
result stays under the 1 MiB clients accept, else its preview, said in the text) or "none"."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from PIL import Image

from evolink_mcp.images.previews import FULL_INLINE_BUDGET, PREVIEW_MAX_EDGE
from mcp_session import INSTANT

if TYPE_CHECKING:
    from mcp_session import Session

pytestmark = pytest.mark.anyio


def _size(data_base64: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(data_base64))) as image:
        return image.size


async def test_inline_full_sends_the_saved_file_itself(mcp: Session) -> None:
    result = await mcp.call("generate_image", {"prompt": "a lighthouse" + INSTANT, "size": "16:9", "inline": "full"})

    (block,) = mcp.images(result)
    saved = Path(mcp.data(result)["images"][0]["path"])
    assert base64.b64decode(block.data) == await anyio.Path(saved).read_bytes() and block.mime_type == "image/png"
    assert "preview only" not in mcp.text(result)

    again = await mcp.call("check_task", {"task_id": mcp.data(result)["task_id"], "inline": "full"})
    assert [b.data for b in mcp.images(again)] == [block.data]


async def test_inline_full_falls_back_to_previews_past_what_a_result_may_carry_and_says_so(mcp: Session) -> None:
    # Four 4096x4096 images (about 360 KB each) are more than one result may carry: the first ones go whole.
    result = await mcp.call(
        "generate_image",
        {
            "prompt": "a lighthouse" + INSTANT,
            "model": "doubao-seedream-4.0",
            "size": "4096x4096",
            "n": 4,
            "inline": "full",
        },
        seconds=60,
    )

    blocks = mcp.images(result)
    sizes = [_size(b.data) for b in blocks]
    assert len(blocks) == 4 and sizes[0] == (4096, 4096) and sizes[-1][0] <= PREVIEW_MAX_EDGE
    assert sum(len(b.data) for b in blocks) <= FULL_INLINE_BUDGET
    assert "Image 4 is inline as a preview only" in mcp.text(result)


async def test_inline_full_gives_a_preview_of_an_image_too_wide_for_models_and_says_why(mcp: Session) -> None:
    result = await mcp.call(
        "generate_image",
        {"prompt": "a long panorama" + INSTANT, "model": "doubao-seedream-4.0", "size": "16000x1024", "inline": "full"},
        seconds=60,
    )

    (block,) = mcp.images(result)
    assert _size(block.data)[0] <= PREVIEW_MAX_EDGE
    assert "Image 1 is inline as a preview only: 16000x1024 is over the 8000 px a side" in mcp.text(result)


async def test_inline_none_sends_no_image_blocks_but_still_the_files_and_links(mcp: Session) -> None:
    result = await mcp.call("generate_image", {"prompt": "a lighthouse" + INSTANT, "inline": "none"})

    assert mcp.images(result) == [] and len(mcp.links(result)) == 1
    assert mcp.data(result)["images"][0]["path"] in mcp.text(result)
    checked = await mcp.call("check_task", {"task_id": mcp.data(result)["task_id"], "inline": "none"})
    assert mcp.images(checked) == []


async def test_the_default_is_a_preview(mcp: Session) -> None:
    result = await mcp.call("generate_image", {"prompt": "a lighthouse" + INSTANT})

    (block,) = mcp.images(result)
    saved = Path(mcp.data(result)["images"][0]["path"])
    assert base64.b64decode(block.data) != await anyio.Path(saved).read_bytes() and block.mime_type == "image/jpeg"
