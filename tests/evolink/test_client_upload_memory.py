"""upload_file streams from disk: the client never holds a large file in memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from client_support import png_bytes

from evolink_mcp.evolink import EvolinkClient, RequestTooLargeError
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


def sparse_png(path: Path, size: int) -> Path:
    """A file of `size` bytes that starts like a PNG and is otherwise a hole: no disk, no memory."""
    with path.open("wb") as handle:
        handle.write(png_bytes())
        handle.truncate(size)
    return path


async def test_a_200_mb_upload_is_streamed_whole_then_refused_with_40001_without_being_held_in_memory(
    client: EvolinkClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = sparse_png(tmp_path / "huge.png", 200 * MB)

    # tracemalloc sees every thread: the sandbox serving this upload counts against the budget too.
    tracemalloc.start()
    try:
        with pytest.raises(RequestTooLargeError) as caught:
            await client.upload_file(source, mime_type="image/png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (caught.value.status, caught.value.code) == (413, 40001)
    assert peak < 16 * MB, f"peak traced memory {peak / MB:.1f} MB while uploading 200 MB"
    [entry] = sandbox.state.requests("files/upload/stream")  # refused, and not retried
    assert int(entry.header("content-length") or 0) > 200 * MB  # the whole file went out, in one request


async def test_a_60_mb_upload_is_stored_without_being_held_in_memory(
    client: EvolinkClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = sparse_png(tmp_path / "large.png", 60 * MB)

    tracemalloc.start()
    try:
        uploaded = await client.upload_file(source, file_name="large.png", mime_type="image/png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert uploaded.file_size == 60 * MB
    assert uploaded.mime_type == "image/png"
    assert peak < 16 * MB, f"peak traced memory {peak / MB:.1f} MB while uploading 60 MB"
