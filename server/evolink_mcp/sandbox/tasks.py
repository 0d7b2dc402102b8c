"""Simulated generation tasks: wire body -> request, prompt markers, sizes, credits and the task lifecycle."""

from __future__ import annotations

import math
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..catalog import GenerationRequest, ModelSpec, Problem, estimate_credits
from ..catalog.validation import PIXEL_SIZE, flatten_extra

TASK_ID = re.compile(r"^task-[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MARKER = re.compile(r"\[sandbox:([a-z_]+)(?:=([^\]]*))?\]", re.IGNORECASE)
PENDING_SHARE = 0.15  # first part of a task's duration spent queued, before it starts processing
# Message of a failed task, per task error code (evolink-api.md, "Task error codes").
TASK_ERROR_MESSAGES = {
    "content_policy_violation": "The request was blocked by the content policy. Rephrase the prompt: "
    "no NSFW, violence or real people's names.",
    "invalid_parameters": "Invalid parameters: check the values against the model's limits.",
    "image_dimension_mismatch": "The input image does not match the requested aspect ratio: resize it.",
    "image_processing_error": "The input image could not be processed: check its format (JPEG/PNG/WebP), "
    "size, and that its URL is reachable.",
    "request_cancelled": "The request was cancelled. Submit it again if that was unintended.",
    "model_unavailable": "The model is unavailable. Pick another model.",
    "generation_timeout": "Generation timed out. Retry, or simplify the prompt.",
    "quota_exceeded": "Quota exceeded. Wait, or top up your balance.",
    "resource_exhausted": "Resources are exhausted. Wait 30-60 seconds and retry.",
    "service_error": "Service error. Retry in a minute.",
    "service_unavailable": "Service unavailable. Retry in a minute.",
    "upstream_error": "The model provider returned an error. Retry in a minute.",
    "generation_failed_no_content": "The model produced no content. Modify the prompt and retry.",
    "resource_not_found": "The task id is unknown or expired.",
    "unknown_error": "Unknown error. Retry; report the task id if it persists.",
}

TIER_EDGE = {"0.5k": 512, "1k": 1024, "1.5k": 1536, "2k": 2048, "3k": 3072, "4k": 4096}
TIER_FACTOR = {"0.5k": 0.5, "1k": 1.0, "1.5k": 1.25, "2k": 1.5, "3k": 2.0, "4k": 2.5}
QUALITY_FACTOR = {
    "low": 0.5,
    "medium": 1.0,
    "high": 2.0,
    "xhigh": 3.0,
    "max": 4.0,
    "standard": 1.0,
    "hd": 2.0,
}
# Credits a request with the model's default tier and quality reserves, as in the example response of its docs
# page (evolink-api.md's example is gemini-3.1-flash-image-preview's).
EXAMPLE_CREDITS = {
    "gemini-2.5-flash-image": 1.6,
    "gemini-3.1-flash-image-preview": 1.6,
    "gemini-3-pro-image-preview": 1.6,
    "nano-banana-2-lite": 1.6,
    "gpt-image-2": 2.5,
    "gpt-image-2-beta": 2.5,
}
# Models without a documented example: credits per image at the 1K tier, by model id prefix (first match wins;
# plausible, not Evolink's prices).
FAMILY_CREDITS = (
    ("gemini-3-pro", 4.0),
    ("nano-banana-pro", 4.0),
    ("gemini-3.1-flash-lite", 0.8),
    ("nano-banana-2-lite", 0.8),
    ("gemini-3.1-flash", 1.6),
    ("nano-banana-2", 1.6),
    ("gemini-2.5", 1.0),
    ("nano-banana", 1.0),
    ("gpt-image-2.5", 3.0),
    ("gpt-image-2", 2.0),
    ("gpt-image-1.5", 1.5),
    ("gpt-image-1", 2.0),
    ("gpt-4o", 2.0),
    ("doubao-seedream-5.0-pro", 1.2),
    ("doubao-", 0.8),
    ("qwen-image-3.0-pro", 1.0),
    ("qwen", 0.6),
    ("wan", 0.7),
    ("z-image", 0.2),
    ("krea", 0.5),
    ("grok", 1.0),
    ("mj-", 2.0),
)
IMAGE_FORMATS = {"png": ("png", "image/png"), "jpeg": ("jpg", "image/jpeg"), "webp": ("webp", "image/webp")}
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Markers:
    """Test instructions embedded in a prompt as `[sandbox:name=value]`."""

    duration: float | None = None
    fail: str | None = None
    status: str | None = None
    expire: bool = False


