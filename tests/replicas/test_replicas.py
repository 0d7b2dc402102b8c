"""Replicas sharing one PostgreSQL journal, one output folder and one sandbox, as real processes on 127.0.0.1:
any replica answers any request, exactly one follows a task, a killed one's tasks are adopted."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp_types import CallToolResult, TextContent
from replica_support import Deployment, session, wait_for

from process_support import INITIALIZE, MCP_HEADERS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def saved_images(output_dir: Path, task_id: str) -> list[Path]:
    return sorted(p for p in output_dir.iterdir() if task_id in p.name and p.suffix == ".png")


async def test_a_task_submitted_on_one_replica_is_checked_on_another_in_one_client_session(
    deployment: Deployment,
) -> None:
    a, b = deployment.start_replica("a"), deployment.start_replica("b")

    async with session(a, b) as client:  # initialize on A, then every request on the other replica in turn
        submitted = await client.call_tool("generate_image", {"prompt": "a lighthouse", "wait_seconds": 0})
        assert not submitted.is_error, text_of(submitted)
        task_id = submitted.structured_content["task_id"]
        checked = await client.call_tool("check_task", {"task_id": task_id, "wait_seconds": 30})
        listed = await client.call_tool("list_tasks", {})
        uri = checked.structured_content["images"][0]["resource_uri"]
        served = [await client.read_resource(uri) for _ in range(2)]  # once by each replica

    assert not checked.is_error, text_of(checked)
    assert checked.structured_content["status"] == "completed"
    [image] = checked.structured_content["images"]
    assert Path(image["path"]).parent == deployment.output_dir
    assert task_id in text_of(listed)
    png = await anyio.Path(image["path"]).read_bytes()
    assert [base64.b64decode(r.contents[0].blob) for r in served] == [png, png]
    assert len([line for line in deployment.created_tasks() if task_id in line]) == 1


async def test_progress_streams_within_a_call_on_a_replica_without_sessions(deployment: Deployment) -> None:
    a, b = deployment.start_replica("a"), deployment.start_replica("b")
    updates: list[str | None] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with session(a, b) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a harbour [sandbox:duration=1.5]"}, progress_callback=progress
        )

    assert not result.is_error, text_of(result)
    assert len(updates) >= 2, updates
    assert updates[-1] and "completed" in updates[-1]
    # Scanned every 0.3 s meanwhile, the task was never adopted: the replica waiting on it held it throughout.
    assert "adopting 1" not in a.log_text() + b.log_text()


async def test_a_replica_killed_mid_wait_leaves_its_task_to_another_which_saves_the_images_once(
    deployment: Deployment,
) -> None:
    a, b = deployment.start_replica("a"), deployment.start_replica("b")
    task_ids: list[str] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        if message and not task_ids:
            task_ids.extend(word.strip(".,:()") for word in message.split() if word.startswith("task-"))

    async def wait_on_a() -> None:
        async with session(a) as client:
            await client.call_tool(
                "generate_image", {"prompt": "a storm [sandbox:duration=4]"}, progress_callback=progress
            )

    with pytest.raises(BaseException):  # noqa: B017  (the client's connection dies with A, however it says so)
        async with anyio.create_task_group() as group:
            group.start_soon(wait_on_a)
            await wait_for("a progress message naming the task", lambda: bool(task_ids))
            a.kill()
    [task_id] = task_ids

    await wait_for(f"{task_id} saved by B", lambda: bool(saved_images(deployment.output_dir, task_id)))
    assert "adopting 1 unfinished task(s)" in b.log_text()
    async with session(b) as client:
        checked = await client.call_tool("check_task", {"task_id": task_id})

    assert checked.structured_content["status"] == "completed"
    assert len(saved_images(deployment.output_dir, task_id)) == 1
    assert len([line for line in deployment.created_tasks() if task_id in line]) == 1


async def test_the_same_client_request_id_sent_to_two_replicas_at_once_creates_one_task(
    deployment: Deployment,
) -> None:
    a, b = deployment.start_replica("a"), deployment.start_replica("b")
    before = len(deployment.generation_posts())
    results: dict[str, CallToolResult] = {}

    async def generate(replica_name: str) -> None:
        replica = a if replica_name == "a" else b
        async with session(replica) as client:
            results[replica_name] = await client.call_tool(
                "generate_image", {"prompt": "a mill", "client_request_id": "one-mill", "wait_seconds": 0}
            )

    async with anyio.create_task_group() as group:
        group.start_soon(generate, "a")
        group.start_soon(generate, "b")

    task_ids = {name: r.structured_content["task_id"] for name, r in results.items()}
    assert task_ids["a"] == task_ids["b"], {name: text_of(r) for name, r in results.items()}
    # One replica sends the POST; the other waits for its task. Not two POSTs that only the Idempotency-Key keeps
    # from being two paid tasks: Evolink's docs do not promise to honour it.
    posts = deployment.generation_posts()[before:]
    assert len(posts) == 1 and task_ids["a"] in posts[0], posts


async def test_without_stateless_mode_another_replica_does_not_know_the_session(deployment: Deployment) -> None:
    a, b = deployment.start_replica("a", EVOLINK_MCP_STATELESS="0"), deployment.start_replica("b")

    async with httpx2.AsyncClient(headers={"Authorization": "Bearer replicas-token-8d2f6b1a9c4e"}) as http:
        answers = {
            replica.name: await http.post(f"{replica.base_url}/mcp", headers=MCP_HEADERS, json=INITIALIZE)
            for replica in (a, b)
        }

    assert answers["a"].headers.get("mcp-session-id")  # a session only A knows
    assert "mcp-session-id" not in answers["b"].headers  # B: stateless (its journal is PostgreSQL), nothing to stick to
