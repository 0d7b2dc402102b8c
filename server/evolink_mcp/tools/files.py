"""upload_file, list_files and delete_file: the files API (uploads live 72 hours)."""

import base64
import binascii
import re
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import BaseModel, Field

from ..catalog import reference_kind
from ..evolink import EvolinkError, FileList, FileQuota, InvalidRequestError, UploadedFile
from ..media import MAX_UPLOAD_BYTES, local_path, open_local_image, sniff_image
from .common import READ_ONLY_REMOTE, REMOTE_DELETE, REMOTE_WRITE, Deps, ToolSpec, deps_of, error_result, result

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


class UploadOutput(BaseModel):
    file_id: str
    file_url: str
    file_name: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    expires_at: str | None = None
    download_url: str | None = None
    next_step: str


class FileOut(BaseModel):
    file_id: str
    file_name: str | None = None
    file_size: int | None = None
    upload_time: str | None = None


class QuotaOut(BaseModel):
    user_group: str | None = None
    used_files: int | None = None
    max_files: int | None = None
    remain_files: int | None = None


class FileListOutput(BaseModel):
    page: int
    total: int
    files: list[FileOut]
    quota: QuotaOut | None = None


class DeleteOutput(BaseModel):
    file_id: str
    deleted: bool


def check_base64(data: str, *, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse oversized (judged before decoding), malformed or non-image base64 before anything is sent."""
    limit = f"{max_bytes / 1048576:g} MB"
    if len(data) > (max_bytes + 2) // 3 * 4 + 200:  # + room for a data: URL prefix
        raise InvalidRequestError(f"base64_data is over the {limit} upload limit.")
    payload = _DATA_URL.sub("", data.strip(), count=1)
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError("base64_data is not valid base64 (raw base64 or a data: URL).") from None
    if sniff_image(raw[:16]) is None:
        raise InvalidRequestError("base64_data is not a JPEG, PNG, GIF or WebP image (checked by its content).")
    if len(raw) > max_bytes:
        raise InvalidRequestError(f"base64_data is over the {limit} upload limit.")


def _upload_text(uploaded: UploadedFile) -> str:
    size = f", {uploaded.file_size} bytes" if uploaded.file_size is not None else ""
    expires = f", expires {uploaded.expires_at}" if uploaded.expires_at else ""
    return (
        f"Uploaded {uploaded.file_name or uploaded.file_id} (file_id {uploaded.file_id}{size}{expires}).\n"
        f"file_url: {uploaded.file_url}\nUse the file_url in generate_image's image_urls."
    )


async def _upload(
    deps: Deps,
    file_path: str | None,
    base64_data: str | None,
    file_url: str | None,
    upload_path: str | None,
    file_name: str | None,
) -> UploadedFile:
    """upload_file's one source sent the way Evolink takes it."""
    sources = [s for s in (file_path, base64_data, file_url) if s]
    if len(sources) != 1:
        raise InvalidRequestError(
            f"Give exactly one of file_path, base64_data or file_url ({'none' if not sources else len(sources)} given)."
        )
    if file_path:
        path = deps.service.own_image(file_path, "file_path")  # a saved image's evolink:// URI: its file
        image = await anyio.to_thread.run_sync(
            lambda: open_local_image(path, param="file_path", allowed_dirs=deps.allowed_dirs)
        )
        with image:  # the file checked is the file sent, whatever happens to its path meanwhile
            return await deps.client.upload_file(
                image.file,
                upload_path=upload_path,
                file_name=file_name or local_path(path).name,
                mime_type=image.mime_type,
            )
    if base64_data:
        check_base64(base64_data)
        return await deps.client.upload_base64(base64_data, upload_path=upload_path, file_name=file_name)
    assert file_url is not None
    if reference_kind(file_url) != "url":
        raise InvalidRequestError(f"file_url must be a public http(s) URL; got {file_url[:100]!r}.")
    return await deps.client.upload_url(file_url, upload_path=upload_path, file_name=file_name)


def file_tools() -> list[ToolSpec]:
    async def upload_file(
        ctx: Context[Any],
        file_path: Annotated[str | None, Field(description="Absolute path of a local image.")] = None,
        base64_data: Annotated[str | None, Field(description="Image as raw base64 or a data: URL.")] = None,
        file_url: Annotated[str | None, Field(description="Public http(s) URL for Evolink to fetch.")] = None,
        upload_path: Annotated[str | None, Field(description="Folder name to group uploads.")] = None,
        file_name: Annotated[str | None, Field(description="Name to store it under (same name replaces).")] = None,
    ) -> Annotated[CallToolResult, UploadOutput]:
        """Upload an image from exactly one source (JPEG, PNG, GIF, WebP; up to 100 MB; free; kept 72 h).
        Returns a file_url for image_urls."""
        deps = deps_of(ctx)
        try:
            uploaded = await _upload(deps, file_path, base64_data, file_url, upload_path, file_name)
        except EvolinkError as exc:
            return error_result(exc)
        out = UploadOutput(
            **uploaded.model_dump(include=set(UploadOutput.model_fields) - {"next_step"}),
            next_step="Pass file_url in generate_image's image_urls.",
        )
        return result(_upload_text(uploaded), out.model_dump(mode="json", exclude_none=True))

    async def list_files(
        ctx: Context[Any],
        page: Annotated[int, Field(ge=1, description="Page number, from 1.")] = 1,
        page_size: Annotated[int, Field(ge=1, le=100, description="Files per page.")] = 20,
    ) -> Annotated[CallToolResult, FileListOutput]:
        """List uploaded files and the file quota (free)."""
        deps = deps_of(ctx)
        listing: FileList | None = None
        quota: FileQuota | None = None
        errors: list[EvolinkError] = []

        async def get_listing() -> None:
            nonlocal listing
            try:
                listing = await deps.client.list_files(page, page_size)
            except EvolinkError as exc:
                errors.append(exc)

        async def get_quota() -> None:
            nonlocal quota
            try:
                quota = await deps.client.get_quota()
            except EvolinkError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(get_listing)
            group.start_soon(get_quota)
        if errors:
            return error_result(errors[0])
        assert listing is not None and quota is not None
        out = FileListOutput(
            page=page,
            total=listing.total,
            files=[FileOut(**f.model_dump(include=set(FileOut.model_fields))) for f in listing.files],
            quota=QuotaOut(**quota.model_dump(include=set(QuotaOut.model_fields))),
        )
        lines = [f"{listing.total} file(s); page {page}:"]
        lines += [
            f"- {f.file_id} {f.file_name or ''} ({f.file_size or '?'} bytes, {f.upload_time or '?'})"
            for f in listing.files
        ] or ["(none on this page)"]
        if quota.max_files is not None:
            lines.append(f"Quota: {quota.used_files}/{quota.max_files} used, {quota.remain_files} left.")
        return result("\n".join(lines), out.model_dump(mode="json", exclude_none=True))

    async def delete_file(
        ctx: Context[Any],
        file_id: Annotated[str, Field(min_length=1, max_length=256, description="The file_id to delete.")],
    ) -> Annotated[CallToolResult, DeleteOutput]:
        """Delete an uploaded file, freeing quota. Its file_url stops working."""
        deps = deps_of(ctx)
        try:
            await deps.client.delete_file(file_id.strip())
        except EvolinkError as exc:
            return error_result(exc)
        out = DeleteOutput(file_id=file_id, deleted=True)
        return result(f"Deleted file {file_id}.", out.model_dump(mode="json"))

    return [
        ToolSpec.of(upload_file, "Upload an image", REMOTE_WRITE, core=True),
        ToolSpec.of(list_files, "List uploaded files", READ_ONLY_REMOTE),
        ToolSpec.of(delete_file, "Delete an uploaded file", REMOTE_DELETE),
    ]
