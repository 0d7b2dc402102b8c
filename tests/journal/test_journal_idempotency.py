"""client_request_id: one request, one task, one charge — across repeats, restarts and lost answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from journal_support import DEFAULT_MODEL, journal_row, journal_rows

from evolink_mcp.journal import Journal
from evolink_mcp.sandbox import SandboxServer
from mcp_session import INSTANT, Connect, ServerFor, until

pytestmark = pytest.mark.anyio


async def test_the_intent_is_on_disk_before_the_generation_post_is_answered(
    mcp: Any, sandbox: SandboxServer, state_dir: Path
) -> None:
    sandbox.state.add_latency("generations", 400)
    results: list[Any] = []

    async def generate() -> None:
        results.append(await mcp.call("generate_image", {"prompt": "a lighthouse" + INSTANT, "size": "16:9"}))

    async with anyio.create_task_group() as group:
        group.start_soon(generate)
        await until(lambda: len(sandbox.state.requests("generations")) == 1)
        (posted,) = sandbox.state.requests("generations")
        (row,) = await anyio.to_thread.run_sync(journal_rows, state_dir)  # the POST is still unanswered

    assert row["request_key"] == posted.header("idempotency-key")
    assert (row["state"], row["task_id"]) == ("submitting", None)
    assert row["prompt"] == "a lighthouse" + INSTANT and row["model"] == DEFAULT_MODEL
    assert row["request_json"]["size"] == "16:9"
    (result,) = results
    after = journal_row(state_dir, mcp.data(result)["task_id"])
    assert after["request_key"] == row["request_key"] and after["state"] == "submitted"
    assert after["status"] == "completed" and after["credits"] == mcp.data(result)["credits_reserved"]
    assert after["result_urls"] == [image["url"] for image in mcp.data(result)["images"]]
    assert after["saved_paths"] == [image["path"] for image in mcp.data(result)["images"]] and after["finished"] == 1


async def test_the_same_client_request_id_twice_sends_one_post_and_returns_the_same_task(
    mcp: Any, sandbox: SandboxServer
) -> None:
    arguments = {"prompt": "a teapot" + INSTANT, "client_request_id": "teapot-1"}

    first = await mcp.call("generate_image", arguments)
    second = await mcp.call("generate_image", arguments)

    assert not first.is_error and not second.is_error
    (posted,) = sandbox.state.requests("generations")
    assert posted.header("idempotency-key") == "teapot-1"
    assert mcp.data(second)["task_id"] == mcp.data(first)["task_id"] == posted.task_id
    assert mcp.data(second)["client_request_id"] == "teapot-1"
    assert mcp.data(second)["images"] == mcp.data(first)["images"]
    assert any("nothing new was sent" in w for w in mcp.data(second)["warnings"])
    assert "nothing new was sent" in mcp.text(second)
    assert len(sandbox.state.requests("results")) == 1  # not downloaded again either


async def test_the_same_client_request_id_twice_at_once_sends_one_post_and_returns_the_same_task(
    mcp: Any, sandbox: SandboxServer
) -> None:
    sandbox.state.add_latency("generations", 300)  # the second call comes while the first one's POST is unanswered
    arguments = {"prompt": "a teapot" + INSTANT, "client_request_id": "teapot-2", "wait_seconds": 0}
    results: list[Any] = []

    async def generate() -> None:
        results.append(await mcp.call("generate_image", arguments))

    async with anyio.create_task_group() as group:
        group.start_soon(generate)
        await until(lambda: len(sandbox.state.requests("generations")) == 1)
        group.start_soon(generate)

    (posted,) = sandbox.state.requests("generations")
    assert [mcp.data(result)["task_id"] for result in results] == [posted.task_id] * 2


async def test_a_client_request_id_another_process_is_still_submitting_is_refused_as_retryable_and_nothing_is_sent(
    mcp: Any, sandbox: SandboxServer, state_dir: Path
) -> None:
    arguments = {"prompt": "a teapot" + INSTANT, "wait_seconds": 0}
    first = await mcp.call("generate_image", {**arguments, "client_request_id": "teapot-3"})
    other = Journal(state_dir)  # another server process on this journal: its POST for teapot-4 never answered
    fingerprint = journal_row(state_dir, mcp.data(first)["task_id"])["fingerprint"]
    await other.record_intent("teapot-4", fingerprint, DEFAULT_MODEL, arguments["prompt"], {})

    result = await mcp.call("generate_image", {**arguments, "client_request_id": "teapot-4"})
    other.close()

    assert result.is_error and len(sandbox.state.requests("generations")) == 1
    error = mcp.data(result)["error"]
    assert (error["category"], error["retryable"], error["charged"]) == ("in_progress", True, "no")
    assert "'teapot-4' was being submitted by another call" in error["message"]
    assert "same client_request_id" in error["next_step"]


async def test_the_same_client_request_id_after_a_restart_still_returns_the_original_task(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    arguments = {"prompt": "a teapot" + INSTANT, "client_request_id": "teapot-1"}
    async with connect(server_for()) as mcp:
        first = await mcp.call("generate_image", arguments)

    async with connect(server_for()) as mcp:  # a new process: new deps, same state directory
        again = await mcp.call("generate_image", arguments)

    assert not again.is_error, mcp.text(again)
    assert len(sandbox.state.requests("generations")) == 1
    assert mcp.data(again)["task_id"] == mcp.data(first)["task_id"]
    assert [i["path"] for i in mcp.data(again)["images"]] == [i["path"] for i in mcp.data(first)["images"]]
    assert len(sandbox.state.requests("results")) == 1


async def test_a_client_request_id_reused_for_different_parameters_is_refused_and_nothing_is_sent(
    mcp: Any, sandbox: SandboxServer
) -> None:
    await mcp.call("generate_image", {"prompt": "a teapot" + INSTANT, "client_request_id": "teapot-1"})

    refused = await mcp.call(
        "generate_image", {"prompt": "a teapot" + INSTANT, "size": "16:9", "client_request_id": "teapot-1"}
    )

    assert refused.is_error
    data = mcp.error(refused)
    assert data["category"] == "invalid_request" and data["charged"] == "no"
    assert "teapot-1" in data["message"] and "different request" in data["message"]
    assert len(sandbox.state.requests("generations")) == 1


@pytest.mark.parametrize("restart", [False, True], ids=["same-server", "after-restart"])
async def test_after_a_server_error_on_submit_the_retry_is_sent_once_under_the_same_idempotency_key(
    restart: bool, server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 500)
    arguments: dict[str, Any] = {"prompt": "a castle" + INSTANT}
    async with connect(server_for()) as mcp:
        failed = await mcp.call("generate_image", arguments)
        if not restart:
            retried = await mcp.call(
                "generate_image", {**arguments, "client_request_id": mcp.error(failed)["client_request_id"]}
            )
    if restart:
        async with connect(server_for()) as mcp:
            retried = await mcp.call(
                "generate_image", {**arguments, "client_request_id": mcp.error(failed)["client_request_id"]}
            )

    assert failed.is_error
    key = mcp.error(failed)["client_request_id"]
    assert mcp.error(failed)["charged"] == "unknown" and key in mcp.text(failed)
    assert not retried.is_error, mcp.text(retried)
    posts = sandbox.state.requests("generations")
    assert [p.header("idempotency-key") for p in posts] == [key, key]
    assert mcp.data(retried)["task_id"] == posts[1].task_id
    assert any("same idempotency key" in w for w in mcp.data(retried)["warnings"])
    assert "same idempotency key" in mcp.text(retried)


async def test_a_submission_whose_answer_was_lost_after_creation_is_resent_once_and_then_never_again(
    mcp: Any, sandbox: SandboxServer, state_dir: Path
) -> None:
    sandbox.state.drop_next("generations", when="after")
    arguments = {"prompt": "a castle" + INSTANT, "client_request_id": "castle-7"}

    lost = await mcp.call("generate_image", arguments)
    lost_row = (await anyio.to_thread.run_sync(journal_rows, state_dir))[0]
    retried = await mcp.call("generate_image", arguments)
    again = await mcp.call("generate_image", arguments)

    assert lost.is_error
    assert mcp.error(lost)["charged"] == "unknown" and mcp.error(lost)["client_request_id"] == "castle-7"
    assert "Charged: unknown" in mcp.text(lost) and "client_request_id='castle-7'" in mcp.text(lost)
    assert (lost_row["request_key"], lost_row["state"], lost_row["task_id"]) == ("castle-7", "unknown", None)
    posts = sandbox.state.requests("generations")
    assert len(posts) == 2 and {p.header("idempotency-key") for p in posts} == {"castle-7"}
    assert posts[0].dropped == "after" and posts[0].task_id is not None  # the first did create a task upstream
    assert not retried.is_error and mcp.data(retried)["task_id"] == posts[1].task_id
    assert any("same idempotency key" in w for w in mcp.data(retried)["warnings"])
    assert mcp.data(again)["task_id"] == posts[1].task_id and "nothing new was sent" in mcp.text(again)
