"""upload_file, list_files and delete_file end to end against the sandbox's files API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from mcp_types import CallToolResult

from evolink_mcp.sandbox import SandboxServer

if TYPE_CHECKING:
    from mcp_session import Session

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client


def assert_reports_upload(mcp: Session, result: CallToolResult, sandbox: SandboxServer) -> dict[str, Any]:
    """The upload succeeded and says so twice: file id and file URL in text and in structured content."""
    assert not result.is_error, mcp.text(result)
    data = mcp.data(result)
    assert data["file_url"].startswith(f"{sandbox.base_url}/files/{data['file_id']}/")
    assert data["expires_at"] and "image_urls" in data["next_step"]
    assert data["file_id"] in mcp.text(result) and data["file_url"] in mcp.text(result)
    return data


async def test_upload_file_streams_a_local_file_and_returns_a_file_url_serving_the_same_bytes(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path], http: httpx2.AsyncClient
) -> None:
    png = make_png("to-upload.png")

    result = await mcp.call("upload_file", {"file_path": str(png)})

    data = assert_reports_upload(mcp, result, sandbox)
    assert data["file_name"] == "to-upload.png" and data["file_size"] == png.stat().st_size
    assert data["mime_type"] == "image/png"
    (upload,) = sandbox.state.requests("files")
    assert upload.endpoint == "files/upload/stream" and "multipart/form-data" in upload.header("content-type")
    assert (await http.get(data["file_url"])).content == png.read_bytes()


@pytest.mark.parametrize("as_data_url", [False, True], ids=["raw-base64", "data-url"])
async def test_upload_file_accepts_base64_raw_or_as_a_data_url(
    as_data_url: bool,
    mcp: Session,
    sandbox: SandboxServer,
    make_png: Callable[..., Path],
    http: httpx2.AsyncClient,
) -> None:
    png = make_png()
    encoded = base64.b64encode(png.read_bytes()).decode()
    payload = f"data:image/png;base64,{encoded}" if as_data_url else encoded

    result = await mcp.call("upload_file", {"base64_data": payload, "file_name": "pasted.png"})

    data = assert_reports_upload(mcp, result, sandbox)
    assert data["file_name"] == "pasted.png"
    assert [r.endpoint for r in sandbox.state.requests("files")] == ["files/upload/base64"]
    assert (await http.get(data["file_url"])).content == png.read_bytes()


async def test_upload_file_from_a_url_has_the_files_api_fetch_it(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path], http: httpx2.AsyncClient
) -> None:
    png = make_png()
    first = mcp.data(await mcp.call("upload_file", {"file_path": str(png)}))

    result = await mcp.call("upload_file", {"file_url": first["file_url"], "file_name": "copy.png"})

    data = assert_reports_upload(mcp, result, sandbox)
    assert data["file_id"] != first["file_id"] and data["file_name"] == "copy.png"
    (by_url,) = sandbox.state.requests("files/upload/url")
    assert by_url.body["file_url"] == first["file_url"]
    assert (await http.get(data["file_url"])).content == png.read_bytes()


async def test_list_files_shows_the_uploads_and_the_quota(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path]
) -> None:
    ids = []
    for name in ("one.png", "two.png"):
        ids.append(mcp.data(await mcp.call("upload_file", {"file_path": str(make_png(name))}))["file_id"])

    result = await mcp.call("list_files", {})

    assert not result.is_error
    data = mcp.data(result)
    assert data["page"] == 1 and data["total"] == 2
    assert sorted(f["file_id"] for f in data["files"]) == sorted(ids)
    assert {f["file_name"] for f in data["files"]} == {"one.png", "two.png"}
    assert data["quota"] == {"user_group": "default", "used_files": 2, "max_files": 100, "remain_files": 98}
    text = mcp.text(result)
    assert all(file_id in text for file_id in ids) and "Quota: 2/100 used, 98 left." in text
    assert {r.endpoint for r in sandbox.state.requests("files", method="GET")} == {
        "files/list",
        "files/quota",
    }


async def test_delete_file_removes_the_upload_and_frees_quota(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path], http: httpx2.AsyncClient
) -> None:
    uploaded = mcp.data(await mcp.call("upload_file", {"file_path": str(make_png())}))

    result = await mcp.call("delete_file", {"file_id": uploaded["file_id"]})

    assert not result.is_error
    assert mcp.data(result) == {"file_id": uploaded["file_id"], "deleted": True}
    assert uploaded["file_id"] in mcp.text(result)
    (deleted,) = sandbox.state.requests("files/delete")
    assert deleted.method == "DELETE" and deleted.path == f"/api/v1/files/{uploaded['file_id']}"
    listing = mcp.data(await mcp.call("list_files", {}))
    assert listing["total"] == 0 and listing["quota"]["used_files"] == 0
    assert (await http.get(uploaded["file_url"])).status_code == 404

    again = await mcp.call("delete_file", {"file_id": uploaded["file_id"]})

    assert again.is_error and mcp.error(again)["category"] == "not_found"
