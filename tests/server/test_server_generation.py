"""generate_image and check_task end to end: submit, follow, save, preview, resume, cancel and fail."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx2
import pytest
from mcp.server.mcpserver import MCPServer
from PIL import Image

from evolink_mcp.images.previews import PREVIEW_MAX_EDGE, PREVIEW_QUEUE_MAX, PREVIEW_SLOTS
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.settings import Settings
from evolink_mcp.tools import Deps
from mcp_session import INSTANT, Connect, ServerFor, Session, saved_images

pytestmark = pytest.mark.anyio

# The task is finished when submitted: for tests where following it is not the point.


@pytest.fixture
async def http(anyio_backend: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_generate_image_follows_the_task_with_progress_until_it_completes(
    mcp: Session, sandbox: SandboxServer
) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    result = await mcp.call("generate_image", {"prompt": "a red fox in the snow"}, progress_callback=on_progress)

    assert not result.is_error, mcp.text(result)
    assert mcp.data(result)["status"] == "completed"
    assert len(updates) >= 2
    assert all(total == 100 for _, total, _ in updates)
    assert [p for p, _, _ in updates] == sorted(p for p, _, _ in updates)
    task_id = mcp.data(result)["task_id"]
    # The first message names the task as soon as it exists: a client that stops waiting still learns its id.
    assert updates[0][2] is not None and updates[0][2].startswith(f"task {task_id} submitted (")
    assert updates[0][2].split("; ")[1].split()[0] in ("pending", "processing")
    assert all(task_id not in (message or "") for _, _, message in updates[1:])
    assert updates[-1] == (100, 100, "completed 100%")
    polls = sandbox.state.requests("tasks")
    assert polls and all(p.path == f"/v1/tasks/{mcp.data(result)['task_id']}" for p in polls)


async def test_a_completed_generation_is_saved_and_reported_in_text_and_structured_content(
    mcp: Session, sandbox: SandboxServer, settings: Settings, http: httpx2.AsyncClient
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a lighthouse at dusk" + INSTANT, "size": "16:9"})

    assert not result.is_error, mcp.text(result)
    data = mcp.data(result)
    (submitted,) = sandbox.state.requests("generations")
    assert data["task_id"] == submitted.task_id
    assert data["status"] == "completed" and data["progress"] == 100
    assert data["model"] == "gemini-3.1-flash-image-preview"
    assert data["credits_reserved"] == sandbox.state.tasks[submitted.task_id].credits
    (image,) = data["images"]
    path = Path(image["path"])
    assert path.parent == settings.output_dir and await anyio.Path(path).is_file()
    assert image["bytes"] == (await anyio.Path(path).stat()).st_size and image["mime_type"] == "image/png"
    assert image["url"].startswith(f"{sandbox.base_url}/results/{data['task_id']}/")
    expires = parse_time(data["urls_expire_at"]) - datetime.now(timezone.utc)
    assert timedelta(hours=23) < expires <= timedelta(hours=24)
    assert "check_task" not in data["next_step"]
    text = mcp.text(result)
    for fact in (data["task_id"], image["path"], image["url"], data["urls_expire_at"]):
        assert fact in text
    assert len(sandbox.state.requests("results")) == 1
    assert await anyio.Path(path).read_bytes() == (await http.get(image["url"])).content


async def test_a_json_sidecar_next_to_the_image_records_how_it_was_made(mcp: Session, sandbox: SandboxServer) -> None:
    prompt = "a paper boat on a pond" + INSTANT
    arguments = {"prompt": prompt, "model": "nano-banana-pro", "size": "3:2", "quality": "1K"}
    before = datetime.now(timezone.utc)

    result = await mcp.call("generate_image", arguments)

    data = mcp.data(result)
    image_path = Path(data["images"][0]["path"])
    (sidecar_path,) = image_path.parent.glob("*.json")
    assert sidecar_path.name.removesuffix(".json") == image_path.stem.rsplit("_", 1)[0]
    sidecar = json.loads(sidecar_path.read_text("utf-8"))
    assert sidecar["prompt"] == prompt
    assert sidecar["model"] == "gemini-3-pro-image-preview"  # the alias resolved to the canonical id
    assert sidecar["parameters"] == {"size": "3:2", "quality": "1K"}
    assert sidecar["task_id"] == data["task_id"]
    assert sidecar["credits_reserved"] == data["credits_reserved"]
    assert sidecar["source_urls"] == [image["url"] for image in data["images"]]
    assert sidecar["urls_expire_at"] is not None
    assert before <= parse_time(sidecar["submitted_at"]) <= parse_time(sidecar["saved_at"])
    assert [entry["path"] for entry in sidecar["images"]] == [str(image_path)]
    (submitted,) = sandbox.state.requests("generations")
    assert submitted.body == {
        "model": "gemini-3-pro-image-preview",
        "prompt": prompt,
        "size": "3:2",
        "quality": "1K",
    }


async def test_a_completed_generation_shows_an_inline_preview_and_links_each_saved_image_as_a_resource(
    mcp: Session,
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a teapot" + INSTANT})

    data = mcp.data(result)
    (preview,) = mcp.images(result)
    assert preview.mime_type == "image/jpeg"
    with Image.open(io.BytesIO(base64.b64decode(preview.data))) as shown:
        assert max(shown.size) <= PREVIEW_MAX_EDGE
    (link,) = mcp.links(result)
    image = data["images"][0]
    assert link.uri == image["resource_uri"] and link.name == Path(image["path"]).name
    assert link.mime_type == "image/png" and link.size == image["bytes"]
    read = await mcp.client.read_resource(link.uri)
    (contents,) = read.contents
    assert contents.mime_type == "image/png"
    assert base64.b64decode(contents.blob) == await anyio.Path(image["path"]).read_bytes()  # type: ignore[union-attr]
    listed = await mcp.client.list_resources(cache_mode="bypass")
    assert link.uri in [str(r.uri) for r in listed.resources]


@asynccontextmanager
async def saturated_previews() -> AsyncIterator[None]:
    """Every preview core busy and PREVIEW_QUEUE_MAX previews waiting for one, as in a burst of results."""
    holders = [object() for _ in range(int(PREVIEW_SLOTS.total_tokens))]
    for holder in holders:
        PREVIEW_SLOTS.acquire_on_behalf_of_nowait(holder)
    try:
        async with anyio.create_task_group() as group:
            for _ in range(PREVIEW_QUEUE_MAX):
                group.start_soon(PREVIEW_SLOTS.acquire_on_behalf_of, object())
            while PREVIEW_SLOTS.statistics().tasks_waiting < PREVIEW_QUEUE_MAX:
                await anyio.lowlevel.checkpoint()
            yield
            group.cancel_scope.cancel()
    finally:
        for holder in holders:
            PREVIEW_SLOTS.release_on_behalf_of(holder)


async def test_a_saturated_server_sends_the_result_without_a_preview_and_check_task_shows_it_later(
    mcp: Session, sandbox: SandboxServer
) -> None:
    async with saturated_previews():
        result = await mcp.call("generate_image", {"prompt": "a busy day" + INSTANT})

    assert not result.is_error
    data = mcp.data(result)
    (image,) = data["images"]
    assert await anyio.Path(image["path"]).is_file() and len(mcp.links(result)) == 1
    assert mcp.images(result) == []
    assert "No inline preview of 1 image(s): the server is busy" in mcp.text(result)

    later = await mcp.call("check_task", {"task_id": data["task_id"]})

    assert len(mcp.images(later)) == 1 and "No inline preview" not in mcp.text(later)
    assert len(sandbox.state.requests("results")) == 1  # the preview comes from the saved file


async def test_check_task_on_a_completed_task_returns_the_same_files_without_downloading_again(
    mcp: Session, sandbox: SandboxServer
) -> None:
    first = await mcp.call("generate_image", {"prompt": "two cats" + INSTANT})
    task_id = mcp.data(first)["task_id"]
    assert len(sandbox.state.requests("results")) == 1

    again = await mcp.call("check_task", {"task_id": task_id})
    once_more = await mcp.call("check_task", {"task_id": task_id, "wait_seconds": 5})

    assert len(sandbox.state.requests("results")) == 1
    for later in (again, once_more):
        assert not later.is_error
        assert mcp.data(later)["images"] == mcp.data(first)["images"]
        assert mcp.data(later)["images"][0]["path"] in mcp.text(later)
        assert [link.uri for link in mcp.links(later)] == [link.uri for link in mcp.links(first)]
    assert len(list(Path(mcp.data(first)["images"][0]["path"]).parent.iterdir())) == 2  # one image, one sidecar


async def test_a_task_outlasting_the_wait_returns_a_resumable_result_that_check_task_completes(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    async with connect(server_for(wait_seconds=0.3)) as mcp:
        pending = await mcp.call("generate_image", {"prompt": "a slow mural [sandbox:duration=1]"})

        assert not pending.is_error
        data = mcp.data(pending)
        assert data["status"] in ("pending", "processing") and 0 <= data["progress"] < 100
        assert data["images"] == [] and mcp.images(pending) == []
        assert "check_task" in data["next_step"] and data["task_id"] in data["next_step"]
        assert data["task_id"] in mcp.text(pending) and "check_task" in mcp.text(pending)
        assert sandbox.state.requests("results") == []

        done = await mcp.call("check_task", {"task_id": data["task_id"], "wait_seconds": 5})

    assert not done.is_error, mcp.text(done)
    assert mcp.data(done)["status"] == "completed"
    assert await anyio.Path(mcp.data(done)["images"][0]["path"]).is_file()
    assert len(mcp.images(done)) == 1


async def test_generate_image_with_wait_seconds_zero_returns_at_once_and_the_server_finishes_the_task(
    mcp: Session, sandbox: SandboxServer, settings: Settings
) -> None:
    started = time.monotonic()
    result = await mcp.call("generate_image", {"prompt": "later [sandbox:duration=0.5]", "wait_seconds": 0})

    assert time.monotonic() - started < 0.5
    assert not result.is_error
    data = mcp.data(result)
    assert data["status"] == "pending" and data["followed_in_background"] is True
    assert "check_task" in data["next_step"]
    saved = await saved_images(settings.output_dir)
    assert len(saved) == 1 and len(sandbox.state.requests("generations")) == 1

    again = await mcp.call("check_task", {"task_id": data["task_id"]})

    assert [image["path"] for image in mcp.data(again)["images"]] == [str(saved[0])]
    assert len(sandbox.state.requests("results")) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_cancelling_generate_image_ends_the_call_at_once_and_the_server_still_saves_the_images(
    mode: str, server: MCPServer[Deps], connect: Connect, sandbox: SandboxServer, settings: Settings
) -> None:
    updates = 0
    polled = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        nonlocal updates
        updates += 1
        if updates == 2:  # the first comes from the submission, the second from a poll of the running task
            polled.set()

    async with connect(server, mode=mode) as mcp:
        scope = anyio.CancelScope()

        async def generate() -> None:
            with scope:
                await mcp.client.call_tool(
                    "generate_image",
                    # 3 s: the first poll (at 85% of the estimate) sees it running, and the next is 0.5 s
                    # later, so the cancel lands while the call sleeps, before it could start a download.
                    {"prompt": "never mind [sandbox:duration=3]"},
                    progress_callback=on_progress,
                )

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(generate)
                await polled.wait()
                cancelled_at = time.monotonic()
                scope.cancel()
        assert scope.cancelled_caught
        assert time.monotonic() - cancelled_at < 0.5

        saved = await saved_images(settings.output_dir)

        assert len(saved) == 1
        assert len(sandbox.state.requests("generations")) == 1  # followed, never resubmitted
        assert len(sandbox.state.requests("results")) == 1
        assert not (await mcp.call("list_models", {"mode": "inpaint"})).is_error  # the session lives on


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("content_policy_violation", False), ("generation_timeout", True), ("code_nobody_documented", True)],
)
async def test_a_failed_task_is_an_error_result_with_its_task_code_retryability_and_next_step(
    code: str, retryable: bool, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": f"forbidden [sandbox:fail={code}]" + INSTANT})

    assert result.is_error  # frameworks that branch on isError must not report success
    data = mcp.data(result)
    assert mcp.error(result)["category"] == "task_failed"
    assert data["status"] == "failed" and data["images"] == []
    error = data["error"]
    assert error["code"] == code and error["retryable"] is retryable
    assert error["message"] and error["next_step"] and data["next_step"] == error["next_step"]
    text = mcp.text(result)
    assert data["task_id"] in text and code in text and error["next_step"] in text
    assert f"Retryable: {'yes' if retryable else 'no'}" in text
    assert error["charged"] == "unknown" and "Charged: unknown" in text  # created and reserved; refunds undocumented
    assert sandbox.state.requests("results") == []


async def test_a_task_ending_in_an_unknown_status_is_reported_as_is_and_no_longer_polled(
    mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "stopped [sandbox:status=cancelled]"}, seconds=5)

    assert not result.is_error
    data = mcp.data(result)
    assert data["status"] == "cancelled" and data["images"] == [] and "error" not in data
    assert "generation" in data["next_step"] and "check_task" not in data["next_step"]
    assert "'cancelled'" in mcp.text(result) and data["task_id"] in mcp.text(result)
    assert len(sandbox.state.requests("tasks")) == 1
    assert sandbox.state.requests("results") == []


@pytest.mark.parametrize("budget", [120_000, 600_000], ids=["tight", "default"])
async def test_previews_of_four_4k_images_stay_within_the_budget_and_the_result_well_under_1_mib(
    budget: int, server_for: ServerFor, connect: Connect
) -> None:
    assert Settings().preview_max_bytes == 600_000  # EVOLINK_PREVIEW_MAX_BYTES's default
    async with connect(server_for(preview_max_bytes=budget)) as mcp:
        result = await mcp.call(
            "generate_image",
            {"prompt": "four posters" + INSTANT, "model": "doubao-seedream-4.0", "n": 4, "quality": "4K"},
            seconds=40,
        )

    assert not result.is_error, mcp.text(result)
    data = mcp.data(result)
    assert len(data["images"]) == 4 and all([await anyio.Path(i["path"]).is_file() for i in data["images"]])
    with Image.open(data["images"][0]["path"]) as full:
        assert full.size == (4096, 4096)
    previews = mcp.images(result)
    assert len(previews) == 4  # each image shrunk to fit its share, none dropped
    assert sum(len(p.data) for p in previews) <= budget
    for preview in previews:
        with Image.open(io.BytesIO(base64.b64decode(preview.data))) as shown:
            assert max(shown.size) <= PREVIEW_MAX_EDGE
    assert len(result.model_dump_json(by_alias=True, exclude_none=True)) < 800_000
    assert len(mcp.links(result)) == 4


async def test_with_a_zero_preview_budget_results_carry_no_image_content_but_still_name_the_files(
    server_for: ServerFor, connect: Connect
) -> None:
    async with connect(server_for(preview_max_bytes=0)) as mcp:
        result = await mcp.call(
            "generate_image",
            {"prompt": "four stamps" + INSTANT, "model": "doubao-seedream-4.0", "n": 4, "quality": "1K"},
        )

    data = mcp.data(result)
    assert mcp.images(result) == []
    assert len(data["images"]) == 4 and len(mcp.links(result)) == 4
    assert all(image["path"] in mcp.text(result) for image in data["images"])


async def test_local_reference_paths_are_uploaded_and_the_generation_sends_their_file_urls(
    mcp: Session,
    sandbox: SandboxServer,
    make_png: Callable[..., Path],
    http: httpx2.AsyncClient,
    tmp_path: Path,
) -> None:
    plain = make_png("refs/plain.png", color=(250, 0, 0))
    as_url = make_png("refs/as url.png", color=(0, 0, 250))

    result = await mcp.call(
        "generate_image", {"prompt": "blend them" + INSTANT, "image_urls": [str(plain), as_url.as_uri()]}
    )

    assert not result.is_error, mcp.text(result)
    assert len(sandbox.state.requests("files/upload/stream")) == 2
    (submitted,) = sandbox.state.requests("generations")
    sent = submitted.body["image_urls"]
    assert len(sent) == 2 and all(url.startswith(f"{sandbox.base_url}/files/") for url in sent)
    assert str(tmp_path) not in json.dumps(submitted.body) and "file:" not in json.dumps(submitted.body)
    for url, original in zip(sent, (plain, as_url), strict=True):
        assert (await http.get(url)).content == original.read_bytes()


async def test_two_local_references_with_the_same_file_name_stay_two_different_images(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path], http: httpx2.AsyncClient
) -> None:
    # The files API overwrites an upload with the same name: each local file needs a name of its own.
    red = make_png("shoot-1/photo.png", color=(250, 0, 0))
    blue = make_png("shoot-2/photo.png", color=(0, 0, 250))

    result = await mcp.call("generate_image", {"prompt": "compare" + INSTANT, "image_urls": [str(red), str(blue)]})

    assert not result.is_error, mcp.text(result)
    (submitted,) = sandbox.state.requests("generations")
    sent = submitted.body["image_urls"]
    assert len(set(sent)) == 2
    assert [(await http.get(url)).content for url in sent] == [red.read_bytes(), blue.read_bytes()]


async def test_a_server_limited_to_some_directories_refuses_paths_outside_them_and_sends_nothing(
    server_for: ServerFor,
    connect: Connect,
    sandbox: SandboxServer,
    make_png: Callable[..., Path],
    tmp_path: Path,
) -> None:
    allowed = tmp_path / "allowed"
    inside = make_png("allowed/inside.png")
    outside = make_png("elsewhere/outside.png")
    escaping_link = allowed / "link.png"
    escaping_link.symlink_to(outside)
    outside_refs = [
        str(outside),
        str(allowed / ".." / "elsewhere" / "outside.png"),
        str(escaping_link),
        outside.as_uri(),
    ]

    async with connect(server_for(allowed_dirs=[allowed])) as mcp:
        for ref in outside_refs:
            refused = await mcp.call("generate_image", {"prompt": "edit" + INSTANT, "image_urls": [ref]})
            assert refused.is_error, ref
            assert mcp.error(refused)["category"] == "invalid_request" and mcp.error(refused)["charged"] == "no"
            assert "outside the directories" in mcp.error(refused)["message"] and str(allowed) in mcp.text(refused)
            upload = await mcp.call("upload_file", {"file_path": ref})
            assert upload.is_error and mcp.error(upload)["category"] == "invalid_request", ref
        assert sandbox.state.requests() == []

        accepted = await mcp.call("generate_image", {"prompt": "edit" + INSTANT, "image_urls": [str(inside)]})

    assert not accepted.is_error, mcp.text(accepted)
    assert len(sandbox.state.requests("files/upload/stream")) == 1


async def test_one_local_file_referenced_as_a_path_and_as_a_file_url_is_uploaded_once(
    mcp: Session, sandbox: SandboxServer, make_png: Callable[..., Path]
) -> None:
    reference = make_png("refs/once.png")

    result = await mcp.call(
        "generate_image", {"prompt": "twice" + INSTANT, "image_urls": [str(reference), reference.as_uri()]}
    )

    assert not result.is_error, mcp.text(result)
    assert len(sandbox.state.requests("files/upload/stream")) == 1
    (submitted,) = sandbox.state.requests("generations")
    first, second = submitted.body["image_urls"]
    assert first == second and first.startswith(f"{sandbox.base_url}/files/")
