"""Spending guards: a cap per call (argument or EVOLINK_MAX_CREDITS_PER_CALL), judged by what the journal saw."""

from __future__ import annotations

from typing import Any

import pytest

from evolink_mcp.sandbox import SandboxServer
from mcp_session import INSTANT, Connect, ServerFor

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("cap_from", ["max_credits", "EVOLINK_MAX_CREDITS_PER_CALL"])
async def test_a_request_over_the_cap_is_refused_unsent_when_an_earlier_request_of_its_tier_set_the_price(
    cap_from: str, server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    arguments: dict[str, Any] = {"prompt": "a glacier" + INSTANT, "quality": "4K"}
    async with connect(server_for()) as mcp:
        priced = await mcp.call("generate_image", arguments)
    price = mcp.data(priced)["credits_reserved"]
    cap = price / 2

    if cap_from == "max_credits":
        async with connect(server_for()) as mcp:  # the price is remembered across a restart
            refused = await mcp.call("generate_image", {**arguments, "max_credits": cap})
    else:
        async with connect(server_for(max_credits_per_call=cap)) as mcp:
            refused = await mcp.call("generate_image", arguments)

    assert refused.is_error
    data = mcp.error(refused)
    assert (data["category"], data["charged"], data["retryable"]) == ("spending_cap", "no", False)
    assert f"{price:g}" in data["message"] and f"{cap:g}" in data["message"]
    assert "max_credits" in data["next_step"] and "Charged: no" in mcp.text(refused)
    assert len(sandbox.state.requests("generations")) == 1


async def test_the_estimate_scales_with_the_number_of_images(mcp: Any, sandbox: SandboxServer) -> None:
    base = {"prompt": "a tulip" + INSTANT, "model": "doubao-seedream-4.0", "quality": "2K"}
    one = await mcp.call("generate_image", {**base, "n": 1})
    price = mcp.data(one)["credits_reserved"]
    cap = price * 2

    three = await mcp.call("generate_image", {**base, "n": 3, "max_credits": cap})
    two = await mcp.call("generate_image", {**base, "n": 2, "max_credits": cap})

    assert three.is_error and mcp.error(three)["category"] == "spending_cap"
    assert f"{price * 3:g}" in mcp.error(three)["message"]
    assert not two.is_error, mcp.text(two)
    assert not [w for w in mcp.data(two).get("warnings", []) if "cap" in w]
    assert len(sandbox.state.requests("generations")) == 2


async def test_without_an_estimate_the_task_runs_and_the_result_warns_that_it_reserved_more_than_the_cap(
    mcp: Any, sandbox: SandboxServer
) -> None:
    arguments = {"prompt": "a dune" + INSTANT, "quality": "1K", "max_credits": 0.01}

    ran = await mcp.call("generate_image", arguments)
    refused = await mcp.call("generate_image", arguments)  # now the journal knows the price

    assert not ran.is_error and mcp.data(ran)["status"] == "completed"
    reserved = mcp.data(ran)["credits_reserved"]
    (warning,) = [w for w in mcp.data(ran)["warnings"] if "cap" in w]
    assert f"reserved {reserved:g} credits, over your cap of 0.01" in warning
    assert warning in mcp.text(ran)
    assert refused.is_error and mcp.error(refused)["category"] == "spending_cap"
    assert len(sandbox.state.requests("generations")) == 1


async def test_the_price_of_another_tier_is_no_estimate_and_refuses_nothing(mcp: Any, sandbox: SandboxServer) -> None:
    priced = await mcp.call("generate_image", {"prompt": "a glacier" + INSTANT, "quality": "4K"})
    cap = mcp.data(priced)["credits_reserved"] / 2  # below the 4K price

    other_tier = await mcp.call(
        "generate_image", {"prompt": "a glacier" + INSTANT, "quality": "1K", "max_credits": cap}
    )

    assert not other_tier.is_error, mcp.text(other_tier)
    assert len(sandbox.state.requests("generations")) == 2
