"""The price before a credit is spent: published credits per image in the catalog, with source and date."""

from __future__ import annotations

import datetime

import pytest

from evolink_mcp.catalog import Catalog, GenerationRequest, estimate_credits, load_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_every_model_has_a_price_with_its_source_and_the_date_read_or_says_unknown(catalog: Catalog) -> None:
    for spec in catalog.models:
        pricing = spec.pricing
        assert pricing is not None, spec.id
        assert pricing.checked is not None and datetime.date.fromisoformat(pricing.checked), spec.id
        if pricing.credits == "unknown":
            assert pricing.notes, spec.id  # why: not found, or billed by tokens
        else:
            assert pricing.source and pricing.source.startswith("https://evolink.ai/"), spec.id
            assert all(credits > 0 for credits in pricing.credits.values()), spec.id


@pytest.mark.parametrize(
    ("model", "request_", "credits"),
    [
        ("krea-2-turbo", GenerationRequest(prompt="p"), 0.45),  # the default tier, 1K
        ("krea-2-turbo", GenerationRequest(prompt="p", quality="2k"), 1.8),
        ("doubao-seedream-4.5", GenerationRequest(prompt="p", n=3), 6.75),  # one price for all sizes, x n
        ("doubao-seedream-4.0", GenerationRequest(prompt="p", quality="4K"), 1.296),
        ("gpt-image-2-beta", GenerationRequest(prompt="p", size="auto"), 1.02),  # auto is billed at 1K
        ("gpt-image-2-beta", GenerationRequest(prompt="p", size="2048x2048"), 1.734),  # 4.19 MP: the 2K tier
        ("gpt-image-2-beta", GenerationRequest(prompt="p", size="3840x2160"), 2.652),  # 8.29 MP: the 4K tier
    ],
)
def test_a_published_price_is_credits_per_image_at_the_billed_tier_times_the_images(
    catalog: Catalog, model: str, request_: GenerationRequest, credits: float
) -> None:
    spec = catalog.get(model)
    assert spec is not None

    estimate = estimate_credits(spec, request_)

    assert estimate.credits == pytest.approx(credits)
    assert estimate.source and estimate.source.startswith("https://evolink.ai/")
    assert estimate.checked == "2026-12-05" and f"{estimate.per_image:g} credits per image" in estimate.basis


def test_a_model_without_a_published_price_has_no_estimate_and_says_so(catalog: Catalog) -> None:
    estimate = estimate_credits(catalog.default, GenerationRequest(prompt="p", quality="4K"))

    assert estimate.credits is None
    assert estimate.basis == f"no published price for {catalog.default.id}"


def test_a_token_billed_model_has_no_estimate_but_names_the_published_range(catalog: Catalog) -> None:
    spec = catalog.get("gpt-image-2")
    assert spec is not None

    estimate = estimate_credits(spec, GenerationRequest(prompt="p", quality="high", resolution="4K"))

    assert estimate.credits is None
    assert "billed by tokens" in estimate.basis and "0.11383-55.5805 credits per image" in estimate.basis
    assert estimate.source == "https://evolink.ai/zh/gpt-image-2 (Est. price per image, token-based billing)"
