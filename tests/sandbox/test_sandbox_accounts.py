"""Each API key is its own account in the sandbox: its tasks, files, file quota and idempotency keys."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import httpx2
import pytest
from PIL import Image

from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

ALICE = {"Authorization": "Bearer sk-alice-0123456789"}
BOB = {"Authorization": "Bearer sk-bob-9876543210"}


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 50)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=sandbox.base_url, timeout=20) as client:
        yield client


async def submit(api: httpx2.AsyncClient, headers: dict[str, str]) -> httpx2.Response:
    body = {"model": "nano-banana-2", "prompt": "a fox"}
    return await api.post("/v1/images/generations", json=body, headers=headers)


async def test_another_keys_task_is_not_found(api: httpx2.AsyncClient) -> None:
    task = (await submit(api, ALICE)).json()
    assert (await api.get(f"/v1/tasks/{task['id']}", headers=ALICE)).status_code == 200
    other = await api.get(f"/v1/tasks/{task['id']}", headers=BOB)
    assert other.status_code == 404
    assert other.json()["error"]["type"] == "not_found_error"


async def test_the_same_idempotency_key_under_two_keys_makes_two_tasks(api: httpx2.AsyncClient) -> None:
    key = {"Idempotency-Key": "req-1"}
    alice = [(await submit(api, {**ALICE, **key})).json()["id"] for _ in range(2)]
    bob = (await submit(api, {**BOB, **key})).json()["id"]
    assert alice[0] == alice[1]
    assert bob != alice[0]


async def test_files_are_listed_counted_and_deleted_per_key(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(max_files=1)
    body = {"base64_data": base64.b64encode(png_bytes()).decode(), "file_name": "ref.png"}
    alice = (await api.post("/api/v1/files/upload/base64", json=body, headers=ALICE)).json()["data"]
    # The same name under another key is another file, and Alice's full quota is not Bob's.
    bob = (await api.post("/api/v1/files/upload/base64", json=body, headers=BOB)).json()["data"]
    assert bob["file_id"] != alice["file_id"]
    listed = (await api.get("/api/v1/files/list", headers=BOB)).json()["data"]
    assert [f["file_id"] for f in listed["files"]] == [bob["file_id"]]
    quota = (await api.get("/api/v1/files/quota", headers=BOB)).json()["data"]
    assert quota["used_files"] == 1
    assert (await api.delete(f"/api/v1/files/{alice['file_id']}", headers=BOB)).status_code == 404
    assert (await api.delete(f"/api/v1/files/{alice['file_id']}", headers=ALICE)).status_code == 200
