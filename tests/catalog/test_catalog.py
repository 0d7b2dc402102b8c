"""The shipped catalog: every Evolink image model with its facts, lookup by id or alias, the default
model, and the user's own catalog file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from evolink_mcp.catalog import (
    DEFAULT_MODEL,
    CatalogError,
    GenerationRequest,
    ModelSpec,
    errors_only,
    load_catalog,
    validate_request,
)

CATALOG = load_catalog()
SHIPPED: list[dict[str, Any]] = json.loads(
    resources.files("evolink_mcp.catalog").joinpath("models.json").read_text("utf-8")
)["models"]
# The facts the catalog is derived from; it lives beside the project, not in it.
SOURCE = Path("/work/shared/evolink-image-models.json")
needs_source = pytest.mark.skipif(not SOURCE.is_file(), reason=f"{SOURCE} is not here")

# The models named by the seed documents (their `seeds` list is non-empty in the source JSON).
SEED_MODEL_IDS = [
    "doubao-seededit-3.0-i2i",
    "doubao-seededit-4.0-i2i",
    "doubao-seedream-3.0-t2i",
    "doubao-seedream-4.0",
    "doubao-seedream-4.5",
    "gemini-2.5-flash-image",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
    "gpt-4o-image",
    "gpt-image-1",
    "gpt-image-1.5",
    "gpt-image-1.5-lite",
    "gpt-image-2",
    "nano-banana-2-lite",
    "qwen-image-edit",
    "qwen-image-edit-plus",
    "wan2.5-i2i-preview",
    "wan2.5-image-to-image",
    "wan2.5-t2i-preview",
    "wan2.5-text-to-image",
    "z-image-turbo",
]
# evolink-api.md, "Uncertain points": seed-listed models without a current docs page.
SEED_ONLY_IDS = {
    "gpt-image-1",
    "gpt-image-1.5-lite",
    "gpt-4o-image",
    "gemini-2.5-flash-image",
    "doubao-seedream-3.0-t2i",
    "doubao-seededit-3.0-i2i",
    "doubao-seededit-4.0-i2i",
    "wan2.5-i2i-preview",
    "wan2.5-t2i-preview",
    "nano-banana-2-lite",  # the source JSON records it from the seed documents only, with no page of its own
}
# Fields the catalog may add to or reword from the source: provenance and prose, never limits.
NOT_FACTS = {"notes", "seeds", "aliases", "from_description"}


def drift(source: Any, shipped: Any, where: str) -> list[str]:
    """Where `shipped` changes a fact of `source`. The catalog may add keys (e.g. documented size tables) and
    reword notes, never change a value the source gives."""
    if isinstance(source, dict) and isinstance(shipped, dict):
        return [
            found
            for key in source.keys() - NOT_FACTS
            for found in drift(source[key], shipped.get(key), f"{where}.{key}")
        ]
    return [] if source == shipped else [where]


def source_models() -> list[dict[str, Any]]:
    return json.loads(SOURCE.read_text("utf-8"))["models"]


every_model = pytest.mark.parametrize("spec", CATALOG.models, ids=CATALOG.ids)


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), "utf-8")
    return path


# --- coverage of the source -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEED_MODEL_IDS)
def test_every_model_the_seed_documents_name_is_found_by_get(name: str) -> None:
    assert CATALOG.get(name) is not None


@needs_source
def test_the_seed_model_list_matches_the_source_json() -> None:
    assert sorted(m["id"] for m in source_models() if m["seeds"]) == sorted(SEED_MODEL_IDS)


@needs_source
def test_every_model_in_the_source_json_is_a_catalog_model_or_an_alias_of_one() -> None:
    missing = [m["id"] for m in source_models() if CATALOG.get(m["id"]) is None]
    assert missing == []


@needs_source
def test_a_model_that_keeps_its_source_id_keeps_every_documented_limit() -> None:
    shipped = {m["id"]: m for m in SHIPPED}
    drifted = [
        found
        for source in source_models()
        if source["id"] in shipped
        for found in drift(source, shipped[source["id"]], source["id"])
    ]
    assert drifted == []


@needs_source
def test_a_seed_id_that_became_an_alias_keeps_its_seed_references() -> None:
    for source in source_models():
        spec = CATALOG.get(source["id"])
        assert spec is not None
        assert set(source["seeds"]) <= set(spec.seeds), source["id"]


def test_the_models_without_a_docs_page_are_marked_as_known_from_the_seeds_only() -> None:
    assert {m.id for m in CATALOG.models if m.documented == "seeds"} == SEED_ONLY_IDS
    assert all(m.docs is None for m in CATALOG.models if m.documented == "seeds")
    assert all(m.docs for m in CATALOG.models if m.documented == "docs")


# --- the facts of every model -------------------------------------------------------------------


@every_model
def test_every_model_has_a_title_modes_and_a_beta_flag(spec: ModelSpec) -> None:
    assert spec.title.strip()
    assert spec.modes
    assert isinstance(spec.beta, bool)


@every_model
def test_a_prompt_limit_always_says_what_it_counts(spec: ModelSpec) -> None:
    if spec.prompt is not None and spec.prompt.max is not None:
        assert spec.prompt.unit in ("characters", "code points", "tokens")


@every_model
def test_every_documented_default_is_one_of_the_allowed_values(spec: ModelSpec) -> None:
    if spec.size is not None and spec.size.default is not None:
        assert spec.size.default in spec.size.ratios
    for tier in (spec.quality, spec.resolution):
        if tier is not None:
            assert tier.values
            assert tier.default is None or tier.default in tier.values
    if spec.n is not None:
        assert spec.n.allowed()
        assert spec.n.default is None or spec.n.default in spec.n.allowed()
    for key, rule in spec.extra_params.items():
        if rule.enum is not None and rule.default is not None:
            assert rule.default in rule.enum, key


@every_model
def test_reference_image_limits_are_a_sane_range(spec: ModelSpec) -> None:
    if spec.image_urls is not None:
        assert 0 <= spec.image_urls.min_items <= spec.image_urls.max_items
        assert spec.image_urls.max_items >= 1
        if spec.image_urls.required:
            assert spec.image_urls.max_items >= max(1, spec.image_urls.min_items)


@every_model
def test_a_model_that_takes_a_mask_also_takes_the_image_it_masks(spec: ModelSpec) -> None:
    if spec.mask_url:
        assert spec.image_urls is not None


@every_model
def test_a_dotted_extra_parameter_lives_under_model_params(spec: ModelSpec) -> None:
    for key in spec.extra_params:
        assert "." not in key or key.startswith("model_params."), key


def test_every_name_the_catalog_accepts_belongs_to_exactly_one_model() -> None:
    names = [name.lower() for m in CATALOG.models for name in (m.id, *m.aliases)]
    assert len(names) == len(set(names))
    assert sorted(CATALOG.names) == sorted(n for m in CATALOG.models for n in (m.id, *m.aliases))


def test_the_catalog_as_json_reads_back_as_the_same_models() -> None:
    assert [ModelSpec.model_validate(m) for m in CATALOG.to_json()] == CATALOG.models


# --- lookup -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nano-banana-2-lite", "nano-banana-2-lite-beta", "gemini-3.1-flash-lite-image"])
def test_every_id_of_nano_banana_2_lite_is_accepted(name: str) -> None:
    spec = CATALOG.get(name)
    assert spec is not None
    assert "Nano Banana 2 Lite" in spec.title


def test_lookup_ignores_case_and_surrounding_space() -> None:
    assert CATALOG.get("  GPT-Image-2 ") is CATALOG.get("gpt-image-2")
    assert CATALOG.get("Nano-Banana-2") is CATALOG.get("gemini-3.1-flash-image-preview")


def test_an_unknown_model_is_not_found_but_near_misses_are_suggested() -> None:
    assert CATALOG.get("gpt-image-9000") is None
    assert "gpt-image-2" in CATALOG.suggest("gpt-image2")
    assert "nano-banana-2-lite" in CATALOG.suggest("nano-banana-2-light")
    assert CATALOG.suggest("completely-unrelated-words") == []


# --- the default model --------------------------------------------------------------------------


def test_the_default_model_is_nano_banana_2() -> None:
    assert DEFAULT_MODEL == "gemini-3.1-flash-image-preview"
    assert CATALOG.default.id == DEFAULT_MODEL


def test_the_default_model_can_be_overridden() -> None:
    assert load_catalog(default_model="gpt-image-2").default.id == "gpt-image-2"


def test_the_default_model_can_be_given_by_alias() -> None:
    assert load_catalog(default_model="nano-banana-pro").default.id == "gemini-3-pro-image-preview"


def test_an_unknown_default_model_says_to_set_evolink_default_model() -> None:
    with pytest.raises(CatalogError, match="EVOLINK_DEFAULT_MODEL") as caught:
        load_catalog(default_model="gpt-image-9000")
    assert "gpt-image-9000" in str(caught.value)
    assert "gpt-image-2" in str(caught.value)


# --- the user's catalog file --------------------------------------------------------------------


def test_a_user_file_adds_a_new_model_usable_at_once(tmp_path: Path) -> None:
    user_file = write_json(
        tmp_path / "models.json",
        {
            "models": [
                {
                    "id": "acme-image-1",
                    "title": "Acme Image 1",
                    "prompt": {"max": 500, "unit": "characters"},
                    "size": {"ratios": ["1:1", "16:9"], "default": "1:1"},
                    "modes": ["text-to-image"],
                }
            ]
        },
    )
    catalog = load_catalog(user_file)
    spec = catalog.get("acme-image-1")
    assert spec is not None
    assert spec.documented == "user"
    assert len(catalog.models) == len(CATALOG.models) + 1
    assert errors_only(validate_request(spec, GenerationRequest(prompt="a fox", size="16:9"))) == []
    refused = errors_only(validate_request(spec, GenerationRequest(prompt="a fox", size="4:3")))
    assert [p.param for p in refused] == ["size"]


def test_a_user_file_overrides_one_field_of_a_shipped_model_and_keeps_the_rest(tmp_path: Path) -> None:
    user_file = write_json(tmp_path / "models.json", [{"id": "gpt-image-2", "n": {"min": 1, "max": 4}}])
    shipped = CATALOG.get("gpt-image-2")
    spec = load_catalog(user_file).get("gpt-image-2")
    assert shipped is not None and spec is not None
    assert spec.n is not None and spec.n.allowed() == [1, 2, 3, 4]
    assert spec.model_dump(exclude={"n"}) == shipped.model_dump(exclude={"n"})
    assert errors_only(validate_request(spec, GenerationRequest(prompt="a fox", n=5)))


def test_a_user_file_can_add_an_alias_to_a_shipped_model(tmp_path: Path) -> None:
    user_file = write_json(tmp_path / "models.json", [{"id": "gpt-image-2", "aliases": ["gpt2"]}])
    spec = load_catalog(user_file).get("gpt2")
    assert spec is not None and spec.id == "gpt-image-2"


def test_a_model_from_the_user_file_can_be_the_default(tmp_path: Path) -> None:
    user_file = write_json(tmp_path / "models.json", [{"id": "acme-image-1", "prompt": {}}])
    catalog = load_catalog(user_file, default_model="acme-image-1")
    assert catalog.default.id == "acme-image-1"
    assert catalog.default.title == "acme-image-1"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"models": [', "not valid JSON"),
        ('{"model": []}', "expected"),
        ('[{"title": "a model without an id"}]', "expected"),
        ('[{"id": "acme-image-1", "n": "many"}]', "'acme-image-1' is invalid"),
        ('[{"id": "gpt-image-2", "size": {"ratios": "16:9"}}]', "'gpt-image-2' is invalid"),
    ],
    ids=["truncated JSON", "wrong top-level key", "model without id", "wrong field type", "bad override"],
)
def test_a_broken_user_file_is_refused_naming_the_file_and_the_fault(
    tmp_path: Path, content: str, expected: str
) -> None:
    user_file = tmp_path / "broken.json"
    user_file.write_text(content, "utf-8")
    with pytest.raises(CatalogError, match=expected) as caught:
        load_catalog(user_file)
    assert str(user_file) in str(caught.value)


def test_a_missing_user_file_is_refused_naming_evolink_catalog_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="EVOLINK_CATALOG_FILE") as caught:
        load_catalog(tmp_path / "nowhere.json")
    assert "nowhere.json" in str(caught.value)
