"""Result images: downloading them, saving them atomically with a JSON sidecar, and inline previews."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import anyio

from .evolink import EvolinkClient, EvolinkError, InvalidRequestError, ResultRefusedError

PREVIEW_MAX_EDGE = 1568  # Anthropic's recommended long edge for images a model reads
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # the files API's per-file limit
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

IMAGE_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
    (b"GIF87a", "gif", "image/gif"),
    (b"GIF89a", "gif", "image/gif"),
)


def sniff_image(head: bytes) -> tuple[str, str] | None:
    """(extension, mime type) of a JPEG, PNG, GIF or WebP file from its first bytes, else None."""
    for signature, ext, mime in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return ext, mime
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp", "image/webp"
    return None


def local_path(ref: str) -> Path:
    """A local reference (plain path, ~path or file:// URL) as a Path."""
    if ref.lower().startswith("file:"):
        parts = urlsplit(ref)
        return Path(url2pathname(unquote(parts.path)))
    return Path(ref).expanduser()


def check_local_image(
    ref: str, *, param: str, max_bytes: int = MAX_UPLOAD_BYTES, allowed_dirs: Sequence[Path] | None = None
) -> tuple[Path, str]:
    """The path and MIME type of a readable local JPEG/PNG/GIF/WebP within limits, or InvalidRequestError.

    `allowed_dirs` None allows any readable file (stdio); otherwise the file must lie inside one of them.
    """
    path = local_path(ref)
    if not path.is_absolute():
        raise InvalidRequestError(f"{param}: {ref!r} is a relative path; give an absolute path (or a URL).")
    if allowed_dirs is not None:
        resolved = path.resolve()
        if not any(resolved.is_relative_to(d.resolve()) for d in allowed_dirs):
            where = ", ".join(str(d) for d in allowed_dirs) or "none configured"
            raise InvalidRequestError(
                f"{param}: {ref!r} is outside the directories this server may read ({where}).",
                next_step="Upload the image with upload_file (base64_data or file_url), or ask the server's "
                "operator to add its directory to EVOLINK_ALLOWED_DIRS.",
            )
    if not path.exists():
        raise InvalidRequestError(f"{param}: file not found: {str(path)!r}.", next_step="Check the path and try again.")
    if not path.is_file():
        raise InvalidRequestError(f"{param}: {str(path)!r} is not a file.")
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidRequestError(f"{param}: {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    kind = sniff_image(head)
    if kind is None:
        raise InvalidRequestError(
            f"{param}: {str(path)!r} is not a JPEG, PNG, GIF or WebP image (checked by its content).",
            next_step="Convert the file to PNG or JPEG and try again.",
        )
    if size > max_bytes:
        raise InvalidRequestError(
            f"{param}: {str(path)!r} is {size / 1048576:.1f} MB; the limit is {max_bytes / 1048576:g} MB.",
            next_step="Resize or compress the image and try again.",
        )
    return path, kind[1]


def safe_component(text: str, limit: int = 80) -> str:
    """`text` reduced to a file-name component that cannot escape a directory."""
    cleaned = _SAFE_NAME.sub("_", text).strip("._")
    return cleaned[:limit] or "image"


def upload_name(path: Path) -> str:
    """A files-API name for a local file, unique to its path and version.

    The files API replaces an upload with the same name: two different files called photo.png would become
    one. An unchanged file keeps its name, so uploading it again overwrites instead of using more quota.
    """
    stat = path.stat()
    identity = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode("utf-8", "surrogateescape")
    return f"{hashlib.sha256(identity).hexdigest()[:12]}_{safe_component(path.name)}"


@dataclass(frozen=True)
class SavedImage:
    index: int
    url: str
    path: Path
    mime_type: str
    bytes: int


def _write_atomically(directory: Path, name: str, data: bytes) -> Path:
    target = directory / name
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


async def download_image(
    client: EvolinkClient, url: str, directory: Path, stem: str, *, max_bytes: int, deadline: float | None = None
) -> tuple[Path, str, int]:
    """Download `url` to `directory/stem.<ext>` atomically (temp file, then rename): (path, mime, size).

    Only an image by its bytes is kept, whatever its Content-Type said; `deadline` as for EvolinkClient.download."""
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            content_type = await client.download(url, handle, max_bytes=max_bytes, deadline=deadline)
            size = handle.tell()
            handle.seek(0)
            sniffed = sniff_image(handle.read(16))
        if sniffed is None:
            raise ResultRefusedError(
                f"the result at {url[:100]} is not a JPEG, PNG, GIF or WebP image by its content "
                f"({size} bytes, served as {(content_type or 'no type')[:60]}); it was not saved."
            )
        ext, mime = sniffed
        target = directory / f"{stem}.{ext}"
        os.chmod(temp, 0o644)  # mkstemp makes it private; a saved image is the user's ordinary file
        os.replace(temp, target)
        return target, mime, size
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


async def save_results(
    client: EvolinkClient,
    task_id: str,
    urls: Sequence[str],
    directory: Path,
    *,
    max_bytes: int,
    sidecar: dict[str, Any],
    when: datetime | None = None,
    deadline: float | None = None,
) -> tuple[list[SavedImage], list[str]]:
    """Download every result concurrently and write one JSON sidecar; returns (saved, errors)."""
    when = when or datetime.now(timezone.utc)
    base = f"{when:%Y%m%d-%H%M%S}_{safe_component(task_id)}"
    saved: list[SavedImage | None] = [None] * len(urls)
    errors: list[str] = []

    async def fetch(index: int, url: str) -> None:
        try:
            path, mime, size = await download_image(
                client, url, directory, f"{base}_{index + 1}", max_bytes=max_bytes, deadline=deadline
            )
        except (EvolinkError, OSError) as exc:
            errors.append(f"image {index + 1}: {exc}")
            return
        saved[index] = SavedImage(index=index, url=url, path=path, mime_type=mime, bytes=size)

    async with anyio.create_task_group() as group:
        for index, url in enumerate(urls):
            group.start_soon(fetch, index, url)
    images = [s for s in saved if s is not None]
    record = {
        **sidecar,
        "task_id": task_id,
        "saved_at": when.isoformat(),
        "images": [{"path": str(s.path), "url": s.url, "mime_type": s.mime_type, "bytes": s.bytes} for s in images],
    }
    if images:
        data = json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8")
        try:
            await anyio.to_thread.run_sync(_write_atomically, directory, f"{base}.json", data)
        except OSError as exc:
            errors.append(f"sidecar: {exc}")
    return images, errors


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


def _encode_preview(path: Path, budget: int) -> tuple[str, str, int, int] | None:
    """The best preview of `path` whose base64 text fits `budget` characters, or None."""
    from PIL import Image  # Pillow is heavy: imported only when a preview is made

    if Image.core.get_blocks_max() < _PILLOW_BLOCKS_KEPT:
        Image.core.set_blocks_max(_PILLOW_BLOCKS_KEPT)
    with Image.open(path) as opened:
        opened.draft("RGB", (PREVIEW_MAX_EDGE, PREVIEW_MAX_EDGE))  # fast JPEG downscale on decode
        has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
        mode = "RGBA" if has_alpha else "RGB"
        full = opened.convert(mode) if opened.mode != mode else opened
        full.load()  # the pixels outlive the file (leaving `with` closes only the file)
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


@dataclass(frozen=True)
class Previews:
    made: list[Preview]
    skipped_busy: int = 0  # left out because the server was saturated (PREVIEW_QUEUE_MAX): worth asking again


async def make_previews(images: Sequence[SavedImage], budget: int) -> Previews:
    """Downscaled previews of saved images whose base64 text together stays within `budget` characters."""
    if budget <= 0 or not images:
        return Previews([])
    if PREVIEW_SLOTS.statistics().tasks_waiting >= PREVIEW_QUEUE_MAX:  # other results' previews, queued
        return Previews([], skipped_busy=len(images))
    share = budget // len(images)
    made: dict[int, Preview] = {}

    async def make(image: SavedImage) -> None:
        try:
            encoded = await anyio.to_thread.run_sync(_encode_preview, image.path, share, limiter=PREVIEW_SLOTS)
        except (OSError, ValueError):
            return  # not an image Pillow can read: the saved path and URL still stand
        if encoded is not None:
            data, mime, width, height = encoded
            made[image.index] = Preview(image.index, data, mime, width, height)

    async with anyio.create_task_group() as group:
        for image in images:
            group.start_soon(make, image)
    return Previews([made[i] for i in sorted(made)])
