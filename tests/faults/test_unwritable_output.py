"""An output directory that cannot be written: the images are not lost, the result says why and where they are."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fault_support import Session, images_in, is_png, text_of

from evolink_mcp.sandbox import SandboxServer

if TYPE_CHECKING:
    Connect = Callable[..., AbstractAsyncContextManager[Session]]

pytestmark = pytest.mark.anyio


def mode_bits_are_ignored() -> bool:
    """Whether this process writes into read-only directories anyway (root, or CAP_DAC_OVERRIDE)."""
    with tempfile.TemporaryDirectory() as root:
        probe = Path(root, "probe")
        probe.mkdir(mode=0o500)
        try:
            (probe / "file").touch()
        except PermissionError:
            return False
        finally:
            probe.chmod(0o700)
        return True


def under_a_file(root: Path) -> tuple[Path, Callable[[], None], str]:
    """The output directory's parent is a regular file: it cannot be created, whoever runs the server."""
    blocker = root / "blocker"
    blocker.write_text("not a directory")
    return blocker / "images", blocker.unlink, "cannot create the output directory"


def read_only(root: Path) -> tuple[Path, Callable[[], None], str]:
    """A read-only directory (root ignores the mode bits: the path under a file covers that case)."""
    directory = root / "images"
    directory.mkdir(mode=0o500)
    return directory, lambda: directory.chmod(0o700), "Permission denied"


@pytest.mark.parametrize(
    "make_unwritable",
    [
        pytest.param(under_a_file, id="path-under-a-file"),
        pytest.param(
            read_only,
            id="read-only-directory",
            marks=pytest.mark.skipif(mode_bits_are_ignored(), reason="this user writes to read-only directories"),
        ),
    ],
)
async def test_an_unwritable_output_directory_is_a_clear_save_error_that_keeps_the_urls_until_check_task_saves(
    make_unwritable: Callable[[Path], tuple[Path, Callable[[], None], str]],
    connect: Connect,
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    output_dir, make_writable, reason = make_unwritable(tmp_path)

    async with connect(output_dir=output_dir) as mcp:
        result = await mcp.call("generate_image", {"prompt": "a harbour at dawn [sandbox:duration=0]"})
        data = result.structured_content
        assert not result.is_error and data is not None, text_of(result)
        entry = await mcp.deps.service.journal.by_task_id(data["task_id"])

        make_writable()
        checked = await mcp.call("check_task", {"task_id": data["task_id"]})

    # Not an exception: a completed task whose saving failed, with the reason, the URLs and their expiry.
    text = text_of(result)
    assert data["status"] == "completed"
    assert reason in data["save_error"] and str(output_dir) in data["save_error"]
    assert f"Saving failed: {data['save_error']}" in text
    url = data["images"][0]["url"]  # the one image (checked whole below), not saved
    assert url.startswith(f"{sandbox.base_url}/results/{data['task_id']}/")
    assert url in text and data["urls_expire_at"] in text
    assert data["images"] == [{"index": 0, "url": url}]
    assert "check_task" in data["next_step"]
    assert entry is not None and entry.result_urls == [url] and entry.save_error == data["save_error"]
    assert not entry.finished, "the journal keeps the task open until its images are saved"
    # Once the directory can be written, check_task saves the same task's images: nothing submitted again.
    saved = checked.structured_content
    assert not checked.is_error and saved is not None, text_of(checked)
    assert "save_error" not in saved and [image["url"] for image in saved["images"]] == [url]
    (image,) = images_in(output_dir)
    assert saved["images"][0]["path"] == str(image) and is_png(image)
    assert len(sandbox.state.requests("generations")) == 1
