"""The model catalog: every Evolink image model's limits as data, with lookup and request validation."""

from .catalog import DEFAULT_MODEL, Catalog, CatalogError, load_catalog
from .pricing import Estimate, estimate_credits
from .spec import ModelSpec, PricingSpec
from .validation import (
    GenerationRequest,
    Problem,
    build_body,
    check_callback_url,
    echo,
    errors_only,
    reference_kind,
    reference_size_problems,
    resolve_model,
    validate_request,
)

__all__ = [
    "DEFAULT_MODEL",
    "Catalog",
    "CatalogError",
    "Estimate",
    "GenerationRequest",
    "ModelSpec",
    "PricingSpec",
    "Problem",
    "build_body",
    "check_callback_url",
    "echo",
    "errors_only",
    "estimate_credits",
    "load_catalog",
    "reference_kind",
    "reference_size_problems",
    "resolve_model",
    "validate_request",
]
