"""validate_request against every catalog model: a request built from the model's own spec passes, and
each kind of mistake comes back as a Problem naming the parameter, the value and the allowed values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from evolink_mcp.catalog import (
    GenerationRequest,
    ModelSpec,
    Problem,
    build_body,
    check_callback_url,
    errors_only,
    load_catalog,
    reference_kind,
    resolve_model,
    validate_request,
)
from evolink_mcp.catalog.spec import ExtraParamSpec, PixelRule
from evolink_mcp.catalog.validation import PIXEL_SIZE

CATALOG = load_catalog()
PROMPT = "A red fox curled up in fresh snow, soft morning light"


def image(i: int = 0) -> str:
    return f"https://cdn.example.com/refs/photo-{i}.png"


def models(where: Callable[[ModelSpec], bool]) -> pytest.MarkDecorator:
    """Parametrize over the catalog models `where` selects (never none: an empty set would test nothing)."""
    chosen = [m for m in CATALOG.models if where(m)]
    assert chosen, "no model in the catalog fits this test"
    return pytest.mark.parametrize("spec", chosen, ids=[m.id for m in chosen])


def extras(where: Callable[[ExtraParamSpec], bool]) -> pytest.MarkDecorator:
    """Parametrize over (model, extra parameter) pairs whose rule `where` selects."""
    chosen = [(m, k, r) for m in CATALOG.models for k, r in m.extra_params.items() if where(r)]
    assert chosen, "no extra parameter in the catalog fits this test"
    return pytest.mark.parametrize(("spec", "key", "rule"), chosen, ids=[f"{m.id}:{k}" for m, k, _ in chosen])


def accepted_value(rule: ExtraParamSpec) -> Any:
    """A value the rule accepts."""
    if rule.enum:
        return rule.enum[0]
    if rule.default is not None:
        return rule.default
    return {
        "string": "task-unified-1757165031-uyujaw3d",
        "integer": int(rule.min or 0) + 1,
        "number": rule.min if rule.min is not None else 1.0,
        "boolean": True,
        "object": dict.fromkeys(rule.required_fields or [], 64),
        "array": [],
    }[rule.type]


def wrongly_typed_value(rule: ExtraParamSpec) -> Any:
    return {
        "string": 7,
        "integer": "7",
        "number": "1.5",
        "boolean": "yes",
        "object": "width=64",
        "array": "web_search",
    }[rule.type]


def pixel_size_within(rule: PixelRule) -> str:
    if rule.allowed:
        return rule.allowed[0]
    step = rule.multiple_of or 8
    for side in range(step, 8193, step):
        edges_ok = (rule.min_edge or 0) <= side <= (rule.max_edge or side)
        pixels_ok = (rule.min_pixels or 0) <= side * side <= (rule.max_pixels or side * side)
        if edges_ok and pixels_ok:
            return f"{side}x{side}"
    raise AssertionError(f"no square size fits {rule}")


def pixel_size_outside(rule: PixelRule) -> str:
    if rule.allowed:
        assert "1000x1000" not in rule.allowed
        return "1000x1000"
    if rule.max_pixels or rule.max_edge:
        return "99999x99999"
    assert rule.min_pixels or rule.min_edge, "a pixel rule without any bound"
    return "16x16"


def valid_request(spec: ModelSpec) -> GenerationRequest:
    """The request a careful caller builds from the model's own spec."""
    req = GenerationRequest()
    if spec.takes_prompt:
        req.prompt = PROMPT
    if spec.size_field and spec.size is not None:
        ratios = spec.size.ratios
        if spec.size.default:
            req.size = spec.size.default
        elif ratios:
            req.size = ratios[0]
        else:
            assert spec.size.pixel is not None
            req.size = pixel_size_within(spec.size.pixel)
    if spec.quality is not None:
        req.quality = spec.quality.default or spec.quality.values[0]
    pixels = req.size is not None and PIXEL_SIZE.match(req.size) is not None
    if spec.resolution is not None and not (pixels and "pixels" in spec.resolution.ignored_with):
        req.resolution = spec.resolution.default or spec.resolution.values[0]
    if spec.n is not None:
        req.n = spec.n.allowed()[-1]
    if spec.image_urls is not None and spec.image_urls.required:
        req.image_urls = [image(i) for i in range(max(1, spec.image_urls.min_items))]
    req.extra = {key: accepted_value(rule) for key, rule in spec.extra_params.items() if rule.required}
    return req


