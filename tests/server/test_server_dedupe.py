"""The same generation asked twice (a client that timed out and retried) pays once; the first progress message
names the task."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from evolink_mcp.sandbox import SandboxServer
from mcp_session import INSTANT, Connect, ServerFor, Session

pytestmark = pytest.mark.anyio


async def test_the_same_request_again_returns_the_first_task_and_sends_nothing(
    mcp: Session, sandbox: SandboxServer
) -> None:
    arguments = {"prompt": "a lighthouse at dusk" + INSTANT, "size": "16:9"}

    first = await mcp.call("generate_image", arguments)
    again = await mcp.call("generate_image", arguments)

    assert not first.is_error and not again.is_error, mcp.text(again)
    assert mcp.data(again)["task_id"] == mcp.data(first)["task_id"]
    assert mcp.data(again)["images"] == mcp.data(first)["images"]
    assert len(sandbox.state.requests("generations", "POST")) == 1
    warning = " ".join(mcp.data(again)["warnings"])
    assert "nothing new was sent" in warning and "client_request_id" in warning
    assert "nothing new was sent" in mcp.text(again)


async def test_a_different_request_or_a_new_client_request_id_is_a_new_task(
    mcp: Session, sandbox: SandboxServer
) -> None:
    base = {"prompt": "a lighthouse at dusk" + INSTANT}

    first = await mcp.call("generate_image", base)
    other_size = await mcp.call("generate_image", {**base, "size": "1:1"})
    new_id = await mcp.call("generate_image", {**base, "client_request_id": "another-one"})

    ids = {mcp.data(r)["task_id"] for r in (first, other_size, new_id)}
    assert len(ids) == 3
    assert len(sandbox.state.requests("generations", "POST")) == 3


async def test_a_failed_task_is_not_reused(mcp: Session, sandbox: SandboxServer) -> None:
    arguments = {"prompt": "a lighthouse [sandbox:fail=service_error]" + INSTANT}

    first = await mcp.call("generate_image", arguments)
    again = await mcp.call("generate_image", arguments)

    assert first.is_error and again.is_error
    assert mcp.data(again)["task_id"] != mcp.data(first)["task_id"]


async def test_two_identical_calls_at_once_make_one_task(mcp: Session, sandbox: SandboxServer) -> None:
    arguments = {"prompt": "twin lighthouses" + INSTANT}
    results = []

    async def call() -> None:
        results.append(await mcp.call("generate_image", arguments))

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        group.start_soon(call)

    assert {mcp.data(r)["task_id"] for r in results} == {mcp.data(results[0])["task_id"]}
    assert len(sandbox.state.requests("generations", "POST")) == 1


async def test_evolink_dedupe_seconds_zero_turns_it_off(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    arguments = {"prompt": "a lighthouse at dusk" + INSTANT}

    async with connect(server_for(dedupe_seconds=0)) as mcp:
        first = await mcp.call("generate_image", arguments)
        again = await mcp.call("generate_image", arguments)

    assert mcp.data(again)["task_id"] != mcp.data(first)["task_id"]
    assert len(sandbox.state.requests("generations", "POST")) == 2


async def test_a_reference_file_changed_since_makes_it_a_new_request(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., object]
) -> None:
    reference = make_png("ref.png", color=(10, 10, 10))
    arguments = {"prompt": "make it brighter" + INSTANT, "image_urls": [str(reference)]}

    first = await mcp.call("generate_image", arguments)
    make_png("ref.png", size=(80, 60), color=(250, 250, 250))  # edited in place: same path, another image
    again = await mcp.call("generate_image", arguments)

    assert mcp.data(again)["task_id"] != mcp.data(first)["task_id"]
    assert len(sandbox.state.requests("generations", "POST")) == 2
