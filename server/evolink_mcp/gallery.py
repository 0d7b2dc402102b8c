"""`evolink-mcp gallery`: one static HTML page of the saved images, from their JSON sidecars and the journal.

Every text on the page (prompts, models, task ids, paths) came from a user or from upstream: all of it escaped."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from .settings import Settings

log = logging.getLogger(__name__)

PAGE = "gallery.html"
STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; overflow: hidden; }
img { width: 100%; height: 240px; object-fit: contain; background: #eee; display: block; }
figcaption { padding: .5rem .6rem; overflow-wrap: anywhere; }
.meta { color: #666; font-size: 12px; margin-top: .3rem; }
"""


@dataclass
class Shown:
    path: Path
    prompt: str
    model: str
    task_id: str
    when: str


def write_gallery(settings: Settings, *, limit: int = 200) -> Path:
    """Write the page into the output folder (images found in any folder); returns its path."""
    shown = {item.path: item for item in _from_journal(settings, limit)}
    for item in _from_sidecars(settings.output_dir):
        shown.setdefault(item.path, item)
    items = sorted((i for i in shown.values() if i.path.is_file()), key=lambda i: i.when, reverse=True)
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    page = settings.output_dir / PAGE
    page.write_text(render(items), encoding="utf-8")
    return page


def render(items: list[Shown]) -> str:
    figures = "\n".join(
        f'<figure><a href="{escape(i.path.as_uri())}"><img src="{escape(i.path.as_uri())}" alt="{escape(i.prompt)}"'
        f' loading="lazy"></a><figcaption>{escape(i.prompt) or "<em>no prompt recorded</em>"}'
        f'<div class="meta">{escape(i.model)} · {escape(i.task_id)} · {escape(i.when)}</div>'
        f'<div class="meta">{escape(str(i.path))}</div></figcaption></figure>'
        for i in items
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evolink images</title><style>{STYLE}</style></head><body>"
        f"<h1>Evolink images</h1><p>{len(items)} image(s), newest first.</p><main>\n{figures}\n</main></body></html>\n"
    )


def _from_journal(settings: Settings, limit: int) -> list[Shown]:
    import anyio

    from .journal import JournalError, open_journal

    journal = open_journal(settings)
    try:
        entries = anyio.run(lambda: journal.recent(limit=limit))
    except JournalError as exc:
        log.warning("the journal could not be read (%s): the gallery shows the sidecars only", exc.message)
        return []
    finally:
        journal.close()
    return [
        Shown(Path(p), entry.prompt or "", entry.model or "", entry.task_id or "", entry.created)
        for entry in entries
        for p in entry.saved_paths
    ]


def _from_sidecars(folder: Path) -> list[Shown]:
    found = []
    for sidecar in folder.glob("*.json") if folder.is_dir() else []:
        try:
            record: Any = json.loads(sidecar.read_text("utf-8"))
            images = record["images"]
            found += [
                Shown(
                    Path(str(image["path"])),
                    str(record.get("prompt") or ""),
                    str(record.get("model") or ""),
                    str(record.get("task_id") or ""),
                    str(record.get("submitted_at") or record.get("saved_at") or ""),
                )
                for image in images
            ]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of our sidecars, or damaged: nothing to show
    return found
