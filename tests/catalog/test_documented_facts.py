"""Issue 14, section 1: each fact of the API documents this project was built from, held by a test named after it.

The documents (../shared/evolink-api.md, evolink-image-models.json and the docs pages they summarise) are
authoritative; where newer docs give a wider limit, both are accepted: above the documented figure a warning,
above the newer one a refusal. The sandbox is driven over real loopback HTTP, as a client would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest

from evolink_mcp.catalog import (
    GenerationRequest,
    ModelSpec,
    build_body,
    errors_only,
    load_catalog,
    reference_size_problems,
    resolve_model,
    validate_request,
)
from evolink_mcp.evolink import (
    AuthenticationError,
    EvolinkClient,
    InsufficientCreditsError,
    ModelUnavailableError,
    RetryPolicy,
    task_failure_advice,
)
from evolink_mcp.evolink.errors import error_class_for
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

CATALOG = load_catalog()
AUTH = {"Authorization": "Bearer sk-test-key"}
MB = 1024 * 1024
QUICK_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
TASK_ID = "task-unified-1757165031-uyujaw3d"


def client_for(sandbox: SandboxServer, key: str = "sk-test-key") -> EvolinkClient:
    return EvolinkClient(key, base_url=sandbox.base_url, files_base_url=sandbox.base_url, retry=QUICK_RETRIES)


def spec_of(model_id: str) -> ModelSpec:
    spec = CATALOG.get(model_id)
    assert spec is not None and spec.id == model_id
    return spec


def problems_of(model_id: str, **request: Any) -> list[tuple[str, str]]:
    problems = validate_request(spec_of(model_id), GenerationRequest(**request))
    return [(p.param, p.severity) for p in problems]


@pytest.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=sandbox.base_url, headers=AUTH, timeout=20) as client:
        yield client


async def submit(api: httpx2.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1/images/generations", json={"prompt": "a fox", **body})
    assert response.status_code == 200, response.text
    return response.json()


# --- nano-banana-2-lite ---------------------------------------------------------------------------


def test_nano_banana_2_lite_is_its_own_model_id_with_1k_2k_4k_quality() -> None:
    lite = spec_of("nano-banana-2-lite")

    assert lite.aliases == [] and "nano-banana-2-lite" not in spec_of("gemini-3.1-flash-lite-image").aliases
    assert lite.quality_values() == ["1K", "2K", "4K"]
    assert lite.resolution is not None and lite.resolution.default == "2K"
    assert lite.size is not None
    assert lite.size.ratios == ["auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
    assert lite.image_urls is not None
    assert (lite.image_urls.max_items, lite.image_urls.max_mb) == (10, 10)
    assert "5 real-person" in (lite.image_urls.notes or "")
    assert lite.beta
    assert problems_of("nano-banana-2-lite", prompt="a fox", quality="2K", size="21:9") == []


def test_nano_banana_2_lite_is_sent_upstream_as_nano_banana_2_lite_not_rewritten() -> None:
    spec = resolve_model(CATALOG, "nano-banana-2-lite")
    assert isinstance(spec, ModelSpec)

    assert build_body(spec, GenerationRequest("a fox", quality="4K"))["model"] == "nano-banana-2-lite"


def test_gemini_3_1_flash_lite_image_keeps_its_own_page_with_quality_1k_only() -> None:
    own = spec_of("gemini-3.1-flash-lite-image")

    assert own.quality_values() == ["1K"]
    assert own.docs and own.docs.endswith("nanobanana-2-lite-image-generate")


async def test_the_sandbox_answers_nano_banana_2_lite_under_its_own_id(api: httpx2.AsyncClient) -> None:
    created = await submit(api, {"model": "nano-banana-2-lite", "quality": "2K", "size": "16:9"})

    assert created["model"] == "nano-banana-2-lite"


# --- gpt-image-2 prompt and resolution ------------------------------------------------------------


def test_gpt_image_2_prompt_limit_is_32000_characters_counted_as_code_points_cjk_included() -> None:
    cat = "猫" * 25_000  # 75,000 bytes of UTF-8, 25,000 code points

    assert errors_only(validate_request(spec_of("gpt-image-2"), GenerationRequest(cat))) == []
    assert problems_of("gpt-image-2", prompt="猫" * 32_000) == [("prompt", "warning")]  # the newer byte cap
    assert problems_of("gpt-image-2", prompt="猫" * 32_001)[0] == ("prompt", "error")
    assert problems_of("gpt-image-2", prompt="a" * 32_000) == []


@pytest.mark.parametrize("size", ["auto", "1536x1024"])
def test_gpt_image_2_resolution_is_ignored_for_pixel_sizes_and_auto_with_a_warning(size: str) -> None:
    spec = spec_of("gpt-image-2")
    req = GenerationRequest("a fox", size=size, resolution="4K")

    problems = validate_request(spec, req)

    assert [(p.param, p.severity) for p in problems] == [("resolution", "warning")]
    assert "ignored" in problems[0].message and "ratio" in problems[0].message
    assert build_body(spec, req)["resolution"] == "4K"  # sent as given, but no longer silently
    assert problems_of("gpt-image-2", prompt="a fox", size="16:9", resolution="4K") == []
    assert problems_of("gpt-image-2", prompt="a fox", size="auto", resolution="1K") == []  # auto's own tier


# --- sizes the sandbox draws ----------------------------------------------------------------------


def documented_sizes() -> list[tuple[str, str, str, tuple[int, int]]]:
    """Every (model, tier, ratio, pixels) the shipped catalog's documented size tables give."""
    cells = []
    for spec in CATALOG.models:
        for tier, rows in ((spec.size.tiers or {}) if spec.size else {}).items():
            for ratio, size in rows.items():
                width, height = size.split("x")
                cells.append((spec.id, tier, ratio, (int(width), int(height))))
    return cells


