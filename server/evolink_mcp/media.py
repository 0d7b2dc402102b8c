"""Result images: downloading them and saving them atomically with a JSON sidecar; local images to upload."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import anyio

from .evolink import EvolinkClient, EvolinkError, InvalidRequestError, ResultRefusedError

log = logging.getLogger(__name__)

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


# This server's own URIs of saved images (served as MCP resources, taken back wherever an image reference is).
SAVED_IMAGES = "evolink://images/"  # + the file name, in the output folder
TASK_IMAGES = "evolink://tasks/{task_id}/images/"  # + the file name: a task's image wherever it was saved


def local_path(ref: str) -> Path:
    """A local reference (plain path, ~path or file:// URL) as a Path."""
    if ref.lower().startswith("file:"):
        parts = urlsplit(ref)
        return Path(url2pathname(unquote(parts.path)))
    return Path(ref).expanduser()


@dataclass
class LocalImage:
    """A local image, open: what was checked is what gets read. Close it (or use it in a `with`)."""

    file: BinaryIO
    path: Path  # where the open file really is
    mime_type: str
    size: int

    def __enter__(self) -> LocalImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _opened_path(fd: int, looked_up: Path) -> Path:
    """Where the open file `fd` really is, by the kernel's word rather than a second lookup of a path that may
    have changed since it was opened (a flipped symlink)."""
    if sys.platform.startswith("linux"):
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    if sys.platform == "darwin":
        import fcntl

        return Path(os.fsdecode(fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).split(b"\0", 1)[0]))
    resolved = looked_up.resolve()
    return resolved if os.path.samestat(os.fstat(fd), os.stat(resolved)) else Path(os.devnull)