def error_for(problems: list[Problem], param: str) -> Problem:
    errors = [p for p in errors_only(problems) if p.param == param]
    assert errors, f"no error for {param!r} among {problems}"
    return errors[0]


def listing(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values)


def integer_ratio(ratios: list[str]) -> tuple[int, int]:
    """A ratio from the list as two whole numbers, preferring 16:9."""
    whole = [r for r in ratios if ":" in r and r.replace(":", "").isdigit() and r != "1:1"]
    a, b = ("16:9" if "16:9" in whole else whole[0]).split(":")
    return int(a), int(b)


def takes_ratios(m: ModelSpec) -> bool:
    return m.size_field is not None and m.size is not None and bool(m.size.ratios)


def pixel_rule(m: ModelSpec) -> PixelRule | None:
    return m.size.pixel if m.size_field is not None and m.size is not None else None


# --- valid requests -----------------------------------------------------------------------------


@models(lambda m: True)
def test_a_request_built_from_the_models_own_spec_passes_without_problems(spec: ModelSpec) -> None:
    assert validate_request(spec, valid_request(spec)) == []


@extras(lambda r: r.default is not None)
def test_the_documented_default_of_every_extra_parameter_is_accepted(
    spec: ModelSpec, key: str, rule: ExtraParamSpec
) -> None:
    req = valid_request(spec)
    req.extra[key] = rule.default
    assert validate_request(spec, req) == []


@models(lambda m: m.image_urls is not None)
def test_as_many_reference_images_as_the_model_takes_are_accepted(spec: ModelSpec) -> None:
    assert spec.image_urls is not None
    req = valid_request(spec)
    req.image_urls = [image(i) for i in range(spec.image_urls.max_items)]
    assert errors_only(validate_request(spec, req)) == []


@models(lambda m: pixel_rule(m) is not None)
def test_a_pixel_size_within_the_rule_is_accepted(spec: ModelSpec) -> None:
    rule = pixel_rule(spec)
    assert rule is not None
    req = valid_request(spec)
    req.size = pixel_size_within(rule)
    if spec.resolution is not None and "pixels" in spec.resolution.ignored_with:
        req.resolution = None  # a careful caller gives no tier with a pixel size: it would be ignored
    assert validate_request(spec, req) == []


@models(lambda m: m.mask_url)
def test_a_mask_with_the_image_it_masks_is_accepted(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.image_urls, req.mask_url = [image()], "https://cdn.example.com/refs/mask.png"
    assert validate_request(spec, req) == []


def test_choices_are_matched_whatever_their_case() -> None:
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    req = GenerationRequest(prompt=PROMPT, size="AUTO", quality="HIGH", resolution="1k")
    assert validate_request(spec, req) == []


# --- sizes --------------------------------------------------------------------------------------


@models(takes_ratios)
def test_an_unknown_size_is_refused_with_every_allowed_size_listed(spec: ModelSpec) -> None:
    assert spec.size is not None
    req = valid_request(spec)
    req.size = "widescreen"
    problem = error_for(validate_request(spec, req), "size")
    assert problem.value == "widescreen"
    assert listing(spec.size.ratios) in problem.message
    assert set(spec.size.ratios) <= set(problem.allowed or [])


@models(lambda m: takes_ratios(m) and m.size is not None and "16:9" in m.size.ratios)
def test_16_10_is_refused_with_a_did_you_mean_that_offers_16_9(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.size = "16:10"
    message = error_for(validate_request(spec, req), "size").message
    assert "Did you mean" in message
    assert "'16:9'" in message.split("Did you mean", 1)[1].split("?", 1)[0]


@models(takes_ratios)
def test_a_ratio_written_with_a_slash_gets_the_same_ratio_as_did_you_mean(spec: ModelSpec) -> None:
    assert spec.size is not None
    a, b = integer_ratio(spec.size.ratios)
    req = valid_request(spec)
    req.size = f"{a}/{b}"
    assert f"Did you mean '{a}:{b}'?" in error_for(validate_request(spec, req), "size").message


@models(lambda m: takes_ratios(m) and pixel_rule(m) is None)
def test_pixels_on_a_ratio_only_model_suggest_the_ratio_of_the_same_shape(spec: ModelSpec) -> None:
    assert spec.size is not None
    a, b = integer_ratio(spec.size.ratios)
    for size in (f"{a}x{b}", f"{a * 120}x{b * 120}"):
        req = valid_request(spec)
        req.size = size
        problem = error_for(validate_request(spec, req), "size")
        assert f"Did you mean '{a}:{b}'?" in problem.message
        assert listing(spec.size.ratios) in problem.message


@models(lambda m: pixel_rule(m) is not None)
def test_a_pixel_size_out_of_bounds_is_refused_with_the_rule_described(spec: ModelSpec) -> None:
    rule = pixel_rule(spec)
    assert rule is not None
    req = valid_request(spec)
    req.size = pixel_size_outside(rule)
    problem = error_for(validate_request(spec, req), "size")
    assert problem.value == req.size
    assert (listing(rule.allowed) if rule.allowed else rule.describe()) in problem.message


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ("1000x1008", "multiple of 16"),
        ("3840x640", "aspect ratio exceeds 3:1"),
        ("4096x1536", "above 3840 px"),
        ("512x512", "below the minimum 655360"),
        ("3840x3840", "above the maximum 8294400"),
    ],
)
def test_gpt_image_2_refuses_a_pixel_size_saying_which_bound_it_breaks(size: str, reason: str) -> None:
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    problem = error_for(validate_request(spec, GenerationRequest(prompt=PROMPT, size=size)), "size")
    assert reason in problem.message


