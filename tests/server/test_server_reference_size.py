"""A local reference image over a model's documented size but within its newer limit: sent, with a warning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from evolink_mcp.sandbox import SandboxServer
from mcp_session import INSTANT

if TYPE_CHECKING:
    from mcp_session import Session

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


async def test_a_12_mb_reference_to_gemini_3_pro_is_sent_with_a_warning_naming_both_documented_limits(
    mcp: Session, make_png: Callable[..., Path], sandbox: SandboxServer
) -> None:
    reference = make_png("big.png")
    with reference.open("ab") as padded:  # still a PNG by its bytes, 12 MB on disk
        padded.write(b"\0" * (12 * MB))

    result = await mcp.call(
        "generate_image",
        {"model": "gemini-3-pro-image-preview", "prompt": "edit it" + INSTANT, "image_urls": [str(reference)]},
    )

    assert not result.is_error, mcp.text(result)
    assert "12.0 MB" in mcp.text(result) and "allows 10 MB, newer docs 20 MB" in mcp.text(result)
    assert len(sandbox.state.requests("generations")) == 1