def open_local_image(
    ref: str, *, param: str, max_bytes: int = MAX_UPLOAD_BYTES, allowed_dirs: Sequence[Path] | None = None
) -> LocalImage:
    """A readable local JPEG/PNG/GIF/WebP within limits, opened once and checked as opened, or
    InvalidRequestError.

    `allowed_dirs` None allows any readable file (stdio); otherwise the file must lie inside one of them.
    """
    path = local_path(ref)
    if not path.is_absolute():
        raise InvalidRequestError(f"{param}: {ref!r} is a relative path; give an absolute path (or a URL).")
    roots = None if allowed_dirs is None else [d.resolve() for d in allowed_dirs]

    def refuse_outside() -> InvalidRequestError:
        where = ", ".join(str(d) for d in allowed_dirs or ()) or "none configured"
        return InvalidRequestError(
            f"{param}: {ref!r} is outside the directories this server may read ({where}).",
            next_step="Upload the image with upload_file (base64_data or file_url), or ask the server's "
            "operator to add its directory to EVOLINK_ALLOWED_DIRS.",
        )

    # Checked before opening too: nothing outside the allowed directories is opened, or said to exist.
    if roots is not None and not any(path.resolve().is_relative_to(r) for r in roots):
        raise refuse_outside()
    try:
        # Non-blocking: opening a FIFO must not wait for a writer. The open file is what gets checked and read.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InvalidRequestError(
            f"{param}: file not found: {str(path)!r}.", next_step="Check the path and try again."
        ) from None
    except OSError as exc:
        raise InvalidRequestError(f"{param}: {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    handle = os.fdopen(fd, "rb")
    try:
        if roots is not None and not any(_opened_path(fd, path).is_relative_to(r) for r in roots):
            raise refuse_outside()
        info = os.fstat(fd)
        if not S_ISREG(info.st_mode):
            raise InvalidRequestError(f"{param}: {str(path)!r} is not a file.")
        os.set_blocking(fd, True)
        try:
            head = handle.read(16)
            handle.seek(0)
        except OSError as exc:
            raise InvalidRequestError(f"{param}: {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
        kind = sniff_image(head)
        if kind is None:
            raise InvalidRequestError(
                f"{param}: {str(path)!r} is not a JPEG, PNG, GIF or WebP image (checked by its content).",
                next_step="Convert the file to PNG or JPEG and try again.",
            )
        if info.st_size > max_bytes:
            raise InvalidRequestError(
                f"{param}: {str(path)!r} is {info.st_size / 1048576:.1f} MB; the limit is {max_bytes / 1048576:g} MB.",
                next_step="Resize or compress the image and try again.",
            )
        return LocalImage(handle, _opened_path(fd, path), kind[1], info.st_size)
    except BaseException:
        handle.close()
        raise


def check_local_image(
    ref: str, *, param: str, max_bytes: int = MAX_UPLOAD_BYTES, allowed_dirs: Sequence[Path] | None = None
) -> tuple[Path, str]:
    """The real path and MIME type of a local image `open_local_image` accepts (it is closed again)."""
    with open_local_image(ref, param=param, max_bytes=max_bytes, allowed_dirs=allowed_dirs) as image:
        return image.path, image.mime_type


def reopen_local_image(path: Path, *, param: str, max_bytes: int = MAX_UPLOAD_BYTES) -> LocalImage:
    """The image `check_local_image` returned `path` for, opened again: refused unless it is still that file
    (no symlink or folder swapped in since)."""
    return open_local_image(str(path), param=param, max_bytes=max_bytes, allowed_dirs=[path])


def writable_folder(ref: str, *, param: str, allowed_dirs: Sequence[Path] | None = None) -> Path:
    """The folder `ref` names, created if missing and checked writable (a file made and removed in it), or
    InvalidRequestError naming `param`. `allowed_dirs` None allows any folder the user can write (stdio); otherwise
    it must lie inside one of them."""
    path = local_path(ref)
    if not path.is_absolute():
        raise InvalidRequestError(f"{param}: {ref!r} is a relative path; give an absolute folder path.")
    roots = None if allowed_dirs is None else [d.resolve() for d in allowed_dirs]

    def inside() -> bool:  # by the real path: a symlink out of a root is outside
        return roots is None or any(path.resolve().is_relative_to(r) for r in roots)

    if not inside():
        where = ", ".join(str(d) for d in allowed_dirs or ())
        raise InvalidRequestError(
            f"{param}: {ref!r} is outside the folders this server may write ({where}).",
            next_step=f"Leave {param} out to save in the output folder, or pick a folder inside one of these "
            "(the server's operator sets them with EVOLINK_ALLOWED_DIRS).",
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not inside():  # a symlink swapped in while the folders were made
            raise InvalidRequestError(f"{param}: {ref!r} leads outside the folders this server may write.")
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InvalidRequestError(
            f"{param}: cannot save in {str(path)!r} ({exc.strerror or exc}).",
            next_step=f"Pick a folder you can write to, or leave {param} out to save in the output folder.",
        ) from None
    return path.resolve()


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


def _write_atomically(directory: Path, name: str, data: bytes, staging: Path | None = None) -> Path:
    target = directory / name
    fd, temp = tempfile.mkstemp(dir=staging or directory, prefix=".", suffix=".part")
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
    client: EvolinkClient,
    url: str,
    directory: Path,
    stem: str,
    *,
    max_bytes: int,
    staging: Path | None = None,
    deadline: float | None = None,
) -> tuple[Path, str, int]:
    """Download `url` to `directory/stem.<ext>` atomically (temp file in `staging`, then rename): (path, mime, size).

    Only an image by its bytes is kept, whatever its Content-Type said; `deadline` as for EvolinkClient.download."""
    fd, temp_name = tempfile.mkstemp(dir=staging or directory, prefix=".", suffix=".part")
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


STAGING_PREFIX = ".evolink-partial-"  # a save's own hidden folder for its partial files (see staging)
DOWNLOADS_PER_TASK = 4  # result downloads at once for one task: each holds a connection and an open file
_SAVED_KINDS = {ext: mime for _, ext, mime in IMAGE_SIGNATURES} | {"webp": "image/webp"}


def _lock(folder: Path) -> int | None:
    """An exclusive lock on `folder` that dies with its process (POSIX flock); None where there is none.

    BlockingIOError: another process holds it. Windows has no flock, and needs none here: a file that is open
    there cannot be deleted."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:  # a filesystem without locks
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def staging(directory: Path) -> Iterator[Path]:
    """A hidden folder in `directory` for one save's partial files, locked while in use and removed after.

    Inside `directory`, so that a finished file is renamed into place (from the state folder, possibly on another
    filesystem, it would be copied); a folder of its own, locked, so that what a killed process left is known to
    be nobody's and removed at the next start-up (clear_staging) instead of lying among the images for good."""
    for _ in range(5):
        folder = Path(tempfile.mkdtemp(dir=directory, prefix=STAGING_PREFIX))
        try:
            lock = _lock(folder)
        except BlockingIOError:
            continue  # a start-up's clear_staging took it first and is removing it
        if folder.is_dir():
            break
        if lock is not None:  # removed between its creation and our lock: make another
            os.close(lock)
    else:
        raise OSError(f"no staging folder for partial files could be kept in {directory}")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def clear_staging(directory: Path) -> int:
    """Remove the partial files that saves of killed processes left in `directory`; how many folders went."""
    cleared = 0
    for folder in directory.glob(f"{STAGING_PREFIX}*"):
        try:
            lock = _lock(folder)
        except OSError:  # a running save's (BlockingIOError), or gone meanwhile
            continue
        try:
            shutil.rmtree(folder)
            cleared += 1
        except OSError as exc:
            log.warning("could not remove the partial files in %s: %s", folder, exc)
        finally:
            if lock is not None:
                os.close(lock)
    return cleared


def result_stem(task_id: str, when: datetime, index: int) -> str:
    """The file name (without extension) of a task's `index`th result; `when` is the task's submission."""
    return f"{when:%Y%m%d-%H%M%S}_{safe_component(task_id)}" + ("" if index < 0 else f"_{index + 1}")


def already_saved(directory: Path, task_id: str, when: datetime, urls: Sequence[str]) -> list[SavedImage]:
    """The results an earlier save of this task left in `directory` under their names (never a symlink)."""
    found = []
    for index, url in enumerate(urls):
        stem = result_stem(task_id, when, index)
        for ext, mime in _SAVED_KINDS.items():
            path = directory / f"{stem}.{ext}"
            with contextlib.suppress(OSError):
                info = path.lstat()
                if S_ISREG(info.st_mode):
                    found.append(SavedImage(index=index, url=url, path=path, mime_type=mime, bytes=info.st_size))
                    break
    return found


async def save_results(
    client: EvolinkClient,
    task_id: str,
    urls: Sequence[str],
    directory: Path,
    *,
    max_bytes: int,
    sidecar: dict[str, Any],
    when: datetime | None = None,
    saved: Sequence[SavedImage] = (),
    deadline: float | None = None,
) -> tuple[list[SavedImage], list[str]]:
    """Download the results not `saved` already, a few at a time, and write one JSON sidecar naming every saved
    one; returns (every saved image, errors).

    Names come from the task id, the index and `when` (the submission's time; default now): saving again after
    a partial failure writes the missing files under the same names, never a second copy of the others."""
    when = when or datetime.now(timezone.utc)
    base = result_stem(task_id, when, -1)
    done = {image.index: image for image in saved}
    errors: list[str] = []
    slots = anyio.CapacityLimiter(DOWNLOADS_PER_TASK)

    async def fetch(index: int, url: str, folder: Path) -> None:
        async with slots:
            try:
                path, mime, size = await download_image(
                    client,
                    url,
                    directory,
                    result_stem(task_id, when, index),
                    max_bytes=max_bytes,
                    staging=folder,
                    deadline=deadline,
                )
            except (EvolinkError, OSError) as exc:
                errors.append(f"image {index + 1}: {exc}")
                return
            except Exception as exc:  # one result must never cost the task and the others: report it
                log.exception("saving image %d of %s failed", index + 1, task_id)
                errors.append(f"image {index + 1}: unexpected {type(exc).__name__}")
                return
        done[index] = SavedImage(index=index, url=url, path=path, mime_type=mime, bytes=size)

    try:
        with staging(directory) as folder:
            async with anyio.create_task_group() as group:
                for index, url in enumerate(urls):
                    if index not in done:
                        group.start_soon(fetch, index, url, folder)
            images = [done[i] for i in sorted(done)]
            record = {
                **sidecar,
                "task_id": task_id,
                "saved_at": datetime.now(timezone.utc).isoformat(),
                "images": [
                    {"index": s.index, "path": str(s.path), "url": s.url, "mime_type": s.mime_type, "bytes": s.bytes}
                    for s in images
                ],
            }
            if images:
                data = json.dumps(record, indent=2, ensure_ascii=False).encode("utf-8")
                try:
                    await anyio.to_thread.run_sync(_write_atomically, directory, f"{base}.json", data, folder)
                except OSError as exc:
                    errors.append(f"sidecar: {exc}")
    except OSError as exc:
        errors.append(f"partial files: {exc}")
    return [done[i] for i in sorted(done)], errors
