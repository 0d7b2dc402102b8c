"""The sandbox's account: GET /v1/credits as documented, a balance each submission reserves its price from, and
prices that agree with the catalog's published ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from evolink_mcp.catalog import GenerationRequest, estimate_credits, load_catalog
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-test-key"}


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=AUTH, timeout=20) as client:
        yield client


async def submit(api: httpx2.AsyncClient, **body: Any) -> httpx2.Response:
    return await api.post("/v1/images/generations", json={"model": "krea-2-turbo", "prompt": "a fox", **body})


async def test_credits_answers_the_documented_shape_with_the_configured_balance(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=12.5)

    response = await api.get("/v1/credits")

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "token": {"remaining_credits": 12.5, "unlimited_credits": True, "used_credits": 0.0},
            "user": {"remaining_credits": 12.5, "used_credits": 0.0},
        },
        "message": "",
        "success": True,
    }


async def test_each_submission_reserves_its_price_from_the_balance(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=10)

    first = (await submit(api, quality="2K")).json()
    again = await submit(api, quality="2K")  # a second, separate task
    user = (await api.get("/v1/credits")).json()["data"]["user"]

    assert first["usage"]["credits_reserved"] == 1.8 and again.status_code == 200
    assert user == {"remaining_credits": pytest.approx(10 - 3.6), "used_credits": pytest.approx(3.6)}


async def test_a_submission_the_balance_does_not_cover_is_refused_with_402_and_creates_nothing(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(balance=1)

    refused = await submit(api, quality="2K")

    assert refused.status_code == 402
    assert refused.json()["error"]["type"] == "insufficient_quota_error"
    assert "1.8" in refused.json()["error"]["message"] and not sandbox.state.tasks
    assert (await api.get("/v1/credits")).json()["data"]["user"]["remaining_credits"] == 1


async def test_the_same_idempotency_key_reserves_once(api: httpx2.AsyncClient, sandbox: SandboxServer) -> None:
    sandbox.state.configure(balance=10)
    key = {"Idempotency-Key": "one-request"}

    for _ in range(2):
        await api.post("/v1/images/generations", json={"model": "krea-2-turbo", "prompt": "a fox"}, headers=key)

    assert (await api.get("/v1/credits")).json()["data"]["user"]["used_credits"] == pytest.approx(0.45)


async def test_credits_need_the_api_key(sandbox: SandboxServer) -> None:
    async with httpx2.AsyncClient(base_url=sandbox.base_url) as anonymous:
        response = await anonymous.get("/v1/credits")

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"model": "krea-2-turbo", "quality": "2K"},
        {"model": "doubao-seedream-4.5", "n": 2},
        {"model": "doubao-seedream-5.0-lite"},
        {"model": "gpt-image-2-beta", "size": "auto"},
    ],
)
async def test_the_sandbox_reserves_the_catalogs_published_price(api: httpx2.AsyncClient, body: dict[str, Any]) -> None:
    spec = load_catalog().get(body["model"])
    assert spec is not None
    fields = {k: v for k, v in body.items() if k != "model"}
    published = estimate_credits(spec, GenerationRequest(prompt="a fox", **fields)).credits

    created = (await submit(api, **body)).json()

    assert published is not None and created["usage"]["credits_reserved"] == pytest.approx(published)
