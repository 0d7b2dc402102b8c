"""Typed view of the model catalog (models.json): one ModelSpec per Evolink image model."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class PromptSpec(_Spec):
    max: int | None = None
    unit: str | None = None  # "characters", "code points" or "tokens"
    required: bool = True
    max_bytes_utf8: int | None = None


class PixelRule(_Spec):
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_aspect: float | None = None
    multiple_of: int | None = None
    min_edge: int | None = None
    max_edge: int | None = None
    allowed: list[str] | None = None

    def describe(self) -> str:
        """Human-readable summary, e.g. 'WxH, 655360-8294400 px, edges 16-3840, multiple of 16'."""
        if self.allowed:
            return "WxH, one of " + ", ".join(self.allowed)
        parts = ["WxH"]
        if self.min_pixels or self.max_pixels:
            parts.append(f"{self.min_pixels or 1}-{self.max_pixels or 'any'} total pixels")
        if self.min_edge or self.max_edge:
            parts.append(f"each side {self.min_edge or 1}-{self.max_edge or 'any'} px")
        if self.multiple_of:
            parts.append(f"sides a multiple of {self.multiple_of}")
        if self.max_aspect:
            parts.append(f"aspect ratio at most {self.max_aspect:g}:1")
        return ", ".join(parts)


class SizeSpec(_Spec):
    param: str | None = "size"  # None: the model has no size field (e.g. Midjourney's --ar)
    ratios: list[str] = Field(default_factory=list)
    default: str | None = None
    pixel: PixelRule | None = None
    notes: str | None = None
    tiers: dict[str, dict[str, str]] | None = None  # documented output pixels: tier -> ratio -> "WxH"


class TierBudget(_Spec):
    """A ratio's output size derived from its tier's pixel count (gpt-image-2): sides multiples of `multiple_of`,
    scaled down to fit `max_edge` and `max_pixels`."""

    pixels: dict[str, int]
    multiple_of: int = 16
    max_edge: int | None = None
    max_pixels: int | None = None

    def size_for(self, pixels: int, aspect: float) -> tuple[int, int]:
        width, height = math.sqrt(pixels * aspect), math.sqrt(pixels / aspect)
        if self.max_edge and max(width, height) > self.max_edge:
            scale = self.max_edge / max(width, height)
            width, height = width * scale, height * scale
        step = self.multiple_of
        sides = [max(step, math.floor(side / step + 0.5) * step) for side in (width, height)]
        if self.max_pixels and sides[0] * sides[1] > self.max_pixels:  # rounding up broke the maximum
            sides = [max(step, math.floor(side / step) * step) for side in (width, height)]
        return sides[0], sides[1]


class EnumSpec(_Spec):
    """A tiered value: `quality` (render level) or `resolution` (pixel tier)."""

    param: str
    values: list[str]
    default: str | None = None
    notes: str | None = None
    budget: TierBudget | None = None
    ignored_with: list[Literal["auto", "pixels"]] = Field(default_factory=list)  # sizes the tier does not apply to


class CountSpec(_Spec):
    min: int = 1
    max: int | None = None
    values: list[int] | None = None
    default: int | None = None
    notes: str | None = None

    def allowed(self) -> list[int]:
        if self.values:
            return list(self.values)
        return list(range(self.min, (self.max or self.min) + 1))


class ImageInputSpec(_Spec):
    max_items: int
    min_items: int = 0
    max_mb: float | None = None
    # The figures of the documents this catalog was built from, where newer docs allow more: above them, a warning.
    documented_max_items: int | None = None
    documented_max_mb: float | None = None
    formats: list[str] | None = None
    required: bool = False
    notes: str | None = None


class ExtraParamSpec(_Spec):
    type: Literal["string", "integer", "number", "boolean", "object", "array"]
    enum: list[Any] | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    max_length: int | None = None
    required: bool = False
    fields: list[str] | None = None
    required_fields: list[str] | None = None
    item_fields: list[str] | None = None
    item_enums: dict[str, list[Any]] | None = None


class PricingSpec(_Spec):
    """What Evolink publishes a model costs, in credits per image, with where and when it was read."""

    credits: dict[str, float] | Literal["unknown"]  # pixel tier (or "*": any) -> credits per image
    billing: Literal["per_image", "per_token"] = "per_image"
    range: tuple[float, float] | None = None  # published lowest and highest per image (token billing)
    auto_tier: str | None = None  # the tier size "auto" is billed at
    pixel_tiers: dict[str, int] | None = None  # WxH: the first tier whose pixel ceiling it fits
    source: str | None = None
    checked: str | None = None  # the date the source was read
    notes: str | None = None


Mode = str  # text-to-image, image-to-image, edit, inpaint, upscale, ... (open set, data-driven)


class ModelSpec(_Spec):
    id: str
    title: str
    endpoint: str = "/v1/images/generations"
    required: list[str] = Field(default_factory=list)
    prompt: PromptSpec | None = None  # None: the model takes no prompt at all
    size: SizeSpec | None = None
    quality: EnumSpec | None = None
    resolution: EnumSpec | None = None
    n: CountSpec | None = None
    image_urls: ImageInputSpec | None = None
    mask_url: bool = False
    extra_params: dict[str, ExtraParamSpec] = Field(default_factory=dict)
    modes: list[Mode] = Field(default_factory=list)
    input_task_id: bool = False
    notes: str | None = None
    docs: str | None = None
    documented: Literal["docs", "seeds", "user"] = "docs"
    seeds: list[str] = Field(default_factory=list)
    beta: bool = False
    aliases: list[str] = Field(default_factory=list)
    pricing: PricingSpec | None = None  # None: never looked up (a user's model)

    @property
    def takes_prompt(self) -> bool:
        return self.prompt is not None

    @property
    def size_field(self) -> str | None:
        """Wire field carrying the size, or None when the model has no size parameter."""
        if self.size is None or self.size.param is None:
            return None
        return self.size.param

    def quality_values(self) -> list[str]:
        """Values accepted in `quality`: render levels, or the pixel tier when it travels as `quality`."""
        if self.quality is not None:
            return list(self.quality.values)
        if self.resolution is not None and self.resolution.param == "quality":
            return list(self.resolution.values)
        return []

    def resolution_values(self) -> list[str]:
        return list(self.resolution.values) if self.resolution is not None else []

    def output_pixels(self, ratio: str, tier: str | None) -> tuple[int, int] | None:
        """What the docs say a ratio size comes out as at `tier`: their table, else the tier's pixel budget."""
        width, sep, height = ratio.strip().partition(":")
        try:
            aspect = float(width) / float(height)
        except (ValueError, ZeroDivisionError):
            return None
        if not sep or aspect <= 0 or tier is None:
            return None
        tier = tier.strip().lower()
        tables = {name.lower(): rows for name, rows in ((self.size.tiers or {}) if self.size else {}).items()}
        rows = tables.get(tier, {})
        if f"{width}:{height}" in rows:
            found = rows[f"{width}:{height}"].split("x")
            return int(found[0]), int(found[1])
        if f"{height}:{width}" in rows:  # the docs give landscape rows; portrait is the same swapped
            found = rows[f"{height}:{width}"].split("x")
            return int(found[1]), int(found[0])
        budget = self.resolution.budget if self.resolution is not None else None
        pixels = {name.lower(): count for name, count in budget.pixels.items()} if budget else {}
        if budget is not None and tier in pixels:
            return budget.size_for(pixels[tier], aspect)
        return None
