"""Inline previews of saved images: downscaled, within a byte budget, a few at a time process-wide."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

from ..media import SavedImage

log = logging.getLogger(__name__)

PREVIEW_MAX_EDGE = 1568  # Anthropic's recommended long edge for images a model reads
# Images asked for in full: clients refuse a tool result over 1 MiB (Claude Desktop; the SDK's streamable-HTTP client
# an SSE event over it), base64 included. What is left is for the text, links and structured copy.
FULL_INLINE_BUDGET = 1024 * 1024 - 64 * 1024
FULL_MAX_EDGE = 8000  # the Anthropic API refuses an image with a longer side
Inline = Literal["preview", "full", "none"]


@dataclass(frozen=True)
class Preview:
    index: int
    data_base64: str
    mime_type: str
    width: int
    height: int


# Previews are CPU-bound and hold a full decoded image each: a few at a time, process-wide, leaving a core to
# the event loop that serves every session. Unbounded, 100 concurrent generations decoded 40 images at once
# (the worker-thread default) and peaked over 1 GB; with one per core, they slowed every other call.
PREVIEW_SLOTS = anyio.CapacityLimiter(max(1, (os.cpu_count() or 1) - 1))
# With this many previews of other results already waiting, the server is saturated: a result goes out at once,
# with its saved files and resource links but no inline preview, rather than queue behind every other decode.
PREVIEW_QUEUE_MAX = int(PREVIEW_SLOTS.total_tokens)
# Pillow keeps this many freed image blocks (16 MB each) for reuse: a preview holds two (the decoded image and
# its reduction) in each slot. Its default, none, hands every decoded image back to malloc, whose per-thread
# arenas keep the freed memory: +300 MB after 100 previews.
_PILLOW_BLOCKS_KEPT = 2 * int(PREVIEW_SLOTS.total_tokens)
# Pillow's documented setting (reference/block_allocator), read when Pillow loads: it is imported only when an
# image is made or previewed, after this module. A value the user set is kept.
os.environ.setdefault("PILLOW_BLOCKS_MAX", str(_PILLOW_BLOCKS_KEPT))
# Decoded pixels (after a JPEG's draft) of one preview: an image over this gets none, with the reason. A 4K result
# is 8-17 MP; 50 MP decodes to at most ~400 MB (RGBA and its converted copy), where a 13000x13000 PNG took 760 MB.
PREVIEW_MAX_PIXELS = 50_000_000
# Decoded pixels of all previews at once, whatever the core count: memory is what runs out, not CPU.
PREVIEW_PIXEL_BUDGET = 64_000_000


class _PixelBudget:
    """Pixels that previews may hold decoded at once, process-wide: a decode waits (in its worker thread) until its
    pixels fit. Counted after the image's header is read, which is why it is not an anyio limiter."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self.free >= pixels)
            self.free -= pixels
        try:
            yield
        finally:
            with self._changed:
                self.free += pixels
                self._changed.notify_all()


PREVIEW_PIXELS = _PixelBudget(PREVIEW_PIXEL_BUDGET)


class NoPreview(Exception):
    """Why an image gets no preview, in words for the result."""


def _encode_preview(path: Path, budget: int) -> tuple[str, str, int, int] | None:
    """The best preview of `path` whose base64 text fits `budget` characters, or None."""
    from PIL import Image  # Pillow is heavy: imported only when a preview is made

    try:
        opened = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, checked on the header: over ours too
        raise NoPreview(f"it has too many pixels to preview ({exc})") from None
    with opened:
        opened.draft("RGB", (PREVIEW_MAX_EDGE, PREVIEW_MAX_EDGE))  # a JPEG decodes downscaled: far fewer pixels
        width, height = opened.size
        if width * height > PREVIEW_MAX_PIXELS:
            raise NoPreview(
                f"{width}x{height} is over the {PREVIEW_MAX_PIXELS // 1_000_000}-megapixel limit for previews"
            )
        with PREVIEW_PIXELS.hold(width * height):
            return _encode_opened(opened, budget)


