"""The retry policy, proven by the requests the sandbox saw: what is retried, what never is, and how long."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import math
import socket
import time
from pathlib import Path

import anyio
import pytest
from client_support import client_for, generation

from evolink_mcp.evolink import (
    APIConnectionError,
    APITimeoutError,
    EvolinkClient,
    InsufficientCreditsError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
    SubmissionOutcomeUnknownError,
    Timeouts,
)
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio


def gaps(sandbox: SandboxServer, endpoint: str) -> list[float]:
    """Seconds between consecutive requests to `endpoint`, as the sandbox saw them arrive."""
    times = [entry.time for entry in sandbox.state.requests(endpoint)]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# -- rate limits and Retry-After ---------------------------------------------------------------------


async def test_a_rate_limited_poll_is_retried_after_the_retry_after_seconds(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    task = await client.submit_generation(generation())
    sandbox.state.fail_next("tasks", 429, retry_after=1)

    polled = await client.get_task(task.id)

    assert polled.id == task.id
    assert [e.status for e in sandbox.state.requests("tasks")] == [429, 200]
    # The backoff alone would be at most 0.05 s: only the header explains a one-second wait.
    [gap] = gaps(sandbox, "tasks")
    assert 0.95 <= gap < 2.0


async def test_a_retry_after_given_as_an_http_date_is_honoured(client: EvolinkClient, sandbox: SandboxServer) -> None:
    task = await client.submit_generation(generation())
    # HTTP dates have whole seconds: two seconds past the current second is 1-2 s away.
    moment = math.floor(time.time()) + 2
    sandbox.state.fail_next("tasks", 429, retry_after=email.utils.formatdate(moment, usegmt=True))

    await client.get_task(task.id)

    first, second = sandbox.state.requests("tasks")
    assert (first.status, second.status) == (429, 200)
    assert second.time >= moment - 0.05
    assert second.time - first.time < 2.5


async def test_a_rate_limited_submission_is_retried_once_the_wait_is_over_and_creates_one_task(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 429, retry_after="0")

    task = await client.submit_generation(generation())

    assert [e.status for e in sandbox.state.requests("generations")] == [429, 200]
    assert list(sandbox.state.tasks) == [task.id]


async def test_a_retry_after_longer_than_the_policy_allows_is_reported_at_once_not_slept_through(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("tasks", 429, retry_after=3600)

    with anyio.fail_after(2), pytest.raises(RateLimitError) as caught:
        await client.get_task("task-unified-1-abcdefgh")

    assert caught.value.retry_after == 3600
    assert "retry after 3600 seconds" in (caught.value.suggestion or "")
    assert len(sandbox.state.requests("tasks")) == 1


async def test_persistent_rate_limiting_gives_up_after_max_attempts(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 429, count=10)

    with pytest.raises(RateLimitError) as caught:
        await client.submit_generation(generation())

    assert caught.value.charged == "no"
    assert len(sandbox.state.requests("generations")) == client.retry.max_attempts == 3
    assert sandbox.state.tasks == {}


# -- submissions: never paid twice -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502])
async def test_a_server_error_on_submit_is_not_retried_and_its_outcome_is_unknown(
    client: EvolinkClient, sandbox: SandboxServer, status: int
) -> None:
    sandbox.state.fail_next("generations", status, count=3)

    with pytest.raises(SubmissionOutcomeUnknownError) as caught:
        await client.submit_generation(generation())

    error = caught.value
    assert error.charged == "unknown" and not error.retryable
    assert getattr(error.__cause__, "status", None) == status
    [entry] = sandbox.state.requests("generations")
    assert entry.header("idempotency-key") == error.idempotency_key
    assert error.request_id == entry.request_id


async def test_a_connection_dropped_after_the_task_was_created_is_not_retried_and_its_outcome_is_unknown(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.drop_next("generations", when="after")

    with pytest.raises(SubmissionOutcomeUnknownError) as caught:
        await client.submit_generation(generation(), idempotency_key="my-request-7")

    assert caught.value.charged == "unknown"
    assert caught.value.idempotency_key == "my-request-7"
    assert isinstance(caught.value.__cause__, APIConnectionError) and caught.value.__cause__.sent
    [entry] = sandbox.state.requests("generations")
    assert entry.dropped == "after" and entry.status == 200
    assert list(sandbox.state.tasks) == [entry.task_id]  # the task exists, and is paid for


async def test_a_connection_dropped_before_a_submission_was_processed_is_not_retried_either(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    # From the client's side this looks like the drop above: the request went out, no answer came back.
    sandbox.state.drop_next("generations", when="before")

    with pytest.raises(SubmissionOutcomeUnknownError):
        await client.submit_generation(generation())

    assert len(sandbox.state.requests("generations")) == 1
    assert sandbox.state.tasks == {}


async def test_insufficient_credits_on_submit_is_not_retried(client: EvolinkClient, sandbox: SandboxServer) -> None:
    sandbox.state.fail_next("generations", 402, count=3)

    with pytest.raises(InsufficientCreditsError) as caught:
        await client.submit_generation(generation())

    assert caught.value.charged == "no" and not caught.value.retryable
    assert len(sandbox.state.requests("generations")) == 1


async def test_a_503_on_submit_is_retried_because_no_task_was_created(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 503)

    task = await client.submit_generation(generation())

    assert [e.status for e in sandbox.state.requests("generations")] == [503, 200]
    assert list(sandbox.state.tasks) == [task.id]


async def test_a_persistent_503_on_submit_gives_up_with_nothing_charged(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 503, count=10)

    with pytest.raises(ServiceUnavailableError) as caught:
        await client.submit_generation(generation())

    assert caught.value.charged == "no"
    assert len(sandbox.state.requests("generations")) == 3


async def test_every_attempt_of_one_submission_carries_the_same_idempotency_key(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 429, retry_after="0")
    sandbox.state.fail_next("generations", 503)

    await client.submit_generation(generation("first"))
    await client.submit_generation(generation("second"))
    await client.submit_generation(generation("third"), idempotency_key="chosen-by-the-caller")

    keys = [e.header("idempotency-key") for e in sandbox.state.requests("generations")]
    assert [e.status for e in sandbox.state.requests("generations")] == [429, 503, 200, 200, 200]
    assert keys[0] == keys[1] == keys[2]
    assert len({keys[0], keys[3], keys[4]}) == 3 and all(keys)
    assert keys[4] == "chosen-by-the-caller"


# -- polls and other idempotent calls ------------------------------------------------------------------


async def test_a_poll_whose_connection_dropped_before_processing_is_retried(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    task = await client.submit_generation(generation())
    sandbox.state.drop_next("tasks", when="before")

    polled = await client.get_task(task.id)

    assert polled.id == task.id
    assert [(e.dropped, e.status) for e in sandbox.state.requests("tasks")] == [("before", None), (None, 200)]


async def test_a_poll_whose_answer_was_lost_is_retried(client: EvolinkClient, sandbox: SandboxServer) -> None:
    task = await client.submit_generation(generation())
    sandbox.state.drop_next("tasks", when="after")

    await client.get_task(task.id)

    assert [e.dropped for e in sandbox.state.requests("tasks")] == ["after", None]


async def test_a_poll_answered_500_is_retried_up_to_max_attempts(client: EvolinkClient, sandbox: SandboxServer) -> None:
    sandbox.state.fail_next("tasks", 500, count=10)

    with pytest.raises(InternalServerError):
        await client.get_task("task-unified-1-abcdefgh")

    assert len(sandbox.state.requests("tasks")) == 3


async def test_listing_files_is_retried_after_a_server_error(client: EvolinkClient, sandbox: SandboxServer) -> None:
    sandbox.state.fail_next("files/list", 500)

    await client.list_files()

    assert [e.status for e in sandbox.state.requests("files/list")] == [500, 200]


async def test_an_upload_answered_500_is_not_retried_because_it_may_have_been_stored(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("files/upload/base64", 500, count=3)

    with pytest.raises(InternalServerError):
        await client.upload_base64("iVBORw0KGgo=")

    assert len(sandbox.state.requests("files/upload/base64")) == 1


# -- nobody there -------------------------------------------------------------------------------------


async def test_a_submission_to_a_closed_port_fails_fast_and_is_known_not_sent(closed_port: int) -> None:
    async with client_for(f"http://127.0.0.1:{closed_port}") as client:
        with anyio.fail_after(5), pytest.raises(APIConnectionError) as caught:
            await client.submit_generation(generation())

    assert type(caught.value) is APIConnectionError  # not outcome-unknown: nothing reached a server
    assert caught.value.sent is False
    assert caught.value.charged == "no"
    assert "127.0.0.1" in caught.value.message


async def test_an_unreachable_upstream_fails_well_under_30_seconds_with_the_default_policy(
    closed_port: int,
) -> None:
    base_url = f"http://127.0.0.1:{closed_port}"
    async with EvolinkClient("sk-x", base_url=base_url, files_base_url=base_url) as client:
        assert (client.retry, client.timeouts) == (RetryPolicy(), Timeouts())
        started = time.monotonic()
        with anyio.fail_after(10), pytest.raises(APIConnectionError) as poll:
            await client.get_task("task-unified-1-abcdefgh")
        with anyio.fail_after(10), pytest.raises(APIConnectionError) as submit:
            await client.submit_generation(generation())
        elapsed = time.monotonic() - started

    assert poll.value.sent is False and submit.value.sent is False
    assert elapsed < 10


# -- nobody answering ---------------------------------------------------------------------------------


async def test_a_poll_with_no_answer_in_time_is_retried_then_reported_as_a_timeout(sandbox: SandboxServer) -> None:
    sandbox.state.add_latency("tasks", 2000)
    async with client_for(sandbox.base_url, timeouts=Timeouts(read=0.2)) as client:
        with anyio.fail_after(5), pytest.raises(APITimeoutError) as caught:
            await client.get_task("task-unified-1-abcdefgh")

    assert caught.value.sent is True
    assert "no answer in time" in caught.value.message
    assert len(sandbox.state.requests("tasks")) == 3


async def test_an_upload_the_server_stops_reading_fails_after_the_write_timeout_and_is_not_retried(
    tmp_path: Path,
) -> None:
    """aiohttp has no write timeout of its own: upload_file gives up when no chunk goes out for `write` s."""
    connections: list[asyncio.StreamWriter] = []

    async def accept_and_never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited: the stall comes within a few MB
    listener.bind(("127.0.0.1", 0))
    source = tmp_path / "big.png"
    with source.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # a hole: no disk
    server = await asyncio.start_server(accept_and_never_read, sock=listener)
    async with server:
        base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with client_for(base_url, timeouts=Timeouts(write=0.3)) as client:
            started = time.monotonic()
            with anyio.fail_after(10), pytest.raises(APITimeoutError) as caught:
                await client.upload_file(source, mime_type="image/png")
            elapsed = time.monotonic() - started
        for writer in connections:
            writer.close()

    assert caught.value.sent is True  # part of the file went out: an upload is never sent twice then
    assert len(connections) == 1
    assert elapsed < 5


async def test_an_upload_fully_sent_waits_for_its_answer_beyond_the_write_timeout(tmp_path: Path) -> None:
    """The write timeout watches only the sending: an answer slower than it, once every byte is out, is awaited."""
    answered = {"code": 200, "data": {"file_id": "f-1", "file_url": "http://127.0.0.1/f-1.png"}}
    write_timeout = 0.2

    async def read_all_then_answer_late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        await asyncio.sleep(write_timeout * 3)  # every byte received; the answer comes after the write timeout
        body = json.dumps(answered).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    source = tmp_path / "small.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200_000))
    server = await asyncio.start_server(read_all_then_answer_late, "127.0.0.1", 0)
    async with server:
        base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with client_for(base_url, timeouts=Timeouts(write=write_timeout)) as client:
            with anyio.fail_after(10):
                uploaded = await client.upload_file(source, mime_type="image/png")

    assert uploaded.file_id == "f-1"