# gpt-image-2's pages give the pixel budget and these cells; the other ratios are derived from the budget.
GPT_IMAGE_2_DOCUMENTED = [
    ("gpt-image-2", "1K", "1:1", (1024, 1024)),
    ("gpt-image-2", "2K", "1:1", (2048, 2048)),
    ("gpt-image-2", "4K", "1:1", (2880, 2880)),
    ("gpt-image-2", "1K", "2:1", (1456, 720)),
    ("gpt-image-2", "2K", "2:1", (2896, 1456)),
    ("gpt-image-2", "4K", "2:1", (3840, 1920)),  # "e.g. 4K 2:1 -> 3840x1920"
    ("gpt-image-2", "4K", "16:9", (3840, 2160)),
    ("gpt-image-2-beta", "1K", "1:1", (1024, 1024)),
    ("gpt-image-2-beta", "1K", "2:1", (1456, 720)),
    ("gpt-image-2-beta", "1K", "3:1", (1776, 592)),
    ("gpt-image-2-beta", "1K", "3:2", (1248, 832)),
    ("gpt-image-2-beta", "1K", "4:3", (1184, 880)),
    ("gpt-image-2-beta", "1K", "5:4", (1152, 912)),
    ("gpt-image-2-beta", "1K", "16:9", (1360, 768)),
    ("gpt-image-2-beta", "1K", "21:9", (1568, 672)),
    ("gpt-image-2-beta", "1K", "9:16", (768, 1360)),  # portrait: the landscape row swapped
]


def tier_field(spec: ModelSpec) -> str:
    assert spec.resolution is not None
    return spec.resolution.param