def _encode_opened(opened: Any, budget: int) -> tuple[str, str, int, int] | None:
    has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
    mode = "RGBA" if has_alpha else "RGB"
    full = opened.convert(mode) if opened.mode != mode else opened
    full.load()  # the pixels outlive the file (leaving `with` closes only the file)
    if full is not opened:
        opened.close()  # the source's pixels, before the reduction allocates more
    factor = -(-max(full.size) // PREVIEW_MAX_EDGE)
    # A whole-factor box reduction: ~10x cheaper than a bicubic resize to exactly the edge (what 100 concurrent
    # generations feel), and a true average; the long edge lands in [edge/2, edge].
    image = full.reduce(factor) if factor > 1 else full
    try:
        fmt, mime = ("WEBP", "image/webp") if has_alpha else ("JPEG", "image/jpeg")
        raw_budget = budget * 3 // 4
        while min(image.size) >= 32:
            for quality in (85, 70, 55, 40):
                buffer = io.BytesIO()
                image.save(buffer, fmt, quality=quality)
                if buffer.tell() <= raw_budget:
                    return base64.b64encode(buffer.getvalue()).decode("ascii"), mime, image.width, image.height
            image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))
        return None
    finally:
        # Small first: Pillow hands out the block freed last, and the next decode wants the big one. Freed the
        # other way round, each decode grew a small block again: ~3,000 page faults, 8-10 ms, per preview.
        image.close()
        full.close()


def read_full(image: SavedImage, budget: int) -> Preview | str:
    """A saved image as it is, inline, if its base64 text fits `budget` and a model may read it; else why not."""
    from PIL import Image

    encoded_size = 4 * -(-image.bytes // 3)
    if encoded_size > budget:
        return f"its file ({image.bytes / 1048576:.1f} MiB) is over the {budget // 1024} KiB a result may carry"
    try:
        with Image.open(image.path) as opened:  # the header only: its size
            width, height = opened.size
        data = image.path.read_bytes()
    except (OSError, Image.DecompressionBombError) as exc:
        return f"it could not be read ({str(exc)[:120] or type(exc).__name__})"
    if max(width, height) > FULL_MAX_EDGE:
        return f"{width}x{height} is over the {FULL_MAX_EDGE} px a side models accept"
    encoded = base64.b64encode(data).decode("ascii")
    if len(encoded) > budget:  # it grew on disk since it was saved
        return f"its file is over the {budget // 1024} KiB a result may carry"
    return Preview(image.index, encoded, image.mime_type, width, height)


def _why_no_preview(exc: BaseException) -> str:
    if isinstance(exc, NoPreview):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "there was not enough memory to decode it"
    detail = str(exc)[:120] or type(exc).__name__
    return f"it could not be decoded ({detail})"


@dataclass(frozen=True)
class Previews:
    made: list[Preview]
    skipped_busy: int = 0  # left out because the server was saturated (PREVIEW_QUEUE_MAX): worth asking again
    missing: list[str] = field(default_factory=list)  # why an image has none, a sentence each: asking again won't help


async def make_previews(images: Sequence[SavedImage], budget: int) -> Previews:
    """Downscaled previews of saved images whose base64 text together stays within `budget` characters.

    Never raises for an image: one that cannot be previewed (too many pixels, truncated, not an image, out of
    memory, anything) is named in `missing` with the reason, and its saved file still stands."""
    if budget <= 0 or not images:
        return Previews([])
    if PREVIEW_SLOTS.statistics().tasks_waiting >= PREVIEW_QUEUE_MAX:  # other results' previews, queued
        return Previews([], skipped_busy=len(images))
    share = budget // len(images)
    made: dict[int, Preview] = {}
    missing: dict[int, str] = {}

    async def make(image: SavedImage) -> None:
        try:
            encoded = await anyio.to_thread.run_sync(_encode_preview, image.path, share, limiter=PREVIEW_SLOTS)
        except Exception as exc:  # a preview is a courtesy: whatever fails, the task and its files are reported
            log.info("no preview of %s: %r", image.path.name, exc)
            missing[image.index] = f"No preview of image {image.index + 1}: {_why_no_preview(exc)}; the file is saved."
            return
        if encoded is not None:
            data, mime, width, height = encoded
            made[image.index] = Preview(image.index, data, mime, width, height)

    async with anyio.create_task_group() as group:
        for image in images:
            group.start_soon(make, image)
    return Previews([made[i] for i in sorted(made)], missing=[missing[i] for i in sorted(missing)])
