"""Every client call against the sandbox served by uvicorn on 127.0.0.1 (a real socket)."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest
from client_support import generation, png_bytes, wait_until_terminal

from evolink_mcp import __version__
from evolink_mcp.evolink import (
    APIStatusError,
    EvolinkClient,
    InvalidRequestError,
    NotFoundError,
    RequestTooLargeError,
    ResultRefusedError,
)
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_a_submission_returns_the_pending_task_and_sends_the_body_as_json(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    task = await client.submit_generation(generation("a red fox", size="16:9"))

    assert task.id in sandbox.state.tasks
    assert task.status in ("pending", "processing")
    assert task.model == "gemini-3.1-flash-image-preview"  # the catalog id nano-banana-2 stands for
    assert task.usage.billing_rule == "per_call" and task.usage.credits_reserved
    [entry] = sandbox.state.requests("generations")
    assert entry.body == {"model": "nano-banana-2", "prompt": "a red fox", "size": "16:9"}
    assert entry.header("content-type") == "application/json"
    assert entry.header("authorization") == "Bearer [redacted]"


async def test_a_submitted_task_is_polled_to_completion_with_its_result_urls(client: EvolinkClient) -> None:
    submitted = await client.submit_generation(generation(model="doubao-seedream-4.5", n=2))

    done = await wait_until_terminal(client, submitted.id)

    assert done.status == "completed" and done.succeeded
    assert done.progress == 100
    assert len(done.image_urls) == 2
    assert done.image_urls == done.results == [item["image_url"] for item in done.result_data or []]


async def test_a_task_in_an_unknown_status_is_terminal_and_reported_as_is(client: EvolinkClient) -> None:
    submitted = await client.submit_generation(generation("[sandbox:status=cancelled] a cat"))

    done = await wait_until_terminal(client, submitted.id)

    assert done.status == "cancelled"
    assert done.is_terminal and not done.succeeded
    assert done.image_urls == []


async def test_a_failed_task_carries_its_string_error_code(client: EvolinkClient) -> None:
    submitted = await client.submit_generation(generation("[sandbox:fail=content_policy_violation] x"))

    done = await wait_until_terminal(client, submitted.id)

    assert done.status == "failed"
    assert done.error is not None and done.error.code == "content_policy_violation"
    assert done.error.message


async def test_an_unknown_task_is_not_found_naming_the_task_id(client: EvolinkClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.get_task("task-unified-1-doesnotexist")

    assert caught.value.status == 404 and caught.value.param == "task_id"


@pytest.mark.parametrize(
    "task_id",
    [
        "",
        "../admin",
        "..",
        ".",
        "task-1/..",
        "task 1",
        "a/b",
        "x" * 300,
        "task\x00id",
        "task\x1b[31m",
        "task\x7f",
        "t%2e%2e",
    ],
)
async def test_a_task_id_no_real_task_can_have_is_refused_without_a_request(
    client: EvolinkClient, sandbox: SandboxServer, task_id: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await client.get_task(task_id)

    assert "task_id" in caught.value.message and caught.value.sent is False
    assert sandbox.state.requests() == []


@pytest.mark.parametrize("task_id", ["task-unified-1757165031-uyujaw3d", "task_A.b-9", "x" * 256])
async def test_a_task_id_of_the_documented_shape_is_asked_for(
    client: EvolinkClient, sandbox: SandboxServer, task_id: str
) -> None:
    with pytest.raises(APIStatusError):  # the sandbox knows no such task, or finds the id malformed
        await client.get_task(task_id)

    assert len(sandbox.state.requests("tasks")) == 1


async def test_a_base64_upload_accepts_raw_base64_and_data_urls(client: EvolinkClient) -> None:
    encoded = base64.b64encode(png_bytes()).decode()

    raw = await client.upload_base64(encoded, file_name="raw.png", upload_path="refs")
    data_url = await client.upload_base64(f"data:image/png;base64,{encoded}")

    assert raw.file_name == "raw.png" and raw.upload_path == "refs"
    assert raw.mime_type == "image/png" and raw.file_size == len(png_bytes())
    assert raw.file_url.startswith("http://127.0.0.1:")
    assert data_url.file_id != raw.file_id


async def test_a_file_upload_is_sent_as_a_multipart_stream_with_its_fields(
    client: EvolinkClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = tmp_path / "reference.png"
    source.write_bytes(png_bytes() + bytes(3 * 1024 * 1024))

    uploaded = await client.upload_file(source, upload_path="refs", file_name="renamed.png", mime_type="image/png")

    assert uploaded.file_name == "renamed.png" and uploaded.upload_path == "refs"
    assert uploaded.file_size == source.stat().st_size
    [entry] = sandbox.state.requests("files/upload/stream")
    assert (entry.header("content-type") or "").startswith("multipart/form-data; boundary=")
    assert entry.header("content-length") is not None and int(entry.header("content-length") or 0) > 3 * 1024 * 1024
    assert sandbox.state.files.get(uploaded.file_id) is not None


async def test_a_url_upload_asks_the_service_to_fetch_a_public_url(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    original = await client.upload_base64(base64.b64encode(png_bytes()).decode(), file_name="a.png")

    copied = await client.upload_url(original.file_url, file_name="copy.png", upload_path="copies")

    assert copied.file_name == "copy.png" and copied.upload_path == "copies"
    assert copied.file_size == original.file_size
    [entry] = sandbox.state.requests("files/upload/url")
    assert entry.body == {"file_url": original.file_url, "file_name": "copy.png", "upload_path": "copies"}


async def test_listing_reads_pages_and_keeps_unknown_fields(client: EvolinkClient, sandbox: SandboxServer) -> None:
    for index in range(3):
        await client.upload_base64(base64.b64encode(png_bytes()).decode(), file_name=f"{index}.png")

    first = await client.list_files(page=1, page_size=2)
    second = await client.list_files(page=2, page_size=2)

    assert first.total == second.total == 3
    assert len(first.files) == 2 and len(second.files) == 1
    assert {f.file_name for f in first.files + second.files} == {"0.png", "1.png", "2.png"}
    assert first.model_extra == {"page": 1, "pageSize": 2}
    assert [e.query for e in sandbox.state.requests("files/list")] == [
        "page=1&pageSize=2",
        "page=2&pageSize=2",
    ]


async def test_the_quota_counts_uploads_and_deleting_a_file_frees_it(client: EvolinkClient) -> None:
    uploaded = await client.upload_base64(base64.b64encode(png_bytes()).decode())
    before = await client.get_quota()

    await client.delete_file(uploaded.file_id)
    after = await client.get_quota()

    assert before.user_group == "default"
    assert (before.used_files, before.max_files, before.remain_files) == (1, 100, 99)
    assert (after.used_files, after.remain_files) == (0, 100)
    with pytest.raises(NotFoundError):
        await client.delete_file(uploaded.file_id)


async def test_every_call_identifies_itself_as_evolink_mcp_with_its_version(
    client: EvolinkClient, sandbox: SandboxServer, tmp_path: Path
) -> None:
    source = tmp_path / "ua.png"
    source.write_bytes(png_bytes())
    task = await client.submit_generation(generation())
    await client.get_task(task.id)
    uploaded = await client.upload_file(source)
    await client.upload_base64(base64.b64encode(png_bytes()).decode())
    await client.upload_url(uploaded.file_url)
    await client.list_files()
    await client.get_quota()
    await client.download(uploaded.file_url, io.BytesIO(), max_bytes=1 << 20)
    await client.delete_file(uploaded.file_id)

    logged = sandbox.state.requests()
    assert len(logged) == 9
    assert {entry.header("user-agent") for entry in logged} == {f"evolink-mcp/{__version__}"}


async def test_a_download_streams_the_result_without_the_api_key(client: EvolinkClient, sandbox: SandboxServer) -> None:
    task = await wait_until_terminal(client, (await client.submit_generation(generation())).id)
    sink = io.BytesIO()

    content_type = await client.download(task.image_urls[0], sink, max_bytes=10 * 1024 * 1024)

    assert content_type == "image/png"
    assert sink.getvalue().startswith(PNG_MAGIC)
    [entry] = sandbox.state.requests("results")
    assert entry.header("authorization") is None
    # Every API call did carry it: the absence above is the download's own doing.
    assert all(e.header("authorization") == "Bearer [redacted]" for e in sandbox.state.requests("tasks"))


async def test_a_download_follows_a_redirect_to_where_the_result_is(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    task = await wait_until_terminal(client, (await client.submit_generation(generation())).id)

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        location = task.image_urls[0]
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(redirect, "127.0.0.1", 0)
    async with server:
        sink = io.BytesIO()
        port = server.sockets[0].getsockname()[1]
        content_type = await client.download(f"http://127.0.0.1:{port}/signed/0.png", sink, max_bytes=10 << 20)

    assert content_type == "image/png" and sink.getvalue().startswith(PNG_MAGIC)
    assert len(sandbox.state.requests("results")) == 1


async def test_a_download_retried_after_a_503_restarts_the_sink(client: EvolinkClient, sandbox: SandboxServer) -> None:
    uploaded = await client.upload_base64(base64.b64encode(png_bytes()).decode())
    sink = io.BytesIO(b"stale bytes from an earlier attempt")
    sandbox.state.fail_next("downloads", 503)

    await client.download(uploaded.file_url, sink, max_bytes=1 << 20)

    assert sink.getvalue() == png_bytes()
    assert [e.status for e in sandbox.state.requests("downloads")] == [503, 200]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "data:image/png;base64,AAAA", "/results/x/0.png"]
)
async def test_a_download_refuses_urls_that_are_not_http_or_https(
    client: EvolinkClient, sandbox: SandboxServer, url: str
) -> None:
    with pytest.raises(ResultRefusedError):
        await client.download(url, io.BytesIO(), max_bytes=1 << 20)

    assert sandbox.state.requests() == []


async def test_a_download_over_max_bytes_is_refused_and_leaves_the_sink_empty(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    uploaded = await client.upload_base64(base64.b64encode(png_bytes()).decode())
    sink = io.BytesIO()

    with pytest.raises(RequestTooLargeError) as caught:
        await client.download(uploaded.file_url, sink, max_bytes=len(png_bytes()) - 1)

    assert caught.value.status == 413
    assert sink.getvalue() == b""
    assert len(sandbox.state.requests("downloads")) == 1  # too large is final: not retried


async def test_a_download_of_an_expired_result_is_not_found_and_not_retried(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    task = await wait_until_terminal(client, (await client.submit_generation(generation())).id)
    sandbox.state.expire(task.id)

    with pytest.raises(NotFoundError):
        await client.download(task.image_urls[0], io.BytesIO(), max_bytes=1 << 20)

    assert len(sandbox.state.requests("results")) == 1


async def test_the_sandbox_answers_a_submission_sent_again_under_the_same_idempotency_key_with_the_same_task(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    first = await client.submit_generation(generation(), idempotency_key="retry-after-a-lost-answer")
    again = await client.submit_generation(generation(), idempotency_key="retry-after-a-lost-answer")
    other = await client.submit_generation(generation(), idempotency_key="another-request")

    assert again.id == first.id and other.id != first.id
    assert len(sandbox.state.tasks) == 2  # nothing new was made (or billed) for the repeat


async def test_the_balance_is_the_accounts_credits_and_the_keys_limit(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=50)
    await client.submit_generation(generation("a red fox", model="krea-2-turbo", quality="2K"))

    balance = await client.get_balance()

    assert (balance.user.remaining_credits, balance.user.used_credits) == (48.2, 1.8)
    assert balance.token.unlimited_credits is True
    [entry] = sandbox.state.requests("credits")
    assert (entry.method, entry.path) == ("GET", "/v1/credits")