def parse_markers(prompt: str | None) -> Markers:
    """`[sandbox:duration=2.5]`, `[sandbox:fail=CODE]`, `[sandbox:status=cancelled]`, `[sandbox:expire]`."""
    values: dict[str, Any] = {}
    for name, raw in MARKER.findall(prompt or ""):
        name, value = name.lower(), raw.strip()
        if name == "duration":
            try:
                values["duration"] = max(0.0, float(value))
            except ValueError:
                continue
        elif name in ("fail", "status") and value:
            values[name] = value
        elif name == "expire":
            values["expire"] = True
    return Markers(**values)


def strip_markers(prompt: str | None) -> str:
    return " ".join(MARKER.sub(" ", prompt or "").split())


def new_task_id(now: float) -> str:
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"task-unified-{int(now)}-{suffix}"


def request_from_wire(spec: ModelSpec, body: dict[str, Any]) -> GenerationRequest | Problem:
    """The GenerationRequest a wire body asks for, or the first wire-level type problem."""
    size_key = spec.size_field or "size"
    for key in ("prompt", size_key, "quality", "resolution", "mask_url", "callback_url"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            return Problem(key, f"{key} must be a string; got {value!r}.", value)
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool)):
        return Problem("n", f"n must be an integer; got {n!r}.", n)
    image_urls = body.get("image_urls")
    if image_urls is not None and (not isinstance(image_urls, list) or not all(isinstance(u, str) for u in image_urls)):
        return Problem("image_urls", "image_urls must be a list of URL strings.", image_urls)
    urls = [("image_urls", u) for u in image_urls or []]
    urls += [(key, body[key]) for key in ("mask_url", "callback_url") if body.get(key) is not None]
    for key, url in urls:
        try:
            urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket: urlsplit raises instead of parsing
            return Problem(key, f"{key}: {url[:200]!r} is not a valid URL.", url)
    if body.get("resolution") is not None and spec.resolution is not None and spec.resolution.param != "resolution":
        return Problem(
            "resolution",
            f"{spec.id} takes its resolution tier in `{spec.resolution.param}`, not `resolution`.",
            body["resolution"],
            spec.resolution_values(),
        )
    dotted = [key for key in body if "." in key]
    if dotted:
        return Problem(
            dotted[0], f"Unknown parameter {dotted[0]!r}; nested parameters go in an object.", body[dotted[0]]
        )
    own = {
        "model",
        "prompt",
        size_key,
        "quality",
        "resolution",
        "n",
        "image_urls",
        "mask_url",
        "callback_url",
    }
    return GenerationRequest(
        prompt=body.get("prompt"),
        size=body.get(size_key),
        quality=body.get("quality"),
        resolution=body.get("resolution"),
        n=n,
        image_urls=list(image_urls or []),
        mask_url=body.get("mask_url"),
        callback_url=body.get("callback_url"),
        extra={key: value for key, value in body.items() if key not in own},
    )


def effective_tier(spec: ModelSpec, req: GenerationRequest) -> str | None:
    """The resolution tier the request gets: as sent, else the model's default."""
    rule = spec.resolution
    if rule is None:
        return None
    sent = req.resolution if rule.param == "resolution" else (req.quality or req.resolution)
    return sent or rule.default


def effective_quality(spec: ModelSpec, req: GenerationRequest) -> str | None:
    if spec.quality is None:
        return None
    return req.quality or spec.quality.default


def _ratio(text: str) -> tuple[float, float] | None:
    left, sep, right = text.partition(":")
    try:
        width, height = float(left), float(right)
    except ValueError:
        return None
    return (width, height) if sep and width > 0 and height > 0 else None


def image_dimensions(spec: ModelSpec, req: GenerationRequest) -> tuple[int, int]:
    """Pixel size of each result: explicit WxH as sent; a ratio as the model's docs size it (their table, or the
    tier's pixel budget); else the ratio at the tier's long edge. `auto` draws a square."""
    size = (req.size or (spec.size.default if spec.size is not None else None) or "1:1").strip()
    pixels = PIXEL_SIZE.match(size)
    if pixels:
        return max(1, int(pixels.group(1))), max(1, int(pixels.group(2)))
    tier = effective_tier(spec, req)
    if size.lower() == "auto":
        size = "1:1"
        if spec.resolution is not None and "auto" in spec.resolution.ignored_with:
            tier = spec.resolution.default
    documented = spec.output_pixels(size, tier)
    if documented is not None:
        return documented
    edge = TIER_EDGE.get((tier or "").lower(), 1024)
    ratio = _ratio(size) or (1.0, 1.0)
    if ratio[0] >= ratio[1]:
        return edge, max(1, round(edge * ratio[1] / ratio[0]))
    return max(1, round(edge * ratio[0] / ratio[1])), edge


