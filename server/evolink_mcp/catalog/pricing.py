"""The price of a request before it is sent: the catalog's published credits per image, by tier, times images."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ModelSpec
from .validation import PIXEL_SIZE, GenerationRequest, canonical_choice


@dataclass(frozen=True)
class Estimate:
    """Credits a request should reserve (None: no published price), how that was reached, and from where."""

    credits: float | None
    basis: str
    source: str | None = None
    checked: str | None = None  # the date the price was read
    per_image: float | None = None
    images: int = 1
    tier: str | None = None


def billed_tier(spec: ModelSpec, request: GenerationRequest) -> str | None:
    """The pixel tier the request is billed at: from an explicit WxH or `auto` where the pricing says so, else the
    tier asked for, else the model's default."""
    pricing, rule = spec.pricing, spec.resolution
    size = (request.size or "").strip()
    pixels = PIXEL_SIZE.match(size)
    if pricing is not None and pixels and pricing.pixel_tiers:
        total = int(pixels.group(1)) * int(pixels.group(2))
        return next((tier for tier, ceiling in pricing.pixel_tiers.items() if total <= ceiling), None)
    if pricing is not None and size.lower() == "auto" and pricing.auto_tier:
        return pricing.auto_tier
    if rule is None:
        return None
    asked = request.resolution if rule.param == "resolution" else (request.quality or request.resolution)
    if asked is None:
        return rule.default
    return canonical_choice(asked, rule.values) or asked.strip()


def image_count(spec: ModelSpec, request: GenerationRequest) -> int:
    """Images the request is billed for: n as asked, else the model's default."""
    if request.n is not None and spec.n is not None:
        return request.n
    return (spec.n.default if spec.n is not None else None) or 1


def estimate_credits(spec: ModelSpec, request: GenerationRequest) -> Estimate:
    """The published price of `request` on `spec` (credits per image at its billed tier x images), or why there is
    none."""
    pricing = spec.pricing
    images = image_count(spec, request)
    if pricing is None or pricing.credits == "unknown":
        if pricing is not None and pricing.range is not None:
            low, high = pricing.range
            basis = f"{spec.id} is billed by tokens used: {low:g}-{high:g} credits per image published"
        else:
            basis = f"no published price for {spec.id}"
        source = pricing.source if pricing else None
        return Estimate(None, basis, source, pricing.checked if pricing else None, images=images)
    tier = billed_tier(spec, request)
    by_tier = {name.lower(): credits for name, credits in pricing.credits.items()}
    per_image = by_tier.get("*", by_tier.get((tier or "").lower()))
    at = f" at {tier}" if tier and "*" not in by_tier else ""
    if per_image is None:
        basis = f"no published price for {spec.id}{at or ' at this tier'}"
        return Estimate(None, basis, pricing.source, pricing.checked, images=images, tier=tier)
    credits = round(per_image * images, 4)
    basis = f"{per_image:g} credits per image{at} x {images} (published price of {spec.id})"
    return Estimate(credits, basis, pricing.source, pricing.checked, per_image, images, tier)
