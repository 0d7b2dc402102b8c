"""Loading the model catalog (shipped JSON + an optional user file) and looking models up."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .spec import ModelSpec

DEFAULT_MODEL = "gemini-3.1-flash-image-preview"


class CatalogError(ValueError):
    """The catalog (shipped or user-supplied) cannot be loaded."""


class Catalog:
    """Every known model, by canonical id and by alias."""

    def __init__(self, models: Iterable[ModelSpec], default_model: str = DEFAULT_MODEL) -> None:
        self.models: list[ModelSpec] = sorted(models, key=lambda m: m.id)
        self._by_name: dict[str, ModelSpec] = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                self._by_name[name.lower()] = model
        found = self.get(default_model)
        if found is None:
            raise CatalogError(
                f"default model {default_model!r} is not in the catalog; "
                f"set EVOLINK_DEFAULT_MODEL to one of: {', '.join(self.ids)}"
            )
        self.default: ModelSpec = found

    def __eq__(self, other: object) -> bool:
        """Two catalogs with the same models and default are the same (the tools built from one serve both)."""
        return isinstance(other, Catalog) and (self.default.id, self.models) == (other.default.id, other.models)

    def __hash__(self) -> int:
        return hash((self.default.id, *self.ids))

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]

    @property
    def names(self) -> list[str]:
        """Canonical ids followed by aliases: every string `get` accepts."""
        return self.ids + sorted(a for m in self.models for a in m.aliases)

    def get(self, name: str) -> ModelSpec | None:
        """The model with this id or alias (case-insensitive), or None."""
        return self._by_name.get(name.strip().lower())

    def suggest(self, name: str, limit: int = 3) -> list[str]:
        """Near-miss model names for a 'did you mean'."""
        lowered = {n.lower(): n for n in self.names}
        close = difflib.get_close_matches(name.strip().lower(), list(lowered), n=limit, cutoff=0.6)
        return [lowered[c] for c in close]

    def to_json(self) -> list[dict[str, Any]]:
        """Every model as JSON without empty fields; each reads back as the same ModelSpec."""
        dumped = []
        for model in self.models:
            data = model.model_dump(mode="json", exclude_none=True)
            if model.size is not None and model.size.param is None:
                # Here None means "no size field" (Midjourney's --ar), not "unset": dropping it would read
                # back as the default "size".
                data["size"]["param"] = None
            dumped.append(data)
        return dumped


def _read_json(text: str, origin: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{origin}: not valid JSON ({exc})") from None
    models = data.get("models") if isinstance(data, dict) else data
    if not isinstance(models, list) or not all(isinstance(m, dict) and "id" in m for m in models):
        raise CatalogError(f'{origin}: expected {{"models": [{{"id": ...}}, ...]}} or a list of models')
    return models


def _parse(raw: dict[str, Any], origin: str) -> ModelSpec:
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(f"{origin}: model {raw.get('id')!r} is invalid: {exc}") from None


def load_catalog(user_file: Path | None = None, default_model: str | None = None) -> Catalog:
    """The shipped catalog, with models from `user_file` added or merged over shipped ones."""
    shipped_text = resources.files(__package__).joinpath("models.json").read_text("utf-8")
    raw_by_id = {m["id"]: m for m in _read_json(shipped_text, "shipped catalog")}
    if user_file is not None:
        try:
            user_text = Path(user_file).expanduser().read_text("utf-8")
        except OSError as exc:
            raise CatalogError(f"EVOLINK_CATALOG_FILE {str(user_file)!r} cannot be read: {exc}") from None
        for override in _read_json(user_text, str(user_file)):
            base = raw_by_id.get(override["id"], {"documented": "user", "title": override["id"]})
            raw_by_id[override["id"]] = {**base, **override}
    models = [_parse(raw, str(user_file or "shipped catalog")) for raw in raw_by_id.values()]
    return Catalog(models, default_model or DEFAULT_MODEL)
