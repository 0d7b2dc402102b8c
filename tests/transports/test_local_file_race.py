"""A local file is checked and uploaded as one open file: a symlink inside EVOLINK_ALLOWED_DIRS flipped to an
outside file while uploads run never gets the outside file sent."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from transport_support import HttpServer, text_of, write_png

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # 120 uploads over HTTP: .ci/run's slow stage

UPLOADS = 120


@contextmanager
def flipping(link: Path, targets: tuple[Path, Path]) -> Iterator[None]:
    """`link` pointing at each target in turn, as fast as a thread can swap it, until the block ends."""
    stop = threading.Event()
    spare = link.with_name(link.name + ".next")

    def flip() -> None:
        while not stop.is_set():
            for target in targets:
                spare.unlink(missing_ok=True)
                spare.symlink_to(target)
                os.replace(spare, link)

    thread = threading.Thread(target=flip, daemon=True)
    link.symlink_to(targets[0])
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def test_a_symlink_flipped_during_uploads_never_sends_the_outside_file(
    http_server: HttpServer, tmp_path: Path
) -> None:
    inside = write_png(http_server.allowed_dir / f"inside-{tmp_path.name}.png", (64, 48))
    outside = write_png(tmp_path / "secret.png", (300, 200))
    assert inside.stat().st_size != outside.stat().st_size
    link = http_server.allowed_dir / f"flip-{tmp_path.name}.png"
    sizes: list[int] = []
    refused = 0

    async with (
        httpx2.AsyncClient(headers=http_server.auth, timeout=60.0) as http,
        Client(streamable_http_client(f"{http_server.base_url}/mcp", http_client=http)) as client,
    ):
        with flipping(link, (inside, outside)), anyio.fail_after(240):
            for _ in range(UPLOADS):
                result = await client.call_tool("upload_file", {"file_path": str(link)})
                if result.is_error:
                    assert "EVOLINK_ALLOWED_DIRS" in text_of(result) or "not found" in text_of(result), text_of(result)
                    refused += 1
                else:
                    assert result.structured_content is not None
                    sizes.append(result.structured_content["file_size"])

    assert set(sizes) <= {inside.stat().st_size}, f"{sizes.count(outside.stat().st_size)} outside files sent"
    assert sizes and refused, (len(sizes), refused)  # both sides of the flip were seen
