"""Result images: a gradient coloured by the prompt with the prompt written on it, rendered on demand."""

from __future__ import annotations

import colorsys
import hashlib
import io
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

SMALL_EDGE = 96  # the gradient is built this small, then scaled up: fast even at 4096x4096


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def render_image(text: str, width: int, height: int, image_format: str = "png", caption: str = "") -> bytes:
    """Encoded image bytes (png, jpeg or webp) of `width` x `height` showing `text` and `caption`."""
    from PIL import Image, ImageDraw, ImageFont

    digest = hashlib.sha256(text.encode("utf-8")).digest()
    hue = digest[0] / 255
    light = _rgb(hue, 0.45 + digest[1] / 1275, 0.96)
    dark = _rgb(hue + 0.06 + digest[2] / 2550, 0.75, 0.42)
    scale = SMALL_EDGE / max(width, height)
    small = (max(2, round(width * scale)), max(2, round(height * scale)))
    vertical = Image.linear_gradient("L")
    if digest[3] & 1:
        vertical = vertical.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    horizontal = vertical.transpose(Image.Transpose.ROTATE_90 if digest[3] & 2 else Image.Transpose.ROTATE_270)
    diagonal = Image.blend(vertical, horizontal, 0.25 + digest[4] / 510)
    mask = Image.blend(diagonal, Image.radial_gradient("L"), 0.3).resize(small, Image.Resampling.BILINEAR)
    base = Image.composite(Image.new("RGB", small, dark), Image.new("RGB", small, light), mask)
    image = base.resize((width, height), Image.Resampling.BILINEAR)

    short = min(width, height)
    if short >= 24:
        draw = ImageDraw.Draw(image)
        font_size = max(8, min(short // 9, width // 14))

        def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
            try:
                return ImageFont.load_default(size=size)
            except (OSError, TypeError, ImportError):  # Pillow built without FreeType
                return ImageFont.load_default()

        margin = max(4, short // 16)
        per_line = max(6, int((width - 2 * margin) / (font_size * 0.55)))
        max_lines = max(1, int((height * 0.75 - margin) / (font_size * 1.25)))
        lines = textwrap.wrap(text or "(no prompt)", per_line)
        if len(lines) > max_lines:
            lines = [*lines[: max_lines - 1], lines[max_lines - 1][: per_line - 3] + "..."]
        stroke = max(1, font_size // 16)
        draw.multiline_text(
            (margin, margin),
            "\n".join(lines),
            font=font(font_size),
            fill=(255, 255, 255),
            spacing=font_size // 4,
            stroke_width=stroke,
            stroke_fill=(30, 30, 40),
        )
        if caption:
            small_size = max(8, font_size // 2)
            draw.text(
                (margin, height - margin - small_size),
                caption,
                font=font(small_size),
                fill=(255, 255, 255),
                stroke_width=max(1, stroke // 2),
                stroke_fill=(30, 30, 40),
            )

    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, "JPEG", quality=85)
    elif image_format == "webp":
        image.save(buffer, "WEBP", quality=80, method=0)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


class ImageCache:
    """Encoded images by key, least recently used dropped first; one render per key at a time."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._rendering: dict[Hashable, threading.Lock] = {}

    def get_or_render(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """Blocking: call from a worker thread."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._rendering.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                data = render()
            except BaseException:
                with self._lock:
                    self._rendering.pop(key, None)
                raise
            with self._lock:
                self._items[key] = data
                self._rendering.pop(key, None)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
            return data

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