async def test_the_sandbox_draws_every_model_with_a_size_table_at_its_documented_sizes(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    cells = documented_sizes() + GPT_IMAGE_2_DOCUMENTED
    assert {model for model, *_ in cells} >= {
        "doubao-seedream-4.0",
        "doubao-seedream-4.5",
        "doubao-seedream-5.0-lite",
        "doubao-seedream-5.0-flash",
        "doubao-seedream-5.0-pro",
        "qwen-image-3.0",
        "qwen-image-3.0-pro",
        "krea-2-turbo",
        "gpt-image-2",
        "gpt-image-2-beta",
    }
    drawn = {}
    with anyio.fail_after(60):
        for model, tier, ratio, _ in cells:
            created = await submit(api, {"model": model, "size": ratio, tier_field(spec_of(model)): tier})
            task = sandbox.state.get_task(created["id"])
            assert task is not None
            drawn[(model, tier, ratio)] = (task.width, task.height)

    assert drawn == {(model, tier, ratio): size for model, tier, ratio, size in cells}


def test_every_size_table_has_a_row_for_each_ratio_its_model_accepts() -> None:
    missing = [
        (spec.id, tier, ratio)
        for spec in CATALOG.models
        if spec.size is not None and spec.size.tiers
        for tier, table in spec.size.tiers.items()
        for ratio in spec.size.ratios
        if ratio != "auto" and ratio not in table
    ]
    assert missing == []  # a missing row is drawn at a guessed size


async def test_krea_2_turbo_draws_1_2_and_2_1_at_the_documented_sizes(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    # The docs page's pixel table (docs.evolink.ai krea-2-turbo-image-generate): the rows the catalog once lacked.
    documented = {("1K", "2:1"): (1472, 704), ("2K", "1:2"): (1408, 2816), ("2K", "2:1"): (2816, 1408)}
    drawn = {}
    for tier, ratio in documented:
        created = await submit(api, {"model": "krea-2-turbo", "size": ratio, "quality": tier})
        task = sandbox.state.get_task(created["id"])
        assert task is not None
        drawn[tier, ratio] = (task.width, task.height)

    assert drawn == documented


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst"])
def test_gpt_image_2_sizes_at_every_ratio_and_tier_stay_within_the_pixel_budget_and_3840_edges(model: str) -> None:
    spec = spec_of(model)
    assert spec.size is not None and spec.size.pixel is not None
    for ratio in (r for r in spec.size.ratios if r != "auto"):
        for tier in spec.resolution_values():
            size = spec.output_pixels(ratio, tier)
            assert size is not None
            width, height = size
            assert width % 16 == height % 16 == 0
            assert max(width, height) <= 3840 and width * height <= 8_294_400, (ratio, tier, size)
            assert errors_only(validate_request(spec, GenerationRequest("a fox", size=f"{width}x{height}"))) == []


async def test_gpt_image_2_16_9_at_1k_is_1360x768_and_1_1_at_4k_is_2880x2880_in_the_sandbox(
    api: httpx2.AsyncClient, sandbox: SandboxServer
) -> None:
    wide = await submit(api, {"model": "gpt-image-2", "size": "16:9", "resolution": "1K"})
    square = await submit(api, {"model": "gpt-image-2", "size": "1:1", "resolution": "4K"})
    auto = await submit(api, {"model": "gpt-image-2", "size": "auto", "resolution": "4K"})

    sizes = [sandbox.state.get_task(t["id"]) for t in (wide, square, auto)]
    assert [(t.width, t.height) for t in sizes if t] == [(1360, 768), (2880, 2880), (1024, 1024)]


# --- reference images -----------------------------------------------------------------------------


def test_gemini_3_pro_image_preview_references_warn_above_10_and_are_refused_above_14() -> None:
    def refs(count: int) -> list[tuple[str, str]]:
        urls = [f"https://cdn.example.com/ref-{i}.png" for i in range(count)]
        return problems_of("gemini-3-pro-image-preview", prompt="a fox", image_urls=urls)

    assert refs(10) == []
    assert refs(11) == refs(14) == [("image_urls", "warning")]
    assert refs(15) == [("image_urls", "error")]


def test_gemini_3_pro_image_preview_reference_warns_above_10_mb_and_is_refused_above_20_mb() -> None:
    spec = spec_of("gemini-3-pro-image-preview")

    def severity(megabytes: float) -> list[str]:
        return [p.severity for p in reference_size_problems(spec, "image_urls", "ref.png", int(megabytes * MB))]

    assert severity(10) == []
    assert severity(10.5) == severity(20) == ["warning"]
    assert severity(20.5) == ["error"]


# --- prompts counted in tokens --------------------------------------------------------------------


def test_a_prompt_limit_in_tokens_warns_past_the_documented_figure_and_refuses_only_what_is_certainly_over() -> None:
    spec = spec_of("gemini-3-pro-image-preview")
    assert spec.prompt is not None and (spec.prompt.max, spec.prompt.unit) == (2000, "tokens")

    assert problems_of(spec.id, prompt="a" * 2000) == []
    assert problems_of(spec.id, prompt="a" * 2500) == [("prompt", "warning")]
    assert problems_of(spec.id, prompt="a" * 64_000) == [("prompt", "warning")]
    assert problems_of(spec.id, prompt="a" * 64_001) == [("prompt", "error")]  # over 32 characters a token


# --- error advice ---------------------------------------------------------------------------------


async def test_a_401_points_to_the_api_keys_page_and_a_402_to_the_billing_page(sandbox: SandboxServer) -> None:
    sandbox.state.fail_next("tasks", 402)
    async with client_for(sandbox) as client:
        with pytest.raises(InsufficientCreditsError) as broke:
            await client.get_task(TASK_ID)
    sandbox.state.configure(api_key="sk-the-right-key")
    async with client_for(sandbox, "sk-wrong-key") as client:
        with pytest.raises(AuthenticationError) as refused:
            await client.get_task(TASK_ID)

    assert "https://evolink.ai/dashboard/keys" in refused.value.next_step
    assert "https://evolink.ai/dashboard/billing" in broke.value.next_step
    assert not refused.value.retryable and not broke.value.retryable


@pytest.mark.parametrize("status", [502, 503, 400])
async def test_model_unavailable_is_not_retryable_as_an_http_error_code(sandbox: SandboxServer, status: int) -> None:
    body = {"error": {"code": "model_unavailable", "message": "model offline", "type": "upstream_error"}}
    sandbox.state.fail_next("tasks", status, body=body, count=3)
    async with client_for(sandbox) as client:
        with pytest.raises(ModelUnavailableError) as caught:
            await client.get_task(TASK_ID)  # reads are retried when retrying can help

    assert not caught.value.retryable
    assert "another model" in caught.value.next_step
    assert len(sandbox.state.requests("tasks")) == 1
    assert error_class_for(status, "MODEL_UNAVAILABLE") is ModelUnavailableError


def test_model_unavailable_is_not_retryable_as_a_task_error() -> None:
    advice = task_failure_advice("model_unavailable")

    assert not advice.retryable and "another model" in advice.next_step


# --- example credits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "credits"),
    [
        ("gemini-2.5-flash-image", 1.6),
        ("gemini-3.1-flash-image-preview", 1.6),  # evolink-api.md's example
        ("gemini-3-pro-image-preview", 1.6),
        ("nano-banana-2-lite", 1.6),
        ("gpt-image-2", 2.5),
        # Its docs example says 2.5, its published price at the default 1K tier 1.02: the price wins (catalog
        # pricing, evolink.ai/gpt-image-2?model=gpt-image-2-beta).
        ("gpt-image-2-beta", 1.02),
    ],
)
async def test_the_sandbox_reserves_the_documented_example_credits_for_a_default_request(
    api: httpx2.AsyncClient, model: str, credits: float
) -> None:
    created = await submit(api, {"model": model, "prompt": "A cat playing on the grass"})

    assert created["usage"]["credits_reserved"] == credits
