"""Findings 6, 7 and 10: bodies are read within caps, streamed (a huge answer or error body is refused or cut
with a clear error, not read whole), a trickled download cannot hold a call past its wait, and a task id no
real task can have is refused before anything is sent."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from hostile_support import Connected
from hostile_upstream import TASK_ID, Hostile, Huge, png_bytes, task_body, trickle
from starlette.responses import JSONResponse

pytestmark = pytest.mark.anyio

Connect = Callable[..., AbstractAsyncContextManager[Connected]]
HUGE = 100 << 20  # 25 times the cap on an answer: what matters is that it is not read, not its exact size


async def test_a_huge_poll_answer_is_refused_with_a_clear_error_without_being_read(
    connect: Connect, hostile: Hostile
) -> None:
    body = Huge(HUGE)
    hostile.answer("GET /v1/tasks/", body)

    async with connect() as c:
        result = await c.mcp.call("check_task", {"task_id": TASK_ID})

    assert result.is_error
    error = c.mcp.data(result)["error"]
    assert error["category"] == "answer_too_large" and "MB" in error["message"]
    assert body.sent < HUGE // 4  # stopped at the cap (plus what the sockets buffered), not read to the end


async def test_a_huge_error_body_of_a_download_is_cut_not_read_whole(
    connect: Connect, hostile: Hostile, tmp_path: Path
) -> None:
    body = Huge(3 * HUGE, status=500, media_type="text/html")
    url = f"{hostile.base_url}/r/0.png"
    hostile.answer("GET /r/0.png", body)
    hostile.answer("GET /v1/tasks/", lambda request: JSONResponse(task_body("completed", results=[url])))

    async with connect() as c:
        result = await c.mcp.call("check_task", {"task_id": TASK_ID})

    data = c.mcp.data(result)
    assert "HTTP 500" in data["save_error"] and data["images"] == [{"index": 0, "url": url}]
    assert body.sent < HUGE  # three attempts, each cut at the error-body cap


async def test_a_trickled_result_does_not_hold_a_call_past_its_wait(connect: Connect, hostile: Hostile) -> None:
    url = f"{hostile.base_url}/r/0.png"
    slow = png_bytes(256, 256) + b"\0" * 200_000  # ~200 s at 1 KB per second
    hostile.answer("GET /r/0.png", lambda request: trickle(slow, every=1.0))
    hostile.answer("GET /v1/tasks/", lambda request: JSONResponse(task_body("completed", results=[url])))

    async with connect(min_save_seconds=1.0) as c:
        with anyio.fail_after(10):  # the call's wait (2 s) and a margin, not the trickle's 200 s
            result = await c.mcp.call("check_task", {"task_id": TASK_ID, "wait_seconds": 2})

    data = c.mcp.data(result)
    assert "not finished within" in data["save_error"]
    assert data["images"] == [{"index": 0, "url": url}]


@pytest.mark.parametrize(
    "task_id", ["..", "task-1/../../v1/admin", "task\x00id", "task\r\nX-Evil: 1", "task\x1b[2J", "a b"]
)
async def test_a_task_id_no_real_task_can_have_is_refused_before_anything_is_sent(
    connect: Connect, hostile: Hostile, task_id: str
) -> None:
    async with connect() as c:
        result = await c.mcp.call("check_task", {"task_id": task_id})

    assert result.is_error and c.mcp.data(result)["error"]["category"] == "invalid_request"
    assert "cannot be a valid id" in c.mcp.text(result)
    assert hostile.seen == []