@models(lambda m: m.size_field is None)
def test_a_size_on_a_model_without_a_size_parameter_is_refused(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.size = "1:1"
    assert "no size parameter" in error_for(validate_request(spec, req), "size").message


# --- quality and resolution ----------------------------------------------------------------------


@models(lambda m: bool(m.quality_values()))
def test_a_quality_outside_the_list_is_refused_with_every_allowed_value_listed(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.resolution, req.quality = None, "ultra"
    problem = error_for(validate_request(spec, req), "quality")
    assert problem.value == "ultra"
    assert listing(spec.quality_values()) in problem.message


@models(lambda m: bool(m.resolution_values()))
def test_a_resolution_outside_the_list_is_refused_with_every_allowed_value_listed(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.resolution = "8K"
    problem = error_for(validate_request(spec, req), "resolution")
    assert problem.value == "8K"
    assert listing(spec.resolution_values()) in problem.message


@models(lambda m: not m.quality_values())
def test_a_quality_on_a_model_without_one_is_refused(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.quality = "high"
    assert "no quality parameter" in error_for(validate_request(spec, req), "quality").message


@models(lambda m: not m.resolution_values())
def test_a_resolution_on_a_model_without_one_is_refused(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.resolution = "2K"
    assert "no resolution parameter" in error_for(validate_request(spec, req), "resolution").message


def test_a_tier_given_both_as_quality_and_resolution_is_refused_where_it_travels_as_quality() -> None:
    spec = CATALOG.get("gemini-3.1-flash-image-preview")
    assert spec is not None
    req = GenerationRequest(prompt=PROMPT, quality="2K", resolution="4K")
    assert "not both" in error_for(validate_request(spec, req), "resolution").message


# --- n ------------------------------------------------------------------------------------------


@models(lambda m: True)
def test_n_outside_the_range_is_refused_with_the_allowed_counts_listed(spec: ModelSpec) -> None:
    allowed = spec.n.allowed() if spec.n is not None else [1]
    for n in (0, max(allowed) + 1):
        req = valid_request(spec)
        req.n = n
        problem = error_for(validate_request(spec, req), "n")
        assert problem.value == n
        assert problem.allowed == allowed
        contiguous = len(allowed) > 2 and allowed == list(range(allowed[0], allowed[-1] + 1))
        shown = f"{allowed[0]}-{allowed[-1]}" if contiguous else listing(allowed)
        assert f"Allowed: {shown}." in problem.message


def test_gpt_4o_image_refuses_a_count_between_its_documented_values() -> None:
    spec = CATALOG.get("gpt-4o-image")
    assert spec is not None
    assert "Allowed: 1, 2, 4." in error_for(validate_request(spec, GenerationRequest(PROMPT, n=3)), "n").message


# --- reference images and masks -----------------------------------------------------------------


@models(lambda m: m.image_urls is not None)
def test_more_reference_images_than_the_model_takes_are_refused(spec: ModelSpec) -> None:
    assert spec.image_urls is not None
    req = valid_request(spec)
    req.image_urls = [image(i) for i in range(spec.image_urls.max_items + 1)]
    problem = error_for(validate_request(spec, req), "image_urls")
    assert f"at most {spec.image_urls.max_items} reference images" in problem.message


@models(lambda m: m.image_urls is not None and m.image_urls.required)
def test_a_model_that_needs_reference_images_refuses_a_request_without_them(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.image_urls = []
    problem = error_for(validate_request(spec, req), "image_urls")
    assert "needs at least" in problem.message


@models(lambda m: m.image_urls is None)
def test_reference_images_on_a_model_that_takes_none_are_refused(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.image_urls = [image()]
    assert "takes no reference images" in error_for(validate_request(spec, req), "image_urls").message


@models(lambda m: not m.mask_url)
def test_a_mask_on_a_model_without_mask_support_is_refused(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.mask_url = "https://cdn.example.com/refs/mask.png"
    assert "takes no mask" in error_for(validate_request(spec, req), "mask_url").message


def test_a_mask_without_the_image_it_masks_is_refused() -> None:
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    req = GenerationRequest(prompt=PROMPT, mask_url="https://cdn.example.com/refs/mask.png")
    assert "image_urls" in error_for(validate_request(spec, req), "mask_url").message


@pytest.mark.parametrize("param", ["image_urls", "mask_url"])
def test_a_data_url_is_refused_with_a_pointer_to_upload_file(param: str) -> None:
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    data_url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
    req = GenerationRequest(prompt=PROMPT, image_urls=[image()])
    if param == "image_urls":
        req.image_urls = [data_url]
    else:
        req.mask_url = data_url
    problem = error_for(validate_request(spec, req), param)
    assert "data: URLs are not accepted" in problem.message
    assert "upload_file" in problem.message


def test_a_local_file_is_accepted_only_where_local_files_are_allowed() -> None:
    spec = CATALOG.default
    req = GenerationRequest(prompt=PROMPT, image_urls=["/home/me/photo.png"])
    assert validate_request(spec, req) == []
    problem = error_for(validate_request(spec, req, allow_local_files=False), "image_urls")
    assert "upload_file" in problem.message


def test_a_reference_in_an_undocumented_format_only_warns() -> None:
    spec = CATALOG.default
    problems = validate_request(spec, GenerationRequest(prompt=PROMPT, image_urls=["https://x.example/a.gif"]))
    assert errors_only(problems) == []
    assert [(p.param, p.severity) for p in problems] == [("image_urls", "warning")]


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("https://cdn.example.com/a.png", "url"),
        ("http://cdn.example.com/a.png", "url"),
        ("https:///a.png", "invalid"),
        ("data:image/png;base64,AAAA", "data"),
        ("/home/me/a.png", "local"),
        ("file:///home/me/a.png", "local"),
        ("C:\\Users\\me\\a.png", "local"),
        ("ftp://example.com/a.png", "invalid"),
        ("", "invalid"),
    ],
)
def test_a_reference_is_told_apart_as_url_local_file_data_url_or_neither(ref: str, kind: str) -> None:
    assert reference_kind(ref) == kind


# --- extra parameters ---------------------------------------------------------------------------


@models(lambda m: True)
def test_an_unknown_extra_parameter_is_refused_with_the_models_extras_listed(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.extra["sharpness"] = 3
    problem = error_for(validate_request(spec, req), "extra.sharpness")
    assert problem.value == 3
    assert f"Extra parameters for {spec.id}: {listing(list(spec.extra_params)) or 'none'}." in problem.message


def test_an_extra_named_without_its_model_params_prefix_gets_a_did_you_mean() -> None:
    req = GenerationRequest(prompt=PROMPT, extra={"thinking_level": "high"})
    problem = error_for(validate_request(CATALOG.default, req), "extra.thinking_level")
    assert "Did you mean 'model_params.thinking_level'?" in problem.message


def test_a_parameter_of_its_own_is_refused_inside_extra() -> None:
    req = GenerationRequest(prompt=PROMPT, extra={"size": "16:9"})
    assert "size=" in error_for(validate_request(CATALOG.default, req), "extra.size").message


@extras(lambda r: bool(r.enum))
def test_an_extra_value_outside_its_enum_is_refused_with_the_choices_listed(
    spec: ModelSpec, key: str, rule: ExtraParamSpec
) -> None:
    assert rule.enum is not None
    wrong: Any = 99 if rule.type == "integer" else "not-a-choice"
    req = valid_request(spec)
    req.extra[key] = wrong
    problem = error_for(validate_request(spec, req), f"extra.{key}")
    assert problem.value == wrong
    assert f"Allowed: {listing(rule.enum)}." in problem.message


@extras(lambda r: r.min is not None or r.max is not None)
def test_an_extra_value_outside_its_range_is_refused_with_the_bounds(
    spec: ModelSpec, key: str, rule: ExtraParamSpec
) -> None:
    step = 1 if rule.type == "integer" else 0.05
    outside = []
    if rule.min is not None:
        outside.append(rule.min - step)
    if rule.max is not None:
        outside.append(rule.max + step)
    for value in outside:
        req = valid_request(spec)
        req.extra[key] = int(value) if rule.type == "integer" else value
        problem = error_for(validate_request(spec, req), f"extra.{key}")
        for bound in (rule.min, rule.max):
            if bound is not None:
                assert (str(int(bound)) if bound == int(bound) else str(bound)) in problem.message


@extras(lambda r: True)
def test_an_extra_value_of_the_wrong_type_is_refused_naming_the_type(
    spec: ModelSpec, key: str, rule: ExtraParamSpec
) -> None:
    req = valid_request(spec)
    req.extra[key] = wrongly_typed_value(rule)
    problem = error_for(validate_request(spec, req), f"extra.{key}")
    assert f"must be {rule.type}" in problem.message
    if rule.enum:
        assert listing(rule.enum) in problem.message


@extras(lambda r: r.required)
def test_a_missing_required_extra_is_refused(spec: ModelSpec, key: str, rule: ExtraParamSpec) -> None:
    req = valid_request(spec)
    del req.extra[key]
    problem = error_for(validate_request(spec, req), f"extra.{key}")
    assert f"needs extra.{key} ({rule.type})" in problem.message


@extras(lambda r: bool(r.required_fields))
def test_an_object_extra_missing_a_field_is_refused_with_the_fields_listed(
    spec: ModelSpec, key: str, rule: ExtraParamSpec
) -> None:
    assert rule.required_fields is not None
    req = valid_request(spec)
    req.extra[key] = {rule.required_fields[0]: 64}
    problem = error_for(validate_request(spec, req), f"extra.{key}")
    assert listing(rule.required_fields) in problem.message


@extras(lambda r: bool(r.item_enums))
def test_an_array_item_outside_its_enum_is_refused_with_the_choices_listed(
    spec: ModelSpec, key: str, rule: ExtraParamSpec
) -> None:
    assert rule.item_enums is not None
    field, choices = next(iter(rule.item_enums.items()))
    req = valid_request(spec)
    req.extra[key] = [{field: choices[0]}]
    assert validate_request(spec, req) == []
    for item in ({field: "not-a-choice"}, choices[0]):
        req.extra[key] = [item]
        assert listing(choices) in error_for(validate_request(spec, req), f"extra.{key}").message


def test_model_params_may_be_given_nested_or_dotted() -> None:
    nested = GenerationRequest(prompt=PROMPT, extra={"model_params": {"thinking_level": "sometimes"}})
    dotted = GenerationRequest(prompt=PROMPT, extra={"model_params.thinking_level": "sometimes"})
    assert validate_request(CATALOG.default, nested) == validate_request(CATALOG.default, dotted)
    assert error_for(validate_request(CATALOG.default, nested), "extra.model_params.thinking_level")


# --- prompts ------------------------------------------------------------------------------------


def counts_characters(m: ModelSpec) -> bool:
    return m.prompt is not None and m.prompt.max is not None and m.prompt.unit in ("characters", "code points")


@models(counts_characters)
def test_a_prompt_over_a_character_limit_is_refused_and_one_at_the_limit_is_not(spec: ModelSpec) -> None:
    assert spec.prompt is not None and spec.prompt.max is not None
    req = valid_request(spec)
    req.prompt = "a" * spec.prompt.max
    assert validate_request(spec, req) == []
    req.prompt += "a"
    problem = error_for(validate_request(spec, req), "prompt")
    assert f"at most {spec.prompt.max}" in problem.message


@models(lambda m: m.prompt is not None and m.prompt.max_bytes_utf8 is not None)
def test_a_prompt_over_the_newer_utf8_byte_cap_is_sent_with_a_warning(spec: ModelSpec) -> None:
    assert spec.prompt is not None and spec.prompt.max_bytes_utf8 is not None
    req = valid_request(spec)
    req.prompt = "€" * (spec.prompt.max_bytes_utf8 // 3 + 1)
    assert spec.prompt.max is None or len(req.prompt) <= spec.prompt.max
    problems = validate_request(spec, req)
    assert errors_only(problems) == []
    assert [(p.param, p.severity) for p in problems] == [("prompt", "warning")]
    assert f"{spec.prompt.max_bytes_utf8} bytes" in problems[0].message


@models(lambda m: m.prompt is not None and m.prompt.unit == "tokens" and m.prompt.max is not None)
def test_a_prompt_over_a_token_limit_only_warns(spec: ModelSpec) -> None:
    assert spec.prompt is not None and spec.prompt.max is not None
    req = valid_request(spec)
    req.prompt = "fox " * (spec.prompt.max * 2)
    problems = validate_request(spec, req)
    assert errors_only(problems) == []
    assert [(p.param, p.severity) for p in problems] == [("prompt", "warning")]
    assert f"{spec.prompt.max} tokens" in problems[0].message


@models(lambda m: m.prompt is not None and m.prompt.required)
def test_a_missing_prompt_is_refused_where_one_is_required(spec: ModelSpec) -> None:
    for prompt in (None, "   "):
        req = valid_request(spec)
        req.prompt = prompt
        assert "prompt is required" in error_for(validate_request(spec, req), "prompt").message


@models(lambda m: m.prompt is None)
def test_a_prompt_for_a_model_that_takes_none_is_refused(spec: ModelSpec) -> None:
    req = valid_request(spec)
    req.prompt = PROMPT
    assert "takes no prompt" in error_for(validate_request(spec, req), "prompt").message


# --- callback_url -------------------------------------------------------------------------------


def callback_url_of_length(length: int) -> str:
    url = "https://hooks.example.com/"
    return url + "a" * (length - len(url))


def test_a_public_https_callback_url_is_accepted() -> None:
    assert check_callback_url("https://hooks.example.com/evolink?job=42") == []
    assert check_callback_url(None) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://hooks.example.com/evolink", "https://"),
        ("hooks.example.com/evolink", "https://"),
        ("https://localhost:8443/hook", "public host"),
        ("https://127.0.0.1/hook", "public host"),
        ("https://[::1]/hook", "public host"),
        ("https://10.0.0.5/hook", "public host"),
        ("https://192.168.1.20/hook", "public host"),
        ("https://169.254.169.254/latest/meta-data", "public host"),
        ("https://printer.local/hook", "public host"),
        (callback_url_of_length(2049), "at most 2048"),
    ],
    ids=[
        "http",
        "no scheme",
        "localhost",
        "ipv4 loopback",
        "ipv6 loopback",
        "10/8",
        "192.168/16",
        "link-local metadata",
        "mdns",
        "too long",
    ],
)
def test_a_callback_url_that_is_not_public_https_within_2048_characters_is_refused(url: str, expected: str) -> None:
    req = GenerationRequest(prompt=PROMPT, callback_url=url)
    problem = error_for(validate_request(CATALOG.default, req), "callback_url")
    assert expected in problem.message


def test_a_callback_url_of_exactly_2048_characters_is_accepted() -> None:
    assert check_callback_url(callback_url_of_length(2048)) == []


# --- model resolution ---------------------------------------------------------------------------


def test_no_model_name_means_the_default_model() -> None:
    assert resolve_model(CATALOG, None) is CATALOG.default
    assert resolve_model(CATALOG, "  ") is CATALOG.default


def test_an_alias_resolves_to_the_model_with_its_canonical_id() -> None:
    spec = resolve_model(CATALOG, "nano-banana-pro")
    assert isinstance(spec, ModelSpec) and spec.id == "gemini-3-pro-image-preview"


def test_an_unknown_model_is_a_problem_with_a_did_you_mean_and_the_ids_listed() -> None:
    problem = resolve_model(CATALOG, "gpt-image2")
    assert isinstance(problem, Problem)
    assert problem.param == "model" and problem.value == "gpt-image2"
    assert "Did you mean 'gpt-image-2'" in problem.message
    assert all(model_id in problem.message for model_id in CATALOG.ids)


# --- the wire body ------------------------------------------------------------------------------


@models(lambda m: True)
def test_the_body_of_a_valid_request_carries_each_value_in_the_models_own_wire_field(spec: ModelSpec) -> None:
    req = valid_request(spec)
    body = build_body(spec, req)
    assert body["model"] == spec.id
    assert body.get("prompt") == req.prompt
    if spec.size_field:
        assert body[spec.size_field] == req.size
    if spec.quality is not None:
        assert body["quality"] == req.quality
    if spec.resolution is not None:
        assert body[spec.resolution.param] == req.resolution
    assert body.get("n") == req.n
    for key, value in req.extra.items():
        if key.startswith("model_params."):
            assert body["model_params"][key.removeprefix("model_params.")] == value
        else:
            assert body[key] == value


def test_a_tier_that_travels_as_quality_goes_in_quality_with_canonical_case() -> None:
    spec = CATALOG.get("gemini-3.1-flash-image-preview")
    assert spec is not None
    for req in (GenerationRequest(PROMPT, resolution="2k"), GenerationRequest(PROMPT, quality="2k")):
        assert validate_request(spec, req) == []
        body = build_body(spec, req)
        assert body["quality"] == "2K"
        assert "resolution" not in body


def test_gpt_image_2_sends_its_tier_in_resolution_and_its_render_level_in_quality() -> None:
    spec = CATALOG.get("gpt-image-2")
    assert spec is not None
    body = build_body(spec, GenerationRequest(PROMPT, size="16:9", quality="High", resolution="4k"))
    assert body == {
        "model": "gpt-image-2",
        "prompt": PROMPT,
        "size": "16:9",
        "quality": "high",
        "resolution": "4K",
    }


def test_model_params_extras_are_nested_and_other_extras_stay_top_level() -> None:
    gemini = CATALOG.default
    req = GenerationRequest(PROMPT, extra={"model_params.thinking_level": "high", "model_params": {"web_search": True}})
    assert validate_request(gemini, req) == []
    assert build_body(gemini, req)["model_params"] == {"thinking_level": "high", "web_search": True}
    qwen = CATALOG.get("qwen-image-3.0")
    assert qwen is not None
    body = build_body(qwen, GenerationRequest(PROMPT, extra={"seed": 7, "watermark": False}))
    assert (body["seed"], body["watermark"]) == (7, False)
    assert "model_params" not in body


@pytest.mark.parametrize("size", ["1024 × 1536", "1024*1536", "1024X1536", " 1024x1536 "])
def test_a_pixel_size_is_sent_as_plain_wxh(size: str) -> None:
    spec = CATALOG.get("gpt-image-1")
    assert spec is not None
    req = GenerationRequest(PROMPT, size=size)
    assert validate_request(spec, req) == []
    assert build_body(spec, req)["size"] == "1024x1536"


def test_an_alias_is_sent_upstream_as_the_canonical_id() -> None:
    spec = resolve_model(CATALOG, "nano-banana-pro")
    assert isinstance(spec, ModelSpec)
    assert build_body(spec, GenerationRequest(PROMPT))["model"] == "gemini-3-pro-image-preview"


def test_a_body_leaves_out_what_the_caller_did_not_give() -> None:
    assert build_body(CATALOG.default, GenerationRequest(PROMPT)) == {
        "model": "gemini-3.1-flash-image-preview",
        "prompt": PROMPT,
    }
