"""Finding 2: a result link to an internal address (directly, by DNS or by a redirect) is never fetched, a
redirect never goes from https to http, and a result that is not an image by its bytes is never saved or
published; the task reports a failed save and keeps the URL."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from hostile_support import Connected, Internal
from hostile_upstream import TASK_ID, Hostile, png_bytes, serving, task_body
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from evolink_mcp.evolink import EvolinkClient, ResultRefusedError

pytestmark = pytest.mark.anyio

Connect = Callable[..., AbstractAsyncContextManager[Connected]]


def completed_with(hostile: Hostile, *urls: str) -> None:
    hostile.answer("GET /v1/tasks/", lambda request: JSONResponse(task_body("completed", results=list(urls))))


def saved_files(root: Path) -> list[Path]:
    folder = root / "images"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def check(c: Connected) -> dict[str, Any]:
    result = await c.mcp.call("check_task", {"task_id": TASK_ID})
    assert not c.mcp.links(result), "an unsaved result was published as a resource"
    return c.mcp.data(result)


@pytest.mark.parametrize("via", ["an IP literal", "a name resolving to loopback", "a redirect"])
async def test_a_result_at_an_internal_address_is_never_fetched_saved_or_published(
    connect: Connect, hostile: Hostile, internal: Internal, tmp_path: Path, via: str
) -> None:
    secret = f"{internal.base_url}/secret.png"
    hostile.answer("GET /r/redirect", lambda request: RedirectResponse(secret, 302))
    hostile.answer("GET /r/png", lambda request: Response(png_bytes(), media_type="image/png"))
    own_port = hostile.base_url.rsplit(":", 1)[1]
    url = {
        "an IP literal": secret,
        "a name resolving to loopback": f"http://localhost:{own_port}/r/png",  # 127.0.0.1, but not by that name
        "a redirect": f"{hostile.base_url}/r/redirect",
    }[via]
    completed_with(hostile, url)

    async with connect() as c:
        data = await check(c)

    assert data["status"] == "completed" and data["images"] == [{"index": 0, "url": url}]
    assert "not a public address" in data["save_error"]
    assert internal.hits == [] and "GET /r/png" not in hostile.seen
    assert saved_files(tmp_path) == []


async def test_a_host_in_evolink_download_allow_hosts_may_be_internal(
    connect: Connect, hostile: Hostile, internal: Internal, tmp_path: Path
) -> None:
    completed_with(hostile, f"{internal.base_url}/secret.png")

    async with connect(download_allow_hosts=("127.0.0.2",)) as c:
        data = c.mcp.data(await c.mcp.call("check_task", {"task_id": TASK_ID}))

    assert "save_error" not in data and data["images"][0]["path"].endswith(".png")
    assert internal.hits == ["/secret.png"]


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (b"<html><body>internal admin page</body></html>", "image/png"),
        (b"root:x:0:0:root:/root:/bin/sh\n", "text/plain"),
    ],
)
async def test_a_result_that_is_not_an_image_by_its_bytes_is_never_saved_whatever_its_content_type(
    connect: Connect, hostile: Hostile, tmp_path: Path, body: bytes, media_type: str
) -> None:
    url = f"{hostile.base_url}/r/page.png"
    hostile.answer("GET /r/page.png", lambda request: Response(body, media_type=media_type))
    completed_with(hostile, url)

    async with connect() as c:
        submitted = c.mcp.data(await c.mcp.call("generate_image", {"prompt": "a castle", "wait_seconds": 0}))
        data = await check(c)
        listed = c.mcp.data(await c.mcp.call("list_tasks", {}))

    assert data["images"] == [{"index": 0, "url": url}]
    assert "not a JPEG, PNG, GIF or WebP image" in data["save_error"]
    assert saved_files(tmp_path) == []
    assert submitted["task_id"] == TASK_ID and url in str(listed)  # the journal keeps the URL


async def test_a_redirect_from_https_to_http_is_refused(
    hostile: Hostile, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    plain = f"{hostile.base_url}/r/png"
    hostile.answer("GET /r/png", lambda request: Response(png_bytes(), media_type="image/png"))

    async def downgrade(request: Request) -> Response:
        return RedirectResponse(plain, 302)

    secure = Hostile()
    secure.on("GET /r/downgrade", downgrade)
    secure.answer("GET /r/ok", lambda request: Response(png_bytes(), media_type="image/png"))
    with serving(secure.app, certificate=certificate) as https_url:
        async with EvolinkClient("sk-unused-key-0000", base_url=https_url, files_base_url=https_url) as client:
            sink = io.BytesIO()
            await client.download(f"{https_url}/r/ok", io.BytesIO(), max_bytes=1 << 20)  # https itself works
            with pytest.raises(ResultRefusedError, match="from https"):
                await client.download(f"{https_url}/r/downgrade", sink, max_bytes=1 << 20)

    assert "GET /r/png" not in hostile.seen and sink.getvalue() == b""
