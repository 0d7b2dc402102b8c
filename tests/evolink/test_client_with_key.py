"""EvolinkClient.with_key: a caller's own key on the process's connections, blanked out of what comes back."""

from __future__ import annotations

import pytest
from client_support import client_for, generation

from evolink_mcp.evolink import AuthenticationError, EvolinkClient
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

CALLER_KEY = "sk-caller-OWN-KEY-5e6f7a8b9c0d"


async def test_a_client_with_a_callers_key_sends_that_key_and_blanks_it_from_an_echo(sandbox: SandboxServer) -> None:
    echo = {"error": {"code": 401, "message": f"Key {CALLER_KEY} is not valid", "type": "authentication_error"}}
    sandbox.state.fail_next("tasks", 401, body=echo)
    async with client_for(sandbox.base_url) as process_client:
        caller: EvolinkClient = process_client.with_key(CALLER_KEY)
        task = await caller.submit_generation(generation())
        with pytest.raises(AuthenticationError) as caught:
            await caller.get_task(task.id)
        await caller.aclose()  # the caller's client goes; the process's connections stay
        await process_client.get_quota()

    assert CALLER_KEY not in str(caught.value) and "[redacted]" in str(caught.value)
    (posted,) = sandbox.state.requests("generations")
    assert posted.task_id == task.id
    # Each key is its own account upstream: the process's key does not find the caller's task.
    async with client_for(sandbox.base_url) as process_client:
        with pytest.raises(Exception, match="not found"):
            await process_client.get_task(task.id)