def image_format(req: GenerationRequest) -> str:
    """png, jpeg or webp: the output_format asked for (top level or in model_params), else png."""
    flat = flatten_extra(req.extra)
    wanted = flat.get("output_format", flat.get("model_params.output_format"))
    return wanted if isinstance(wanted, str) and wanted in IMAGE_FORMATS else "png"


def credits_for(spec: ModelSpec, req: GenerationRequest, n: int) -> float:
    """Deterministic price: the catalog's published price where there is one; else base x tier factor x quality
    factor x images, the base being the documented example's figure for the model's default request where its docs
    show one, else a family figure at 1K."""
    published = estimate_credits(spec, req).per_image
    if published is not None:
        return round(published * n, 4)
    tier = TIER_FACTOR.get((effective_tier(spec, req) or "").lower(), 1.0)
    quality = QUALITY_FACTOR.get((effective_quality(spec, req) or "").lower(), 1.0)
    if spec.id in EXAMPLE_CREDITS:
        default = GenerationRequest()
        tier /= TIER_FACTOR.get((effective_tier(spec, default) or "").lower(), 1.0)
        quality /= QUALITY_FACTOR.get((effective_quality(spec, default) or "").lower(), 1.0)
        base = EXAMPLE_CREDITS[spec.id]
    else:
        base = next((credits for prefix, credits in FAMILY_CREDITS if spec.id.startswith(prefix)), 1.0)
    return round(base * tier * quality * n, 2)


@dataclass
class SandboxTask:
    """One submitted generation; its status is a function of the time since creation."""

    id: str
    model: str
    created: int  # unix seconds, as sent on the wire
    started: float  # the sandbox clock at creation
    duration: float
    prompt: str
    n: int
    width: int
    height: int
    image_format: str
    credits: float
    user_group: str
    base_url: str
    outcome: str = "completed"  # the terminal status: completed, failed, or any other (e.g. cancelled)
    error_code: str | None = None
    expire_on_completion: bool = False
    expired: bool = False
    request_body: dict[str, Any] = field(default_factory=dict)
    account: str = ""  # whose key created it: another key's GET finds nothing

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.image_format][0]

    @property
    def mime_type(self) -> str:
        return IMAGE_FORMATS[self.image_format][1]

    def result_urls(self) -> list[str]:
        return [f"{self.base_url}/results/{self.id}/{index}.{self.extension}" for index in range(self.n)]

    def phase(self, now: float) -> tuple[str, int, float]:
        """(status, progress, seconds left) at clock time `now`."""
        elapsed = max(0.0, now - self.started)
        if elapsed >= self.duration:
            return self.outcome, 100 if self.outcome == "completed" else 0, 0.0
        left = self.duration - elapsed
        if elapsed < self.duration * PENDING_SHARE:
            return "pending", 0, left
        return "processing", min(99, int(100 * elapsed / self.duration)), left

    def is_finished(self, now: float) -> bool:
        return now - self.started >= self.duration

    def is_gone(self, now: float) -> bool:
        """Expired: the task id answers 404."""
        return self.expired or (self.expire_on_completion and self.is_finished(now))

    def to_wire(self, now: float) -> dict[str, Any]:
        status, progress, left = self.phase(now)
        finished = self.is_finished(now)
        body: dict[str, Any] = {
            "created": self.created,
            "id": self.id,
            "model": self.model,
            "object": "image.generation.task",
            "progress": progress,
            "status": status,
            "task_info": {"can_cancel": not finished, "estimated_time": math.ceil(left)},
            "type": "image",
            "usage": {
                "billing_rule": "per_call",
                "credits_reserved": self.credits,
                "user_group": self.user_group,
            },
        }
        if finished and status == "completed":
            urls = self.result_urls()
            body["results"] = urls
            body["result_data"] = [{"image_url": url} for url in urls]
        elif finished and status == "failed":
            code = self.error_code or "unknown_error"
            body["error"] = {
                "code": code,
                "message": TASK_ERROR_MESSAGES.get(code, TASK_ERROR_MESSAGES["unknown_error"]),
            }
        return body
