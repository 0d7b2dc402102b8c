"""The sandbox speaks the Evolink contract: driven with plain httpx2 against uvicorn on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from PIL import Image

from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

KEY = "sk-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TERMINAL = ("completed", "failed", "cancelled")
TASK_ID = re.compile(r"^task-unified-\d+-[a-z0-9]{8}$")


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 50, 50)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=AUTH, timeout=20) as client:
        yield client


async def submit(api: httpx2.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "a fox", **body})
    assert response.status_code == 200, response.text
    return response.json()


async def upload_base64(api: httpx2.AsyncClient, data: bytes, **fields: str) -> httpx2.Response:
    return await api.post(
        "/api/v1/files/upload/base64", json={"base64_data": base64.b64encode(data).decode(), **fields}
    )


async def wait_until_done(api: httpx2.AsyncClient, task_id: str, seconds: float = 10) -> dict[str, Any]:
    with anyio.fail_after(seconds):
        while True:
            body = (await api.get(f"/v1/tasks/{task_id}")).json()
            if body["status"] in TERMINAL:
                return body
            await anyio.sleep(0.01)


# -- generation lifecycle ---------------------------------------------------------------------------


async def test_a_submission_returns_the_documented_task_envelope(api: httpx2.AsyncClient) -> None:
    created = await submit(api, size="16:9", quality="2K")

    assert TASK_ID.match(created["id"])
    assert created["model"] == "gemini-3.1-flash-image-preview"  # the alias resolves to the canonical id
    assert created["object"] == "image.generation.task"
    assert (created["status"], created["progress"], created["type"]) == ("pending", 0, "image")
    assert created["task_info"] == {"can_cancel": True, "estimated_time": 1}
    assert created["usage"]["billing_rule"] == "per_call"
    assert created["usage"]["user_group"] == "default"
    assert created["usage"]["credits_reserved"] > 0
    assert abs(created["created"] - time.time()) < 60


async def test_a_task_goes_from_pending_through_processing_to_completed_with_results_and_result_data(
    api: httpx2.AsyncClient,
) -> None:
    created = await submit(api, prompt="a lighthouse [sandbox:duration=1]")
    seen = [(created["status"], created["progress"], created["task_info"]["estimated_time"])]
    with anyio.fail_after(10):
        while seen[-1][0] != "completed":
            body = (await api.get(f"/v1/tasks/{created['id']}")).json()
            seen.append((body["status"], body["progress"], body["task_info"]["estimated_time"]))
            await anyio.sleep(0.02)

    statuses = [status for status, _, _ in seen]
    assert statuses[0] == "pending"
    assert "processing" in statuses
    assert statuses == sorted(statuses, key=["pending", "processing", "completed"].index)
    progress = [p for _, p, _ in seen]
    assert progress == sorted(progress) and progress[-1] == 100
    assert any(0 < p < 100 for p in progress)
    assert seen[-1][2] == 0
    assert body["task_info"]["can_cancel"] is False
    assert len(body["results"]) == 1
    assert body["result_data"] == [{"image_url": url} for url in body["results"]]


async def test_credits_are_deterministic_and_grow_with_tier_and_n(api: httpx2.AsyncClient) -> None:
    small = await submit(api, model="gpt-image-2", resolution="1K", quality="low")
    same = await submit(api, model="gpt-image-2", resolution="1K", quality="low")
    big = await submit(api, model="gpt-image-2", resolution="4K", quality="low")
    many = await submit(api, model="gpt-image-2", resolution="1K", quality="low", n=3)

    assert small["usage"] == same["usage"]
    assert big["usage"]["credits_reserved"] > small["usage"]["credits_reserved"]
    assert many["usage"]["credits_reserved"] == pytest.approx(3 * small["usage"]["credits_reserved"])


@pytest.mark.parametrize(
    ("body", "expected_size", "expected_format"),
    [
        ({"model": "nano-banana-2", "size": "16:9", "quality": "1K"}, (1024, 576), "PNG"),
        ({"model": "nano-banana-2", "size": "1:4", "quality": "0.5K"}, (128, 512), "PNG"),
        ({"model": "nano-banana-2", "size": "auto"}, (2048, 2048), "PNG"),  # default tier 2K, auto = 1:1
        ({"model": "gpt-image-2", "size": "1024x1536", "output_format": "jpeg"}, (1024, 1536), "JPEG"),
        (
            {"model": "gpt-image-2", "size": "16:9", "resolution": "2K", "output_format": "webp"},
            (2736, 1536),  # the 2K pixel budget (2048²) at 16:9, sides multiples of 16
            "WEBP",
        ),
        ({"model": "doubao-seedream-5.0-lite", "size": "3:2", "quality": "3K"}, (3744, 2496), "PNG"),  # its table
        ({"model": "z-image-turbo", "size": "2:3"}, (683, 1024), "PNG"),  # no tier: 1024 on the long edge
    ],
)
async def test_a_result_image_has_the_requested_aspect_ratio_tier_and_format(
    api: httpx2.AsyncClient, body: dict[str, Any], expected_size: tuple[int, int], expected_format: str
) -> None:
    created = await submit(api, **body)
    done = await wait_until_done(api, created["id"])

    response = await api.get(done["results"][0], headers={"Authorization": ""})  # like a CDN link: no key

    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    assert image.size == expected_size
    assert image.format == expected_format
    assert response.headers["content-type"] == Image.MIME[expected_format]


async def test_a_task_with_n_images_returns_n_distinct_result_urls(api: httpx2.AsyncClient) -> None:
    created = await submit(api, model="gpt-image-2", n=3, size="1:1")
    done = await wait_until_done(api, created["id"])

    assert len(set(done["results"])) == 3
    for url in done["results"]:
        assert (await api.get(url)).status_code == 200
    missing = done["results"][0].replace("/0.png", "/3.png")
    assert (await api.get(missing)).status_code == 404


async def test_a_4k_image_renders_quickly_and_is_served_from_the_cache_afterwards(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    created = await submit(api, size="1:1", quality="4K", prompt="a very large test image")
    done = await wait_until_done(api, created["id"])

    with anyio.fail_after(8):
        first = await api.get(done["results"][0])
    second = await api.get(done["results"][0])

    assert Image.open(io.BytesIO(first.content)).size == (4096, 4096)
    assert first.content == second.content
    assert len(sandbox.state.images) == 1


# -- request validation -----------------------------------------------------------------------------


async def test_an_invalid_size_is_refused_with_400_naming_the_size_param(api: httpx2.AsyncClient) -> None:
    response = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x", "size": "7:5"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "size"
    assert "7:5" in error["message"]
    assert error["code"] == 400


async def test_an_unknown_model_is_404_with_a_fallback_suggestion(api: httpx2.AsyncClient) -> None:
    near = await api.post("/v1/images/generations", json={"model": "gpt-image-3", "prompt": "x"})
    far = await api.post("/v1/images/generations", json={"model": "zzzz", "prompt": "x"})

    assert near.status_code == far.status_code == 404
    assert near.json()["error"]["type"] == "not_found_error"
    assert near.json()["error"]["param"] == "model"
    assert near.json()["error"]["fallback_suggestion"].startswith("gpt-image")
    assert far.json()["error"]["fallback_suggestion"] == "gemini-3.1-flash-image-preview"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "nano-banana-2"}, "prompt"),
        ({"model": "nano-banana-2", "prompt": "x", "quality": "8K"}, "quality"),
        (
            {"model": "nano-banana-2", "prompt": "x", "resolution": "2K"},
            "resolution",
        ),  # tier travels as quality
        ({"model": "nano-banana-2", "prompt": "x", "n": "2"}, "n"),
        ({"model": "gpt-image-2", "prompt": "x", "n": 11}, "n"),
        ({"model": "nano-banana-2", "prompt": "x", "image_urls": ["/home/me/cat.png"]}, "image_urls"),
        (
            {"model": "nano-banana-2", "prompt": "x", "image_urls": ["data:image/png;base64,AAAA"]},
            "image_urls",
        ),
        ({"model": "nano-banana-2", "prompt": "x", "callback_url": "http://127.0.0.1/cb"}, "callback_url"),
        ({"model": "nano-banana-2", "prompt": "x", "callback_url": "https://[::1/cb"}, "callback_url"),
        ({"model": "nano-banana-2", "prompt": "x", "image_urls": ["http://[bad/x.png"]}, "image_urls"),
        ({"model": "nano-banana-2", "prompt": "x", "n": True}, "n"),
        (
            {"model": "nano-banana-2", "prompt": "x", "model_params.web_search": True},
            "model_params.web_search",
        ),
        (
            {"model": "nano-banana-2", "prompt": "x", "model_params": {"thinking_level": "max"}},
            "model_params.thinking_level",
        ),
        ({"model": "nano-banana-2", "prompt": "x", "seed": 3}, "seed"),
        ({"prompt": "x"}, "model"),
    ],
)
async def test_invalid_parameters_are_refused_with_400_naming_the_param(
    api: httpx2.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await api.post("/v1/images/generations", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


async def test_valid_nested_model_params_and_public_reference_urls_are_accepted(
    api: httpx2.AsyncClient,
) -> None:
    await submit(
        api,
        model_params={"thinking_level": "high", "web_search": True},
        image_urls=["https://example.com/cat.png"],
    )


async def test_a_body_that_is_not_a_json_object_is_400(api: httpx2.AsyncClient) -> None:
    response = await api.post("/v1/images/generations", content=b"[1, 2]", headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# -- authentication ---------------------------------------------------------------------------------


async def test_requests_without_a_key_are_401_in_each_api_envelope(sandbox: SandboxServer) -> None:
    async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
        generation = await anonymous.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})
        task = await anonymous.get("/v1/tasks/task-unified-1-abcdefgh", headers={"Authorization": "Bearer"})
        quota = await anonymous.get("/api/v1/files/quota")

    assert generation.status_code == task.status_code == quota.status_code == 401
    assert generation.json()["error"]["type"] == "authentication_error"
    assert task.json()["error"]["type"] == "authentication_error"
    assert quota.json() == {"success": False, "code": 401, "msg": quota.json()["msg"], "data": None}
    assert sandbox.state.tasks == {}


async def test_with_a_configured_key_only_that_key_is_accepted(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(api_key="the-right-key")

    wrong = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})
    right = await api.post(
        "/v1/images/generations",
        json={"model": "nano-banana-2", "prompt": "x"},
        headers={"Authorization": "Bearer the-right-key"},
    )

    assert wrong.status_code == 401
    assert right.status_code == 200


# -- failures and expiry ----------------------------------------------------------------------------


async def test_a_fail_marker_ends_the_task_failed_with_the_documented_message(api: httpx2.AsyncClient) -> None:
    created = await submit(api, prompt="something [sandbox:fail=content_policy_violation]")
    done = await wait_until_done(api, created["id"])

    assert done["status"] == "failed"
    assert done["error"]["code"] == "content_policy_violation"
    assert "rephrase" in done["error"]["message"].lower()
    assert "results" not in done


async def test_a_fail_marker_with_an_unlisted_code_keeps_the_code(api: httpx2.AsyncClient) -> None:
    done = await wait_until_done(api, (await submit(api, prompt="[sandbox:fail=brand_new_code]"))["id"])

    assert done["error"]["code"] == "brand_new_code"
    assert done["error"]["message"]


async def test_a_status_marker_ends_the_task_in_that_unknown_status(api: httpx2.AsyncClient) -> None:
    done = await wait_until_done(api, (await submit(api, prompt="x [sandbox:status=cancelled]"))["id"])

    assert done["status"] == "cancelled"
    assert "results" not in done and "error" not in done


async def test_an_expired_task_answers_404_naming_task_id(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    created = await submit(api)
    done = await wait_until_done(api, created["id"])
    sandbox.state.expire(created["id"])

    response = await api.get(f"/v1/tasks/{created['id']}")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.json()["error"]["param"] == "task_id"
    assert (await api.get(done["results"][0])).status_code == 404


async def test_an_expire_marker_makes_the_task_404_once_it_completes(api: httpx2.AsyncClient) -> None:
    created = await submit(api, prompt="x [sandbox:expire] [sandbox:duration=0.3]")
    first = await api.get(f"/v1/tasks/{created['id']}")
    with anyio.fail_after(10):
        response = await api.get(f"/v1/tasks/{created['id']}")
        while response.status_code == 200:
            await anyio.sleep(0.01)
            response = await api.get(f"/v1/tasks/{created['id']}")

    assert first.status_code == 200
    assert response.status_code == 404


async def test_an_unknown_task_id_is_404_and_a_malformed_one_is_400(api: httpx2.AsyncClient) -> None:
    unknown = await api.get("/v1/tasks/task-unified-1700000000-abcdefgh")
    malformed = await api.get("/v1/tasks/not a task!")

    assert unknown.status_code == 404
    assert unknown.json()["error"]["param"] == "task_id"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["param"] == "task_id"


# -- files API --------------------------------------------------------------------------------------

UPLOAD_FIELDS = {
    "file_id", "file_name", "original_name", "file_size", "mime_type", "upload_path",
    "file_url", "download_url", "upload_time", "expires_at",
}  # fmt: skip


async def test_a_base64_upload_is_stored_and_served_at_its_file_url(api: httpx2.AsyncClient) -> None:
    data = png_bytes()
    response = await api.post(
        "/api/v1/files/upload/base64",
        json={
            "base64_data": "data:image/png;base64," + base64.b64encode(data).decode(),
            "file_name": "red.png",
        },
    )

    body = response.json()
    assert response.status_code == 200 and body["success"] is True and body["code"] == 200
    info = body["data"]
    assert set(info) == UPLOAD_FIELDS
    assert (info["file_name"], info["file_size"], info["mime_type"]) == ("red.png", len(data), "image/png")
    assert _hours_between(info["upload_time"], info["expires_at"]) == 72
    download = await api.get(info["file_url"], headers={"Authorization": ""})
    assert download.content == data
    assert download.headers["content-type"] == "image/png"
    attachment = await api.get(info["download_url"])
    assert "attachment" in attachment.headers["content-disposition"]


def _hours_between(start: str, end: str) -> float:
    from datetime import datetime

    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds() / 3600


async def test_a_multipart_stream_upload_keeps_the_original_name_and_upload_path(
    api: httpx2.AsyncClient,
) -> None:
    data = png_bytes(32, 16)
    response = await api.post(
        "/api/v1/files/upload/stream",
        files={"file": ("cat photo.png", io.BytesIO(data), "image/png")},
        data={"upload_path": "refs"},
    )

    info = response.json()["data"]
    assert response.status_code == 200, response.text
    assert (info["file_name"], info["original_name"], info["upload_path"]) == (
        "cat photo.png",
        "cat photo.png",
        "refs",
    )
    assert (await api.get(info["file_url"])).content == data


async def test_a_stream_upload_is_copied_in_chunks_and_large_files_are_accepted(
    api: httpx2.AsyncClient,
) -> None:
    size = 5 * 1024 * 1024
    response = await api.post(
        "/api/v1/files/upload/stream", files={"file": ("big.png", ChunkedFile(png_bytes(), size))}
    )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["file_size"] == size


async def test_a_file_over_the_size_cap_is_refused_with_40001(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(max_file_bytes=1024 * 1024)
    data = png_bytes() + bytes(1024 * 1024)

    streamed = await api.post("/api/v1/files/upload/stream", files={"file": ("big.png", ChunkedFile(data, len(data)))})
    encoded = await upload_base64(api, data)

    for response in (streamed, encoded):
        assert response.status_code == 413
        assert response.json()["success"] is False
        assert response.json()["code"] == 40001
    assert sandbox.state.files.used == 0


async def test_a_file_that_is_not_an_image_is_refused_with_40002(api: httpx2.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/files/upload/stream",
        files={"file": ("fake.png", io.BytesIO(b"%PDF-1.7 not an image"), "image/png")},
    )

    assert response.json()["success"] is False
    assert response.json()["code"] == 40002


async def test_a_full_quota_refuses_uploads_with_40003_until_a_file_is_deleted(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(max_files=2)
    ids = [(await upload_base64(api, png_bytes())).json()["data"]["file_id"] for _ in range(2)]

    full = await upload_base64(api, png_bytes())
    quota = (await api.get("/api/v1/files/quota")).json()["data"]
    deleted = await api.delete(f"/api/v1/files/{ids[0]}")
    after = (await api.get("/api/v1/files/quota")).json()["data"]
    again = await upload_base64(api, png_bytes())

    assert full.json()["success"] is False and full.json()["code"] == 40003
    assert quota == {"user_group": "default", "used_files": 2, "max_files": 2, "remain_files": 0}
    assert deleted.json()["success"] is True
    assert after["remain_files"] == 1
    assert again.json()["success"] is True


async def test_uploading_the_same_file_name_overwrites_the_old_file(api: httpx2.AsyncClient) -> None:
    first = png_bytes(4, 4)
    second = png_bytes(6, 6)
    one = await upload_base64(api, first, file_name="same.png")
    two = await upload_base64(api, second, file_name="same.png")

    assert one.json()["data"]["file_id"] == two.json()["data"]["file_id"]
    assert (await api.get(two.json()["data"]["file_url"])).content == second
    assert (await api.get("/api/v1/files/quota")).json()["data"]["used_files"] == 1


async def test_listing_pages_through_files_newest_first(api: httpx2.AsyncClient) -> None:
    for index in range(3):
        await upload_base64(api, png_bytes(), file_name=f"f{index}.png")

    page1 = (await api.get("/api/v1/files/list", params={"page": 1, "pageSize": 2})).json()["data"]
    page2 = (await api.get("/api/v1/files/list", params={"page": 2, "pageSize": 2})).json()["data"]

    assert page1["total"] == page2["total"] == 3
    assert len(page1["files"]) == 2 and len(page2["files"]) == 1
    assert {"file_id", "file_name", "file_size", "upload_time"} <= set(page1["files"][0])
    names = [f["file_name"] for f in page1["files"] + page2["files"]]
    assert sorted(names) == ["f0.png", "f1.png", "f2.png"]


async def test_deleting_an_unknown_file_is_404_in_the_files_envelope(api: httpx2.AsyncClient) -> None:
    response = await api.delete("/api/v1/files/file_nope")

    assert response.status_code == 404
    assert response.json()["success"] is False and response.json()["code"] == 404


async def test_a_url_upload_copies_the_sandboxs_own_files_and_results(api: httpx2.AsyncClient) -> None:
    stored = await upload_base64(api, png_bytes())
    done = await wait_until_done(api, (await submit(api, size="1:1", quality="0.5K"))["id"])

    from_file = await api.post(
        "/api/v1/files/upload/url",
        json={"file_url": stored.json()["data"]["file_url"], "file_name": "copy.png"},
    )
    from_result = await api.post("/api/v1/files/upload/url", json={"file_url": done["results"][0]})

    assert from_file.json()["success"] is True
    assert from_file.json()["data"]["file_name"] == "copy.png"
    assert from_result.json()["success"] is True
    assert from_result.json()["data"]["file_name"] == "0.png"
    image = Image.open(io.BytesIO((await api.get(from_result.json()["data"]["file_url"])).content))
    assert image.size == (512, 512)


async def test_a_url_upload_from_anywhere_else_fails_with_40004_without_going_out(
    api: httpx2.AsyncClient,
) -> None:
    response = await api.post("/api/v1/files/upload/url", json={"file_url": "https://example.com/cat.png"})

    assert response.json()["success"] is False
    assert response.json()["code"] == 40004


@pytest.mark.slow
async def test_a_multipart_upload_streams_to_disk_instead_of_memory(api: httpx2.AsyncClient) -> None:
    import tracemalloc

    data_size = 101 * 1024 * 1024  # above the default 100 MB cap; chunked, so no early Content-Length check
    tracemalloc.start()
    try:
        response = await api.post(
            "/api/v1/files/upload/stream", files={"file": ("huge.png", ChunkedFile(png_bytes(), data_size))}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 413
    assert response.json()["code"] == 40001
    assert peak < 32 * 1024 * 1024


class ChunkedFile:
    """A file-like object of unknown length (`head`, then zeros up to `total`): httpx2 sends it chunked."""

    def __init__(self, head: bytes, total: int) -> None:
        self.head = head
        self.left = total

    def read(self, size: int = 65536) -> bytes:
        chunk, self.head = self.head[: self.left], b""
        if not chunk:
            chunk = bytes(min(size, self.left))
        self.left -= len(chunk)
        return chunk


# -- scripted faults and the request log ------------------------------------------------------------


async def test_a_scripted_status_answers_with_the_documented_body_and_retry_after(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 429, count=2, retry_after=7)

    first = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})
    second = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})
    third = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})

    assert first.status_code == second.status_code == 429
    assert first.headers["retry-after"] == "7"
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert first.json()["error"]["code"] == 429
    assert "retry after 7 seconds" in first.json()["error"]["fallback_suggestion"]
    assert third.status_code == 200
    assert len(sandbox.state.tasks) == 1
    assert [e.status for e in sandbox.state.requests("generations")] == [429, 429, 200]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(402, "insufficient_quota_error"), (403, "permission_error"), (500, "internal_server_error"),
     (502, "upstream_error"), (503, "service_unavailable_error")],
)  # fmt: skip
async def test_each_documented_status_has_its_error_type(
    api: httpx2.AsyncClient, sandbox: SandboxServer, status: int, error_type: str
) -> None:
    sandbox.state.fail_next("tasks", status)

    response = await api.get("/v1/tasks/task-unified-1-abcdefgh")

    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type


async def test_a_scripted_status_on_a_files_route_uses_the_files_envelope_and_only_that_method(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("files", 503, method="GET")

    upload = await upload_base64(api, png_bytes())
    quota = await api.get("/api/v1/files/quota")

    assert upload.json()["success"] is True
    assert quota.status_code == 503
    assert quota.json() == {"success": False, "code": 503, "msg": quota.json()["msg"], "data": None}


async def test_added_latency_delays_the_answer(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    sandbox.state.add_latency("tasks", 300, count=1)

    started = time.monotonic()
    delayed = await api.get("/v1/tasks/task-unified-1-abcdefgh")
    middle = time.monotonic()
    await api.get("/v1/tasks/task-unified-1-abcdefgh")
    ended = time.monotonic()

    assert delayed.status_code == 404
    assert middle - started >= 0.3
    assert ended - middle < 0.3


async def test_a_connection_dropped_before_processing_creates_no_task(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.drop_next("generations", when="before")

    with pytest.raises(httpx2.RemoteProtocolError):
        await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})
    after = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})

    assert after.status_code == 200
    assert list(sandbox.state.tasks) == [after.json()["id"]]
    logged = sandbox.state.requests("generations")
    assert [(e.dropped, e.task_id is None) for e in logged] == [("before", True), (None, False)]


async def test_a_connection_dropped_after_processing_loses_the_answer_but_the_task_exists(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.drop_next("generations", when="after")

    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        await api.post(
            "/v1/images/generations",
            json={"model": "nano-banana-2", "prompt": "lost answer"},
            headers={"Idempotency-Key": "idem-1"},
        )

    [entry] = sandbox.state.requests("generations")
    assert entry.dropped == "after" and entry.status == 200
    assert entry.header("Idempotency-Key") == "idem-1"
    assert entry.body["prompt"] == "lost answer"
    assert entry.task_id in sandbox.state.tasks
    done = await wait_until_done(api, entry.task_id)
    assert done["status"] == "completed"


async def test_the_request_log_keeps_selected_headers_but_never_the_key(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    await api.post(
        "/v1/images/generations",
        json={"model": "nano-banana-2", "prompt": "x"},
        headers={"Idempotency-Key": "k-1", "User-Agent": "evolink-mcp-test/1"},
    )

    [entry] = sandbox.state.requests("generations", method="POST")
    assert entry.header("user-agent") == "evolink-mcp-test/1"
    assert entry.header("idempotency-key") == "k-1"
    assert KEY not in repr(entry.to_json())
    assert entry.status == 200 and entry.request_id.startswith("req-")


async def test_faults_can_be_scripted_and_the_log_read_over_http(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    async with httpx2.AsyncClient(base_url=sandbox.base_url) as control:
        made = await control.post(
            "/_sandbox/faults",
            json={"kind": "status", "endpoint": "generations", "status": 503, "retry_after": "2"},
        )
        dropped = await control.post("/_sandbox/faults", json={"kind": "drop", "endpoint": "tasks", "when": "before"})
        slow = await control.post("/_sandbox/faults", json={"kind": "latency", "endpoint": "files", "ms": 1})
        bad = await control.post("/_sandbox/faults", json={"kind": "status", "endpoint": "nowhere", "status": 500})
        listed = (await control.get("/_sandbox/faults")).json()

        refused = await api.post("/v1/images/generations", json={"model": "nano-banana-2", "prompt": "x"})
        log = (await control.get("/_sandbox/requests", params={"endpoint": "generations"})).json()["requests"]
        await control.post("/_sandbox/reset")
        emptied = (await control.get("/_sandbox/requests")).json()["requests"]

    assert made.status_code == dropped.status_code == slow.status_code == 200
    assert bad.status_code == 400
    assert len(listed["faults"]) == 2 and len(listed["latencies"]) == 1
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert [(e["status"], e["fault"]) for e in log] == [(503, made.json()["fault"]["id"])]
    assert emptied == []
    assert sandbox.state.faults == []


async def test_reset_forgets_tasks_files_faults_and_the_log(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    await submit(api)
    await upload_base64(api, png_bytes())
    sandbox.state.fail_next("tasks", 500)
    sandbox.state.configure(max_files=1)

    sandbox.state.reset()

    assert sandbox.state.tasks == {} and sandbox.state.files.used == 0
    assert sandbox.state.faults == [] and sandbox.state.log == []
    assert sandbox.state.config.max_files == 100


async def test_a_url_upload_treats_every_loopback_spelling_of_the_sandbox_as_itself(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    stored = (await upload_base64(api, png_bytes(), file_name="orig.png")).json()["data"]
    localhost_url = stored["file_url"].replace("127.0.0.1", "localhost")

    response = await api.post("/api/v1/files/upload/url", json={"file_url": localhost_url, "file_name": "b.png"})

    assert response.json()["success"] is True, response.text


async def test_a_task_can_be_expired_over_http(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    created = await submit(api)
    async with httpx2.AsyncClient(base_url=sandbox.base_url) as control:
        expired = await control.post(f"/_sandbox/tasks/{created['id']}/expire")
        unknown = await control.post("/_sandbox/tasks/task-unified-1-abcdefgh/expire")

    assert expired.status_code == 200 and unknown.status_code == 404
    assert (await api.get(f"/v1/tasks/{created['id']}")).status_code == 404
