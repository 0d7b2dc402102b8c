"""The simulated files API's storage: files on disk in a temporary directory, metadata in memory."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from ..media import sniff_image

CHUNK = 1024 * 1024
_NAME_UNSAFE = str.maketrans({c: "_" for c in '/\\:*?"<>|\x00'})


class UploadRejected(Exception):
    """An upload the files API refuses: `code` is the envelope code, `status` the HTTP status."""

    def __init__(self, code: int, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


EXTENSION_OF = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


def iso8601(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def folder_of(upload_path: str | None) -> str:
    """The upload_path as stored: no leading or trailing slashes, "uploads" when not given."""
    return (upload_path or "").strip().strip("/") or "uploads"


def clean_name(name: str) -> str:
    """A file name safe to put in a URL path segment and on disk (no directories)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].translate(_NAME_UNSAFE).strip(" .")
    return base[:200]


@dataclass
class StoredFile:
    file_id: str
    file_name: str
    original_name: str
    file_size: int
    mime_type: str
    upload_path: str
    uploaded_at: datetime
    expires_at: datetime
    path: Path
    expired: bool = False
    account: str = ""  # whose key uploaded it: each key sees and counts only its own files

    def url(self, base_url: str) -> str:
        return f"{base_url}/files/{self.file_id}/{quote(self.file_name)}"

    def to_wire(self, base_url: str) -> dict[str, Any]:
        url = self.url(base_url)
        return {
            "file_id": self.file_id,
            "file_name": self.file_name,
            "original_name": self.original_name,
            "file_size": self.file_size,
            "mime_type": self.mime_type,
            "upload_path": self.upload_path,
            "file_url": url,
            "download_url": f"{url}?download=1",
            "upload_time": iso8601(self.uploaded_at),
            "expires_at": iso8601(self.expires_at),
        }

    def to_listing(self, base_url: str) -> dict[str, Any]:
        wire = self.to_wire(base_url)
        return {
            key: wire[key]
            for key in (
                "file_id",
                "file_name",
                "file_size",
                "upload_time",
                "mime_type",
                "file_url",
                "expires_at",
            )
        }


class FileStore:
    """Uploaded files under one temporary directory, created on first use and removed by `close`."""

    def __init__(self, max_files: int, max_bytes: int, ttl: timedelta) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._root: Path | None = None
        self._files: dict[str, StoredFile] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="evolink-sandbox-files-"))
            return self._root

    def get(self, file_id: str) -> StoredFile | None:
        stored = self._files.get(file_id)
        return None if stored is None or stored.expired else stored

    def listing(self, account: str | None = None) -> list[StoredFile]:
        """Live files (of `account`, if given), newest first."""
        live = [f for f in self._files.values() if not f.expired and account in (None, f.account)]
        return sorted(live, key=lambda f: f.uploaded_at, reverse=True)

    @property
    def used(self) -> int:
        return len(self.listing())

    def used_by(self, account: str) -> int:
        return len(self.listing(account))

    def _same_name(self, upload_path: str, file_name: str, account: str) -> StoredFile | None:
        return next(
            (f for f in self.listing(account) if f.upload_path == upload_path and f.file_name == file_name),
            None,
        )

    def check_room(self, upload_path: str | None, file_name: str | None, account: str = "") -> None:
        """Refuse before receiving when the account's quota is full and nothing would be overwritten."""
        if file_name and self._same_name(folder_of(upload_path), clean_name(file_name), account) is not None:
            return
        if self.used_by(account) >= self.max_files:
            raise UploadRejected(
                40003, 403, f"File quota exceeded: {self.max_files} files at most. Delete files first."
            )

    def receive(self, source: IO[bytes]) -> tuple[Path, int, str]:
        """Copy `source` in chunks to a new temporary file; checks the type and the size cap as it goes."""
        fd, name = tempfile.mkstemp(dir=self.root, prefix="incoming-")
        path = Path(name)
        size = 0
        mime: str | None = None
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    if mime is None:
                        kind = sniff_image(chunk[:16])
                        mime = kind[1] if kind else None
                        if mime is None:
                            raise UploadRejected(
                                40002,
                                400,
                                "File type not allowed: only JPEG, PNG, GIF and WebP images are accepted.",
                            )
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UploadRejected(
                            40001, 413, f"File too large: at most {self.max_bytes // (1024 * 1024)} MB."
                        )
                    out.write(chunk)
            if mime is None:
                raise UploadRejected(40002, 400, "Empty file: only JPEG, PNG, GIF and WebP images are accepted.")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size, mime

    def commit(
        self,
        incoming: Path,
        size: int,
        mime: str,
        *,
        file_name: str | None,
        original_name: str | None,
        upload_path: str | None,
        account: str = "",
    ) -> StoredFile:
        """Store a received file; a file of the account's with the same name and path is overwritten (same id, no
        quota)."""
        folder = folder_of(upload_path)
        now = datetime.now(timezone.utc)
        with self._lock:
            name = clean_name(file_name or "")
            existing = self._same_name(folder, name, account) if name else None
            if existing is None and self.used_by(account) >= self.max_files:
                incoming.unlink(missing_ok=True)
                raise UploadRejected(
                    40003, 403, f"File quota exceeded: {self.max_files} files at most. Delete files first."
                )
            file_id = existing.file_id if existing else "file_" + secrets.token_hex(12)
            name = name or f"{file_id}.{EXTENSION_OF[mime]}"
            final = incoming.with_name(file_id)
            os.replace(incoming, final)
            stored = StoredFile(
                file_id=file_id,
                file_name=name,
                original_name=clean_name(original_name or "") or name,
                file_size=size,
                mime_type=mime,
                upload_path=folder,
                uploaded_at=now,
                expires_at=now + self.ttl,
                path=final,
                account=account,
            )
            self._files[file_id] = stored
            return stored

    def delete(self, file_id: str, account: str | None = None) -> bool:
        """Delete a file (of `account`, if given: another account's reads as not found)."""
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None or account not in (None, stored.account):
                return False
            del self._files[file_id]
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        return not stored.expired

    def expire(self, file_id: str) -> bool:
        stored = self._files.get(file_id)
        if stored is None:
            return False
        stored.expired = True
        return True

    def clear(self) -> None:
        with self._lock:
            files, self._files = self._files, {}
        for stored in files.values():
            stored.path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            root, self._root = self._root, None
            self._files = {}
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
