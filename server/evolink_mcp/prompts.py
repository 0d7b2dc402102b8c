"""MCP prompts: ready-made requests that lead an agent to the right model and parameters for common jobs.

Each prompt is a function of its arguments returning the user message; the models it names come from the
catalog (by what they can do), so the advice follows the catalog rather than a hard-coded list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from .catalog import Catalog, ModelSpec

Reference = Annotated[str, Field(description="Optional: a photo of it (URL or local path).")]


@dataclass(frozen=True)
class PromptSpec:
    fn: Callable[..., str]
    name: str
    title: str
    description: str


def _able(catalog: Catalog, *modes: str) -> list[ModelSpec]:
    """Models that can do every one of `modes`: the default first, beta models only if it is one."""
    default = catalog.default
    found = [m for m in catalog.models if all(mode in m.modes for mode in modes) and (not m.beta or m is default)]
    return sorted(found, key=lambda m: m is not default)


def _refs(model: ModelSpec) -> int:
    return model.image_urls.max_items if model.image_urls else 0


def prompt_specs(catalog: Catalog) -> list[PromptSpec]:
    """Every prompt this server offers."""
    makers = [m for m in _able(catalog, "text-to-image") if m.size and m.size.ratios]  # aspect ratios to offer
    editors = _able(catalog, "edit")
    maskers = [m for m in _able(catalog, "inpaint") if m.mask_url]
    # The character sheet plus the best earlier scenes go along as references: a model that takes a few.
    keepers = [m for m in _able(catalog, "text-to-image", "edit") if _refs(m) >= 4]
    maker = makers[0] if makers else catalog.default
    editor = editors[0] if editors else catalog.default
    keeper = keepers[0] if keepers else catalog.default

    def product_shot(
        product: Annotated[str, Field(description="What to photograph, e.g. 'a matte black water bottle'.")],
        setting: Annotated[str, Field(description="Optional: where, e.g. 'on wet slate, morning light'.")] = "",
        aspect_ratio: Annotated[str, Field(description="Optional: e.g. 1:1, 4:5, 16:9.")] = "4:5",
        reference_image: Reference = "",
    ) -> str:
        sizes = maker.size.ratios if maker.size else []
        size = aspect_ratio if aspect_ratio in sizes or not sizes else (sizes[0] if sizes else aspect_ratio)
        lines = [
            f"Make a product photograph of {product}"
            + (f", set in {setting}." if setting else ", on a clean seamless studio backdrop."),
            "Write the generate_image prompt like a photographer's brief: subject and materials, camera angle, "
            "lens (e.g. 85 mm), lighting (soft key light, rim light), background, and what must stay legible "
            "(labels, logos).",
            f"Call generate_image with model={maker.id!r} and size={size!r}"
            + (f" (the model takes: {', '.join(sizes)})" if size != aspect_ratio else "")
            + ".",
        ]
        if reference_image:
            lines.append(
                f"Pass image_urls=[{reference_image!r}] so the product looks exactly like the real one (a local "
                "path is uploaded for you)."
            )
        lines.append("Show the saved image; offer one variation with a different angle or light if asked.")
        return "\n".join(lines)

    def edit_photo(
        image: Annotated[str, Field(description="The image to edit: URL or local path.")],
        change: Annotated[str, Field(description="What to change, e.g. 'make the sky stormy'.")],
    ) -> str:
        lines = [
            f"Edit the image {image!r}: {change}.",
            f"Call generate_image with model={editor.id!r}, image_urls=[{image!r}] (a local path is uploaded for "
            "you), and a prompt that says what to change and, explicitly, what to keep the same (composition, "
            "faces, colours, text).",
        ]
        if maskers:
            names = ", ".join(m.id for m in maskers[:3])
            lines.append(
                f"If only one region should change and you have a PNG mask of it, use a model that takes mask_url "
                f"({names}) and pass mask_url."
            )
        lines.append("Show the result next to the original and say what changed.")
        return "\n".join(lines)

    def consistent_character(
        character: Annotated[str, Field(description="Who: face, hair, clothing, colours.")],
        scenes: Annotated[str, Field(description="One scene per line (or separated by ';').")],
        reference_image: Reference = "",
    ) -> str:
        wanted = [s.strip() for s in scenes.replace(";", "\n").splitlines() if s.strip()] or [scenes]
        first = (
            f"Use {reference_image!r} as the character reference."
            if reference_image
            else (
                f"First call generate_image with model={keeper.id!r} for a character sheet: {character}, front and "
                "three-quarter views, neutral light, plain background. Its saved path is the reference."
            )
        )
        lines = [
            f"Draw the same character in {len(wanted)} scene(s): {character}.",
            first,
            f"Then for each scene call generate_image with model={keeper.id!r} (it takes up to {_refs(keeper)} "
            "reference images), image_urls=[the reference path], and a prompt that restates the character's "
            "fixed traits word for word (face, hair, clothing, colours) before the scene:",
            *(f"- {scene}" for scene in wanted),
            "Keep the size the same across scenes; if one drifts, regenerate it with the best earlier result added "
            "to image_urls.",
        ]
        return "\n".join(lines)

    return [
        PromptSpec(product_shot, "product_shot", "Product shot", "A studio-quality product photo, model and size."),
        PromptSpec(edit_photo, "edit_photo", "Edit a photo", "Change an existing image, keeping the rest as is."),
        PromptSpec(
            consistent_character,
            "consistent_character",
            "Consistent character",
            "The same character across several scenes, from one reference.",
        ),
    ]
