"""The price before a credit is spent: estimate_cost, check_balance, and the spending cap judged by the published
price from the first request, asking the user (MCP elicitation) where the client can be asked."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.tools import Deps
from mcp_session import INSTANT, Connect, ServerFor, Session

pytestmark = pytest.mark.anyio


KREA_2K = {"prompt": "a lighthouse" + INSTANT, "model": "krea-2-turbo", "quality": "2K"}  # published: 1.8 credits


class User:
    """An elicitation callback that answers as a user would, and remembers what it was asked."""

    def __init__(self, action: str, spend: bool = True) -> None:
        self.action, self.spend = action, spend
        self.asked: list[types.ElicitRequestParams] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        content = {"spend": self.spend} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


# -- estimate_cost -------------------------------------------------------------------------------------


async def test_estimate_cost_prices_a_request_from_the_published_price_and_sends_nothing_paid(
    mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=100)

    estimated = await mcp.call("estimate_cost", {"prompt": "a fox", "model": "doubao-seedream-4.5", "n": 2})

    assert not estimated.is_error, mcp.text(estimated)
    data = mcp.data(estimated)
    assert (data["model"], data["credits"], data["per_image"], data["images"]) == ("doubao-seedream-4.5", 4.5, 2.25, 2)
    assert data["source"].startswith("https://evolink.ai/seedream-4-5") and data["checked"] == "2026-12-05"
    assert data["balance"]["credits_left"] == 100 and data["balance_covers"] is True
    assert "about 4.5 credits" in mcp.text(estimated) and "Nothing was sent or charged" in mcp.text(estimated)
    assert not sandbox.state.requests("generations") and len(sandbox.state.requests("credits")) == 1


async def test_estimate_cost_of_a_model_without_a_published_price_says_unknown_not_a_guess(
    mcp: Session, sandbox: SandboxServer
) -> None:
    estimated = await mcp.call("estimate_cost", {"prompt": "a fox", "quality": "4K"})

    data = mcp.data(estimated)
    assert not estimated.is_error and "credits" not in data and "balance_covers" not in data
    assert data["basis"] == "no published price for gemini-3.1-flash-image-preview"
    assert "no estimate" in mcp.text(estimated) and not sandbox.state.requests("generations")


async def test_estimate_cost_says_when_the_balance_does_not_cover_it(mcp: Session, sandbox: SandboxServer) -> None:
    sandbox.state.configure(balance=1)

    data = mcp.data(await mcp.call("estimate_cost", KREA_2K))

    assert data["balance_covers"] is False and "evolink.ai/dashboard/billing" in data["next_step"]


async def test_estimate_cost_says_when_the_cap_would_refuse_it(mcp: Session) -> None:
    data = mcp.data(await mcp.call("estimate_cost", {**KREA_2K, "max_credits": 1}))

    assert (data["cap"], data["within_cap"]) == (1, False)


async def test_estimate_cost_refuses_an_invalid_request_as_generate_image_would(
    mcp: Session, sandbox: SandboxServer
) -> None:
    refused = await mcp.call("estimate_cost", {**KREA_2K, "quality": "8K"})

    assert refused.is_error and mcp.error(refused)["category"] == "invalid_request"
    assert not sandbox.state.requests()


# -- the spending cap from the first request ---------------------------------------------------------


async def test_the_first_request_of_a_model_over_the_cap_is_refused_unsent_with_the_figure_and_the_cap(
    mcp: Session, sandbox: SandboxServer
) -> None:
    refused = await mcp.call("generate_image", {**KREA_2K, "max_credits": 1})

    error = mcp.error(refused)
    assert (error["category"], error["charged"], error["retryable"]) == ("spending_cap", "no", False)
    assert "about 1.8 credits" in error["message"] and "over the cap of 1" in error["message"]
    assert "published price of krea-2-turbo" in error["message"]
    assert not sandbox.state.requests("generations")


async def test_within_the_cap_a_client_with_elicitation_is_not_asked(
    server: MCPServer[Deps], connect: Connect, sandbox: SandboxServer
) -> None:
    user = User("decline")
    async with connect(server, elicitation_callback=user) as mcp:
        ran = await mcp.call("generate_image", {**KREA_2K, "max_credits": 2})

    assert not ran.is_error and not user.asked and len(sandbox.state.requests("generations")) == 1


async def test_a_request_within_the_cap_by_its_published_price_is_sent(mcp: Session, sandbox: SandboxServer) -> None:
    ran = await mcp.call("generate_image", {**KREA_2K, "max_credits": 2})

    assert not ran.is_error and mcp.data(ran)["credits_reserved"] == 1.8
    assert len(sandbox.state.requests("generations")) == 1


# Asked as the protocol in use asks: a later round of the call (2026-07-28), or a request mid-call (legacy).
PROTOCOLS = [pytest.param({}, id="input-required"), pytest.param({"mode": "legacy"}, id="legacy")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_over_the_cap_a_client_with_elicitation_asks_the_user_and_accepted_it_is_sent(
    protocol: dict[str, str], server: MCPServer[Deps], connect: Connect, sandbox: SandboxServer
) -> None:
    agreed = User("accept")
    async with connect(server, elicitation_callback=agreed, **protocol) as mcp:
        ran = await mcp.call("generate_image", {**KREA_2K, "max_credits": 1})

    assert not ran.is_error, mcp.text(ran)
    assert mcp.data(ran)["status"] == "completed" and mcp.data(ran)["credits_reserved"] == 1.8
    assert not [w for w in mcp.data(ran).get("warnings", []) if "cap" in w]  # agreed: no after-the-fact warning
    [asked] = agreed.asked
    assert "1.8 credits" in asked.message and "spending cap of 1 credits" in asked.message
    assert len(sandbox.state.requests("generations")) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("answer", [("decline", True), ("cancel", True), ("accept", False)])
async def test_over_the_cap_a_user_who_does_not_agree_gets_the_refusal_and_nothing_is_sent(
    answer: tuple[str, bool],
    protocol: dict[str, str],
    server: MCPServer[Deps],
    connect: Connect,
    sandbox: SandboxServer,
) -> None:
    user = User(*answer)
    async with connect(server, elicitation_callback=user, **protocol) as mcp:
        refused = await mcp.call("generate_image", {**KREA_2K, "max_credits": 1})

    error = mcp.error(refused)
    assert (error["category"], error["charged"]) == ("spending_cap", "no")
    assert "1.8" in error["message"] and "did not agree" in error["message"]
    assert len(user.asked) == 1 and not sandbox.state.requests("generations")


# -- check_balance --------------------------------------------------------------------------------------


async def test_check_balance_shows_the_credits_left_and_what_the_generations_reserved(
    mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=20)
    await mcp.call("generate_image", KREA_2K)

    balance = await mcp.call("check_balance")

    assert not balance.is_error
    assert mcp.data(balance) == {
        "credits_left": 18.2,
        "credits_used": 1.8,
        "key_limited": False,
        "key_credits_used": 1.8,
    }
    assert "18.2 credits left (1.8 used)" in mcp.text(balance)


async def test_check_balance_with_a_rejected_key_is_an_authentication_error(
    mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(api_key="another-key")

    refused = await mcp.call("check_balance")

    assert refused.is_error and mcp.error(refused)["category"] == "authentication"


@pytest.mark.parametrize(("needed", "covers"), [(5, True), (50, False)])
async def test_check_balance_says_whether_it_covers_what_is_about_to_be_spent(
    needed: float, covers: bool, mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=20)

    balance = await mcp.call("check_balance", {"needed": needed})

    assert mcp.data(balance)["covers"] is covers
    assert ("evolink.ai/dashboard/billing" in mcp.text(balance)) is not covers


async def test_estimate_cost_without_a_readable_balance_still_prices_the_request(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    async with connect(server_for(api_key=None)) as mcp:
        estimated = await mcp.call("estimate_cost", KREA_2K)

    data = mcp.data(estimated)
    assert not estimated.is_error and data["credits"] == 1.8 and "balance" not in data
    assert any("balance could not be read" in w for w in data["warnings"]) and not sandbox.state.requests()


async def test_what_earlier_tasks_reserved_over_the_published_price_is_the_estimate(
    mcp: Session, sandbox: SandboxServer
) -> None:
    # The service reserved more than the page said (a price gone up since it was read): believe the service.
    reserved_more = {
        "id": "task-unified-1757165031-pricedup",
        "model": "krea-2-turbo",
        "object": "image.generation.task",
        "status": "failed",
        "error": {"code": "invalid_parameters", "message": "refused after pricing"},
        "usage": {"billing_rule": "per_call", "credits_reserved": 5.0, "user_group": "default"},
    }
    sandbox.state.fail_next("generations", 200, body=reserved_more)
    await mcp.call("generate_image", KREA_2K)

    estimated = mcp.data(await mcp.call("estimate_cost", KREA_2K))
    refused = await mcp.call("generate_image", {**KREA_2K, "max_credits": 3})  # the published 1.8 is within it

    assert estimated["credits"] == 5 and "reserved 5, more than its published price (1.8)" in estimated["basis"]
    assert mcp.error(refused)["category"] == "spending_cap" and "about 5 credits" in mcp.error(refused)["message"]
    assert len(sandbox.state.requests("generations")) == 1
