"""Checking a generation request against a model's documented limits, and building its wire body."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from .catalog import Catalog
from .spec import ExtraParamSpec, ModelSpec

PIXEL_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX×*]\s*(\d{1,6})\s*$")
ASPECT_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:/]\s*(\d+(?:\.\d+)?)\s*$")
MAX_CALLBACK_URL = 2048
# Fields with a parameter of their own: never accepted inside `extra`.
OWN_PARAMETERS = (
    "model",
    "prompt",
    "size",
    "quality",
    "resolution",
    "n",
    "image_urls",
    "mask_url",
    "callback_url",
)
IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tiff", "tif", "heic", "avif"}
ECHO_LIMIT = 80  # characters of a caller's value quoted back in a message
# A prompt longer than this is refused for any model, documented limit or not: far over the largest the catalog
# documents (32,000 code points; 4,500 tokens, at most 144,000 characters by the bound below).
MAX_PROMPT_CHARACTERS = 200_000
# Token limits cannot be counted here, only bounded. A token averages about 4 characters of English (fewer in
# other scripts); only degenerate text (runs of one character, which tokenizers pack into their longest
# entries) averages more than 32. Past `limit x 32` characters a prompt is certainly over, and refused; past
# the documented figure itself it only may be, and is sent with a warning.
MAX_CHARACTERS_PER_TOKEN = 32


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters, saying how long it was: a huge value is never sent back whole."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def echo(value: Any) -> str:
    """A caller's value as a message quotes it (its repr), cut."""
    return clip(repr(value))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: which parameter, what was given, what is allowed."""

    param: str
    message: str
    value: Any = None
    allowed: list[Any] | None = None
    severity: Literal["error", "warning"] = "error"

    def __post_init__(self) -> None:
        # The value goes back in the error's structured copy: a 50 MB value must not make a 100 MB answer.
        if isinstance(self.value, (str, list, dict, tuple)) and len(repr(self.value)) > ECHO_LIMIT:
            object.__setattr__(self, "value", echo(self.value))

    def __str__(self) -> str:
        return self.message


@dataclass
class GenerationRequest:
    """What a caller asks for, before it is checked against a model."""

    prompt: str | None = None
    size: str | None = None
    quality: str | None = None
    resolution: str | None = None
    n: int | None = None
    image_urls: list[str] = field(default_factory=list)
    mask_url: str | None = None
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _did_you_mean(value: str, options: list[str]) -> str:
    if len(value) > ECHO_LIMIT:  # no near miss is that long, and difflib's time grows with it
        return ""
    by_lower = {o.lower(): o for o in options}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.5)
    return f" Did you mean {by_lower[close[0]]!r}?" if close else ""


def _nearest_ratios(width: float, height: float, ratios: list[str], limit: int = 2) -> list[str]:
    """Documented ratios closest in shape to width:height (within about 20%), closest first."""
    if width <= 0 or height <= 0:
        return []
    target = math.log(width / height)
    scored = []
    for ratio in ratios:
        match = ASPECT_RATIO.match(ratio)
        if match and float(match.group(1)) > 0 and float(match.group(2)) > 0:
            distance = abs(math.log(float(match.group(1)) / float(match.group(2))) - target)
            if distance < 0.2:
                scored.append((distance, ratio))
    scored.sort()
    if scored and scored[0][0] < 1e-9:
        return [scored[0][1]]
    return [ratio for _, ratio in scored[:limit]]


def _did_you_mean_size(size: str, ratios: list[str]) -> str:
    # A ratio is a near miss by shape ('16:10' ~ '3:2', '16:9'), not by spelling ('16:10' ~ '1:1').
    match = ASPECT_RATIO.match(size)
    if match is None:
        return _did_you_mean(size, ratios)
    close = _nearest_ratios(float(match.group(1)), float(match.group(2)), ratios)
    return f" Did you mean {' or '.join(repr(r) for r in close)}?" if close else ""


def _listing(values: list[Any], limit: int = 40) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


def resolve_model(catalog: Catalog, name: str | None) -> ModelSpec | Problem:
    """The model for `name` (None: the default), or a Problem with near-miss suggestions."""
    if name is None or not name.strip():
        return catalog.default
    spec = catalog.get(name)
    if spec is not None:
        return spec
    hint = catalog.suggest(name)
    did = f" Did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
    return Problem(
        "model",
        f"Unknown model {echo(name)}.{did} Call list_models to see every model; "
        f"allowed ids: {_listing(catalog.ids, limit=200)}.",
        name,
        catalog.ids,
    )


def flatten_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """`{"model_params": {"x": 1}}` and `{"model_params.x": 1}` mean the same: use the dotted form."""
    flat: dict[str, Any] = {}
    for key, value in extra.items():
        if key == "model_params" and isinstance(value, dict):
            for inner, inner_value in value.items():
                flat[f"model_params.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def canonical_choice(value: str, allowed: list[str]) -> str | None:
    """`value` as spelled in `allowed`, matched case-insensitively ('2k' -> '2K'), or None."""
    for option in allowed:
        if option.lower() == value.strip().lower():
            return option
    return None


def _check_prompt(spec: ModelSpec, prompt: str | None) -> list[Problem]:
    rule = spec.prompt
    if rule is None:
        if prompt:
            return [Problem("prompt", f"{spec.id} takes no prompt; leave prompt empty.", "(text)")]
        return []
    if not prompt or not prompt.strip():
        if rule.required:
            return [Problem("prompt", f"prompt is required for {spec.id}: describe the image you want.")]
        return []
    problems = []
    length = len(prompt)
    if rule.max and rule.unit in ("characters", "code points") and length > rule.max:
        problems.append(
            Problem(
                "prompt",
                f"prompt is {length} {rule.unit} long; {spec.id} accepts at most {rule.max}. Shorten it.",
                f"{length} {rule.unit}",
                [f"<= {rule.max} {rule.unit}"],
            )
        )
    encoded = len(prompt.encode("utf-8"))
    if rule.max_bytes_utf8 and encoded > rule.max_bytes_utf8:
        # Its docs page counts code points only (CJK included); a newer docs build adds this byte cap: warn only.
        problems.append(
            Problem(
                "prompt",
                f"prompt is {encoded} bytes in UTF-8; newer {spec.id} docs also cap a prompt at "
                f"{rule.max_bytes_utf8} bytes, so it may be refused. Sent as is.",
                f"{encoded} bytes",
                severity="warning",
            )
        )
    if rule.max and rule.unit == "tokens" and length > rule.max * MAX_CHARACTERS_PER_TOKEN:
        problems.append(
            Problem(
                "prompt",
                f"prompt is {length} characters; {spec.id} accepts {rule.max} tokens, which no prompt over "
                f"{rule.max * MAX_CHARACTERS_PER_TOKEN} characters fits in. Shorten it.",
                f"{length} characters",
                [f"<= {rule.max} tokens"],
            )
        )
    elif rule.max and rule.unit == "tokens" and length > rule.max:
        # Tokens cannot be counted here, and the docs also publish the figure as a maximum length: past it, warn.
        problems.append(
            Problem(
                "prompt",
                f"prompt is {length} characters; {spec.id} accepts {rule.max} tokens (its docs also give "
                f"{rule.max} as the maximum length), so it may be refused. Shorten it if it is.",
                f"{length} characters",
                severity="warning",
            )
        )
    if not problems and length > MAX_PROMPT_CHARACTERS:
        problems.append(
            Problem(
                "prompt",
                f"prompt is {length} characters; no model takes more than {MAX_PROMPT_CHARACTERS}. Shorten it.",
                f"{length} characters",
                [f"<= {MAX_PROMPT_CHARACTERS} characters"],
            )
        )
    return problems


def _check_pixels(spec: ModelSpec, size: str, width: int, height: int) -> list[Problem]:
    assert spec.size is not None
    rule = spec.size.pixel
    ratios = spec.size.ratios
    if rule is None:
        close = _nearest_ratios(width, height, ratios)
        hint = f" Did you mean {' or '.join(repr(r) for r in close)}?" if close else ""
        return [
            Problem(
                "size",
                f"{spec.id} takes an aspect ratio, not pixel sizes.{hint} Allowed sizes: {_listing(ratios)}.",
                size,
                ratios,
            )
        ]
    allowed_text = ", ".join(ratios) + (" or " if ratios else "") + rule.describe()
    if rule.allowed:
        if f"{width}x{height}" in rule.allowed:
            return []
        return [
            Problem(
                "size",
                f"size {echo(size)} is not accepted by {spec.id}. Allowed: {allowed_text}.",
                size,
                ratios + rule.allowed,
            )
        ]
    reasons = []
    pixels = width * height
    if rule.min_pixels and pixels < rule.min_pixels:
        reasons.append(f"{pixels} pixels is below the minimum {rule.min_pixels}")
    if rule.max_pixels and pixels > rule.max_pixels:
        reasons.append(f"{pixels} pixels is above the maximum {rule.max_pixels}")
    for edge in (width, height):
        if rule.min_edge and edge < rule.min_edge:
            reasons.append(f"side {edge} is below {rule.min_edge} px")
        if rule.max_edge and edge > rule.max_edge:
            reasons.append(f"side {edge} is above {rule.max_edge} px")
        if rule.multiple_of and edge % rule.multiple_of:
            reasons.append(f"side {edge} is not a multiple of {rule.multiple_of}")
    if rule.max_aspect and max(width, height) / max(1, min(width, height)) > rule.max_aspect:
        reasons.append(f"aspect ratio exceeds {rule.max_aspect:g}:1")
    if not reasons:
        return []
    reasons = list(dict.fromkeys(reasons))
    return [
        Problem(
            "size",
            f"size {echo(size)} is not accepted by {spec.id}: {'; '.join(reasons)}. Allowed: {allowed_text}.",
            size,
            [*ratios, rule.describe()],
        )
    ]


def _check_size(spec: ModelSpec, size: str | None) -> list[Problem]:
    if size is None:
        return []
    if spec.size_field is None or spec.size is None:
        note = f" {spec.size.notes}" if spec.size is not None and spec.size.notes else ""
        return [Problem("size", f"{spec.id} has no size parameter; leave size empty.{note}", size, [])]
    ratios = spec.size.ratios
    if canonical_choice(size, ratios) is not None:
        return []
    match = PIXEL_SIZE.match(size)
    if match:
        return _check_pixels(spec, size, int(match.group(1)), int(match.group(2)))
    allowed = list(ratios) + ([spec.size.pixel.describe()] if spec.size.pixel else [])
    return [
        Problem(
            "size",
            f"size {echo(size)} is not accepted by {spec.id}.{_did_you_mean_size(size, ratios)} "
            f"Allowed: {_listing(allowed)}.",
            size,
            allowed,
        )
    ]


def _check_choice(spec: ModelSpec, param: str, value: str | None, allowed: list[str]) -> list[Problem]:
    if value is None:
        return []
    if not allowed:
        return [Problem(param, f"{spec.id} has no {param} parameter; leave {param} empty.", value, [])]
    if canonical_choice(value, allowed) is not None:
        return []
    return [
        Problem(
            param,
            f"{param} {echo(value)} is not accepted by {spec.id}.{_did_you_mean(value, allowed)} "
            f"Allowed: {', '.join(allowed)}.",
            value,
            allowed,
        )
    ]


def _check_tiers(spec: ModelSpec, req: GenerationRequest) -> list[Problem]:
    problems = _check_choice(spec, "quality", req.quality, spec.quality_values())
    problems += _check_choice(spec, "resolution", req.resolution, spec.resolution_values())
    tier_travels_as_quality = (
        spec.quality is None and spec.resolution is not None and spec.resolution.param == "quality"
    )
    tier = req.resolution if spec.resolution is not None and spec.resolution.param == "resolution" else None
    if tier_travels_as_quality:
        tier = req.quality if req.quality is not None else req.resolution
    ignored = spec.resolution.ignored_with if spec.resolution is not None else []
    size = (req.size or "").strip()
    size_kind = "auto" if size.lower() == "auto" else "pixels" if PIXEL_SIZE.match(size) else None
    # With auto the default tier is what upstream uses anyway: only another tier is lost.
    lost = size_kind == "pixels" or (
        spec.resolution is not None and canonical_choice(tier or "", [spec.resolution.default or ""]) is None
    )
    if tier is not None and size_kind in ignored and lost:
        assert spec.resolution is not None
        what = "size=auto" if size_kind == "auto" else "an explicit WxH size"
        problems.append(
            Problem(
                spec.resolution.param,
                f"{spec.resolution.param} {echo(tier)} is ignored by {spec.id} with {what}: the tier applies to "
                "ratio sizes only. Give a ratio (e.g. size='16:9') for the tier to take effect.",
                tier,
                severity="warning",
            )
        )
    if tier_travels_as_quality and req.quality is not None and req.resolution is not None:
        problems.append(
            Problem(
                "resolution",
                f"{spec.id} takes its resolution tier in `quality`; give quality or resolution, not both.",
                req.resolution,
                spec.resolution_values(),
            )
        )
    return problems


def _check_n(spec: ModelSpec, n: int | None) -> list[Problem]:
    if n is None:
        return []
    allowed = spec.n.allowed() if spec.n is not None else [1]
    if not isinstance(n, bool) and n in allowed:
        return []
    more = "" if spec.n is not None else " (it returns one image per request; send several requests for more)"
    contiguous = len(allowed) > 2 and allowed == list(range(allowed[0], allowed[-1] + 1))
    shown = f"{allowed[0]}-{allowed[-1]}" if contiguous else _listing(allowed)
    return [Problem("n", f"n={n} is not accepted by {spec.id}{more}. Allowed: {shown}.", n, allowed)]


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a malformed port
    except ValueError:
        return None
    return parts


def reference_kind(ref: str) -> Literal["url", "local", "data", "invalid"]:
    """What a reference string is: a public URL, a local file (path or file://), a data URL, or neither."""
    text = ref.strip()
    parts = _split(text)
    if parts is None:
        return "invalid"
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return "url" if parts.hostname else "invalid"
    if scheme == "data":
        return "data"
    if scheme == "file" or scheme == "" or (len(scheme) == 1 and text[1:3] in (":\\", ":/")):
        return "local" if text else "invalid"
    return "invalid"


def _check_reference(spec: ModelSpec, param: str, ref: str, allow_local: bool) -> list[Problem]:
    kind = reference_kind(ref)
    if kind == "url" or (kind == "local" and allow_local):
        formats = (spec.image_urls.formats if spec.image_urls else None) or []
        suffix = urlsplit(ref).path.rsplit(".", 1)[-1].lower() if "." in urlsplit(ref).path else ""
        if param == "image_urls" and formats and suffix in IMAGE_EXTENSIONS and suffix not in formats:
            return [
                Problem(
                    param,
                    f"{ref!r} looks like a .{suffix} file; {spec.id} documents {', '.join(formats)} only.",
                    ref,
                    formats,
                    severity="warning",
                )
            ]
        return []
    if kind == "data":
        why = "data: URLs are not accepted; upload the image with upload_file (base64_data) and use its file_url."
    elif kind == "local":
        why = "local files are not accepted here; upload it with upload_file and use its file_url."
    else:
        why = "expected a public http(s) URL" + (" or a local file path." if allow_local else ".")
    return [Problem(param, f"{param} entry {echo(ref)}: {why}", ref)]


def _check_images(spec: ModelSpec, req: GenerationRequest, allow_local: bool) -> list[Problem]:
    refs = req.image_urls
    rule = spec.image_urls
    problems: list[Problem] = []
    if rule is None:
        if refs:
            problems.append(
                Problem(
                    "image_urls",
                    f"{spec.id} takes no reference images; remove image_urls or pick a model "
                    "with image-to-image or edit in its modes (list_models).",
                    len(refs),
                    [],
                )
            )
    else:
        if rule.required and not refs:
            problems.append(
                Problem(
                    "image_urls",
                    f"{spec.id} needs at least {max(1, rule.min_items)} reference image(s) "
                    "in image_urls (URLs or local file paths).",
                    0,
                    [f"{max(1, rule.min_items)}-{rule.max_items}"],
                )
            )
        elif refs and len(refs) < rule.min_items:
            problems.append(
                Problem(
                    "image_urls",
                    f"{spec.id} needs at least {rule.min_items} reference images; got {len(refs)}.",
                    len(refs),
                    [f"{rule.min_items}-{rule.max_items}"],
                )
            )
        if len(refs) > rule.max_items:
            problems.append(
                Problem(
                    "image_urls",
                    f"{spec.id} accepts at most {rule.max_items} reference images; got {len(refs)}.",
                    len(refs),
                    [f"{rule.min_items}-{rule.max_items}"],
                )
            )
        elif rule.documented_max_items and len(refs) > rule.documented_max_items:
            problems.append(
                Problem(
                    "image_urls",
                    f"{len(refs)} reference images: {spec.id}'s docs page allows {rule.documented_max_items}, newer "
                    f"docs {rule.max_items}, so it may be refused. Sent as is.",
                    len(refs),
                    severity="warning",
                )
            )
        for ref in refs:
            problems += _check_reference(spec, "image_urls", ref, allow_local)
    if req.mask_url is not None:
        if not spec.mask_url:
            problems.append(
                Problem(
                    "mask_url",
                    f"{spec.id} takes no mask; pick a model with inpaint in its modes "
                    "(e.g. gpt-image-2), or leave mask_url empty.",
                    req.mask_url,
                    [],
                )
            )
        else:
            if not refs:
                problems.append(Problem("mask_url", "mask_url needs the image to edit in image_urls.", req.mask_url))
            problems += _check_reference(spec, "mask_url", req.mask_url, allow_local)
    return problems


def reference_size_problems(spec: ModelSpec, param: str, ref: str, size_bytes: int) -> list[Problem]:
    """A reference image's size against the model's limits: refused above the limit, warned above the documented
    figure where newer docs allow more."""
    rule = spec.image_urls
    if rule is None or param != "image_urls":
        return []
    megabytes = size_bytes / (1024 * 1024)
    if rule.max_mb and megabytes > rule.max_mb:
        return [
            Problem(
                param,
                f"{clip(ref)} is {megabytes:.1f} MB; {spec.id} accepts at most {rule.max_mb:g} MB per image. "
                "Resize or compress it.",
                ref,
                [f"<= {rule.max_mb:g} MB"],
            )
        ]
    if rule.documented_max_mb and megabytes > rule.documented_max_mb:
        return [
            Problem(
                param,
                f"{clip(ref)} is {megabytes:.1f} MB: {spec.id}'s docs page allows {rule.documented_max_mb:g} MB, "
                f"newer docs {rule.max_mb:g} MB, so it may be refused. Sent as is.",
                ref,
                severity="warning",
            )
        ]
    return []


def _private_host(host: str) -> bool:
    lowered = host.lower().rstrip(".").strip("[]")
    if lowered in ("localhost", "") or lowered.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        try:  # legacy spellings resolvers still accept: 127.1, 2130706433, 0x7f000001, 0177.0.0.1
            address = ipaddress.ip_address(socket.inet_aton(lowered))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global


def check_callback_url(url: str | None) -> list[Problem]:
    """callback_url as the API requires it: https, at most 2048 characters, a public host."""
    if url is None:
        return []
    parts = _split(url)
    if len(url) > MAX_CALLBACK_URL:
        return [
            Problem(
                "callback_url",
                f"callback_url is {len(url)} characters; at most {MAX_CALLBACK_URL}.",
                url[:80],
            )
        ]
    if parts is None or parts.scheme.lower() != "https" or not parts.hostname:
        return [Problem("callback_url", "callback_url must be an https:// URL.", url)]
    if _private_host(parts.hostname):
        return [
            Problem(
                "callback_url",
                "callback_url must point at a public host, not a private or loopback address.",
                url,
            )
        ]
    return []


def _number(value: float) -> str:
    """A bound as written in the docs: 2147483647, not 2.14748e+09; 1.1, not 1.100000."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _type_ok(rule: ExtraParamSpec, value: Any) -> bool:
    match rule.type:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, dict)
        case "array":
            return isinstance(value, list)
    return True


def _check_extra_value(spec: ModelSpec, key: str, rule: ExtraParamSpec, value: Any) -> list[Problem]:
    param = f"extra.{key}"
    if not _type_ok(rule, value):
        allowed = rule.enum or [rule.type]
        one_of = f" (one of: {', '.join(str(v) for v in rule.enum)})" if rule.enum else ""
        return [Problem(param, f"{param} must be {rule.type}{one_of}; got {echo(value)}.", value, allowed)]
    if rule.enum is not None and value not in rule.enum:
        choices = [str(v) for v in rule.enum]
        hint = _did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return [
            Problem(
                param,
                f"{param} {echo(value)} is not accepted by {spec.id}.{hint} Allowed: {', '.join(choices)}.",
                value,
                list(rule.enum),
            )
        ]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if is_number and ((rule.min is not None and value < rule.min) or (rule.max is not None and value > rule.max)):
        low = _number(rule.min) if rule.min is not None else None
        high = _number(rule.max) if rule.max is not None else None
        bounds = f"{low}-{high}" if low and high else f">= {low}" if low else f"<= {high}"
        return [
            Problem(
                param,
                f"{param}={clip(str(value))} is out of range for {spec.id}. Allowed: {bounds}.",
                value,
                [bounds],
            )
        ]
    if isinstance(value, str) and rule.max_length and len(value) > rule.max_length:
        return [
            Problem(
                param,
                f"{param} is {len(value)} characters; at most {rule.max_length}.",
                len(value),
                [f"<= {rule.max_length} characters"],
            )
        ]
    if isinstance(value, dict) and rule.required_fields:
        missing = [f for f in rule.required_fields if f not in value]
        if missing:
            return [
                Problem(
                    param,
                    f"{param} needs the fields {', '.join(rule.required_fields)}; missing {', '.join(missing)}.",
                    value,
                    rule.required_fields,
                )
            ]
    if isinstance(value, list) and rule.item_enums:
        for item in value:
            for name, choices in rule.item_enums.items():
                if not isinstance(item, dict) or item.get(name) not in choices:
                    listed = ", ".join(str(c) for c in choices)
                    return [
                        Problem(
                            param,
                            f"{param} items are objects whose {name!r} is one of: {listed}; got {echo(item)}.",
                            item,
                            list(choices),
                        )
                    ]
    return []


def _check_extra(spec: ModelSpec, extra: dict[str, Any]) -> list[Problem]:
    flat = {k: v for k, v in flatten_extra(extra).items() if v is not None}  # JSON null = not given
    problems = []
    known = list(spec.extra_params)
    for key, value in flat.items():
        key = clip(key)  # a caller's name, quoted back
        if key in OWN_PARAMETERS:
            problems.append(
                Problem(f"extra.{key}", f"{key} has its own parameter; pass it as {key}=..., not in extra.", value)
            )
            continue
        if key == "model_params":
            inner = sorted(k.removeprefix("model_params.") for k in known if k.startswith("model_params."))
            problems.append(
                Problem(
                    "extra.model_params",
                    "extra.model_params must be an object, e.g. "
                    f'{{"model_params": {{"{inner[0] if inner else "name"}": ...}}}}; '
                    f"{spec.id} takes: {', '.join(inner) or 'none'}.",
                    value,
                    inner,
                )
            )
            continue
        rule = spec.extra_params.get(key)
        if rule is None:
            short = {k.removeprefix("model_params."): k for k in known}
            hint = f" Did you mean {short[key]!r}?" if key in short else _did_you_mean(key, known)
            allowed_text = ", ".join(known) if known else "none"
            problems.append(
                Problem(
                    f"extra.{key}",
                    f"{spec.id} does not take extra.{key}.{hint} Extra parameters for {spec.id}: {allowed_text}.",
                    value,
                    known,
                )
            )
            continue
        problems += _check_extra_value(spec, key, rule, value)
    for key, rule in spec.extra_params.items():
        if rule.required and key not in flat:
            problems.append(
                Problem(
                    f"extra.{key}",
                    f"{spec.id} needs extra.{key} ({rule.type})"
                    + (" — the id of an earlier task whose image it works on." if key.endswith("task_id") else "."),
                    None,
                    rule.enum or [rule.type],
                )
            )
    return problems


def validate_request(spec: ModelSpec, req: GenerationRequest, *, allow_local_files: bool = True) -> list[Problem]:
    """Every problem with `req` for `spec`: errors (refuse before sending) and warnings (send anyway)."""
    return [
        *_check_prompt(spec, req.prompt),
        *_check_size(spec, req.size),
        *_check_tiers(spec, req),
        *_check_n(spec, req.n),
        *_check_images(spec, req, allow_local_files),
        *check_callback_url(req.callback_url),
        *_check_extra(spec, req.extra),
    ]


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def build_body(spec: ModelSpec, req: GenerationRequest) -> dict[str, Any]:
    """The JSON body for POST /v1/images/generations; `req` must have passed validate_request."""
    body: dict[str, Any] = {"model": spec.id}
    if req.prompt and spec.takes_prompt:
        body["prompt"] = req.prompt
    if req.size is not None and spec.size_field and spec.size is not None:
        pixels = PIXEL_SIZE.match(req.size)
        # The service documents `WxH`: send '1024 × 1024' or '1024*1024' as '1024x1024'.
        body[spec.size_field] = canonical_choice(req.size, spec.size.ratios) or (
            f"{int(pixels.group(1))}x{int(pixels.group(2))}" if pixels else req.size.strip()
        )
    if req.quality is not None:
        body["quality"] = canonical_choice(req.quality, spec.quality_values()) or req.quality
    if req.resolution is not None and spec.resolution is not None:
        body[spec.resolution.param] = canonical_choice(req.resolution, spec.resolution.values) or req.resolution
    if req.n is not None and spec.n is not None:
        body["n"] = req.n
    if req.image_urls:
        body["image_urls"] = list(req.image_urls)
    if req.mask_url is not None:
        body["mask_url"] = req.mask_url
    if req.callback_url is not None:
        body["callback_url"] = req.callback_url
    for key, value in flatten_extra(req.extra).items():
        if value is None:
            continue
        if key.startswith("model_params."):
            body.setdefault("model_params", {})[key.removeprefix("model_params.")] = value
        else:
            body[key] = value
    return body
