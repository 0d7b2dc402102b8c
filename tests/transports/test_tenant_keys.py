"""Per-user Evolink keys over HTTP (EVOLINK_TENANT_KEYS=header): two callers with their own keys on one server,
over streamable HTTP and SSE, see nothing of each other's: tasks, files, quota, resources, saved images and their
folders, the studio, client request ids, the dedupe window; and no key is ever echoed or logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import transport_support
from mcp import Client
from mcp.client.extension import advertise
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp_types import BlobResourceContents
from transport_support import (
    MCP_TOKEN,
    TASK_SECONDS,
    HttpServer,
    child_env,
    evolink_argv,
    free_port,
    stop,
    text_of,
    wait_until_answering,
    write_png,
)

from process_support import INITIALIZE, MCP_HEADERS

# Real server and sandbox processes, about 20 s in all: with the other per-process suites, in CI's slow stage.
pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TENANT_SECRET = "tenant-secret-5d1f0c9b8a7e6d5c4b3a2f1e0d9c8b7a"
ALICE_KEY = "sk-alice-PRIVATE-1a2b3c4d5e6f7a8b"
BOB_KEY = "sk-bob-PRIVATE-9f8e7d6c5b4a3f2e"
KEY_HEADER = "X-Evolink-Api-Key"
CALL_TIMEOUT = 60.0
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})  # what a client with the studio (MCP Apps) sends


def tenant_folder(output_dir: Path, key: str) -> Path:
    return output_dir / hmac.new(TENANT_SECRET.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]


@contextmanager
def serving(root: Path, *args: str, log_name: str = "server.log", **env: str) -> Iterator[HttpServer]:
    """`evolink-mcp serve *args` with per-user keys (a bearer token, the tenant secret, DEBUG logs), its folders in
    `root`; no key in its log when it has stopped."""
    (root / "allowed").mkdir(exist_ok=True)
    with transport_support.serving(
        root,
        *args,
        log_name=log_name,
        EVOLINK_MCP_TOKEN=MCP_TOKEN,
        EVOLINK_ALLOWED_DIRS=str(root / "allowed"),
        EVOLINK_TENANT_KEYS="header",
        EVOLINK_TENANT_SECRET=TENANT_SECRET,
        EVOLINK_LOG_LEVEL="DEBUG",
        **env,
    ) as server:
        yield server
    log_text = server.log_text()
    assert ALICE_KEY not in log_text and BOB_KEY not in log_text


@contextmanager
def sandbox_running(root: Path, task_seconds: str) -> Iterator[str]:
    """`evolink-mcp sandbox` in its own process, tasks taking `task_seconds`, its log in `root`; its base URL."""
    port = free_port()
    log = root / "sandbox.log"
    argv = evolink_argv("sandbox", "--port", str(port), "--task-seconds", task_seconds)
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv, env=child_env(root / "home"), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/_sandbox/health", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sandbox the tenant server calls, in a process of its own so that a test can ask it what reached it."""
    with sandbox_running(tmp_path_factory.mktemp("upstream"), TASK_SECONDS) as url:
        yield url


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory: pytest.TempPathFactory, upstream: str) -> Iterator[HttpServer]:
    """`evolink-mcp serve` with per-user keys, on the `upstream` sandbox."""
    root = tmp_path_factory.mktemp("tenant-server")
    with serving(root, EVOLINK_BASE_URL=upstream, EVOLINK_FILES_BASE_URL=upstream) as server:
        yield server


async def posts_upstream(sandbox_url: str) -> int:
    """How many POSTs (task creations, uploads) have reached the sandbox."""
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(f"{sandbox_url}/_sandbox/requests", params={"method": "POST"})
    return len(response.json()["requests"])


def headers(server: HttpServer, key: str) -> dict[str, str]:
    return {**server.auth, KEY_HEADER: key}


@asynccontextmanager
async def streamable_http_session(server: HttpServer, key: str, *, apps: bool = False) -> AsyncIterator[Client]:
    """A client sending `key`; with `apps`, one that negotiated MCP Apps (the studio's tools)."""
    async with (
        httpx2.AsyncClient(headers=headers(server, key), timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(
            streamable_http_client(f"{server.base_url}/mcp", http_client=http), extensions=[APPS] if apps else None
        ) as client,
    ):
        yield client


@asynccontextmanager
async def sse_session(server: HttpServer, key: str, *, apps: bool = False) -> AsyncIterator[Client]:
    url = f"{server.base_url}/sse"
    transport = sse_client(url, headers=headers(server, key), sse_read_timeout=60.0)
    async with Client(transport, extensions=[APPS] if apps else None) as client:
        yield client


SESSIONS = {"streamable-http": streamable_http_session, "sse": sse_session}


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
    with anyio.fail_after(CALL_TIMEOUT):
        result = await client.call_tool(tool, arguments)
    text = text_of(result)
    assert ALICE_KEY not in text and BOB_KEY not in text
    return bool(result.is_error), result.structured_content or {}, text


@pytest.mark.parametrize("transport", SESSIONS)
async def test_two_keys_see_nothing_of_each_others_tasks_images_and_resources(
    tenant_server: HttpServer, transport: str
) -> None:
    session = SESSIONS[transport]
    async with session(tenant_server, ALICE_KEY) as alice, session(tenant_server, BOB_KEY) as bob:
        failed, made, text = await call(alice, "generate_image", {"prompt": f"alice's fox over {transport}"})
        assert not failed, text
        task_id, path = made["task_id"], Path(made["images"][0]["path"])
        uri = made["images"][0]["resource_uri"]
        assert path.parent == tenant_folder(tenant_server.output_dir, ALICE_KEY)

        # Bob: Alice's task is unknown, here and upstream; not in his list, his resources or his resource reads.
        failed, checked, text = await call(bob, "check_task", {"task_id": task_id})
        assert failed and checked["error"]["category"] == "not_found", text
        _, bobs, _ = await call(bob, "list_tasks", {})
        assert task_id not in json.dumps(bobs)
        _, alices, _ = await call(alice, "list_tasks", {})
        assert task_id in json.dumps(alices)
        with anyio.fail_after(CALL_TIMEOUT):
            listed = {str(r.uri) for r in (await bob.list_resources()).resources}
            assert uri not in listed and uri in {str(r.uri) for r in (await alice.list_resources()).resources}
            for foreign in (uri, f"evolink://tasks/{task_id}"):
                with pytest.raises(Exception, match="No "):
                    await bob.read_resource(foreign)
            (content,) = (await alice.read_resource(uri)).contents
            assert isinstance(content, BlobResourceContents)
            assert base64.b64decode(content.blob) == await anyio.Path(path).read_bytes()

        # Nor can he name Alice's saved image as a reference or an upload.
        failed, _, text = await call(bob, "upload_file", {"file_path": uri})
        assert failed, text


@pytest.mark.parametrize("transport", SESSIONS)
async def test_another_keys_folder_and_saved_images_are_refused_by_path_with_nothing_sent(
    tenant_server: HttpServer, upstream: str, transport: str
) -> None:
    session = SESSIONS[transport]
    async with session(tenant_server, ALICE_KEY) as alice, session(tenant_server, BOB_KEY) as bob:
        failed, made, text = await call(alice, "generate_image", {"prompt": f"alice's owl over {transport}"})
        assert not failed, text
        alices_image = Path(made["images"][0]["path"])
        alices_folder = alices_image.parent
        through_bobs = tenant_folder(tenant_server.output_dir, BOB_KEY) / ".." / alices_folder.name
        alices_files = sorted(alices_folder.iterdir())
        sent = await posts_upstream(upstream)

        for folder in (alices_folder, through_bobs):
            arguments = {"prompt": "an owl in alice's folder", "output_dir": str(folder)}
            failed, refused, text = await call(bob, "generate_image", arguments)
            assert failed and refused["error"]["category"] == "invalid_request", text
            assert "outside the folders this server may write" in text
        for image in (alices_image, through_bobs / alices_image.name):
            failed, refused, text = await call(bob, "generate_image", {"prompt": "alike", "image_urls": [str(image)]})
            assert failed and refused["error"]["category"] == "invalid_request", text
            assert "outside the directories this server may read" in text
            failed, refused, text = await call(bob, "upload_file", {"file_path": str(image)})
            assert failed and refused["error"]["category"] == "invalid_request", text
            assert "outside the directories this server may read" in text

        assert await posts_upstream(upstream) == sent  # no task made, nothing uploaded
        assert sorted(alices_folder.iterdir()) == alices_files


@pytest.mark.parametrize("transport", SESSIONS)
async def test_the_studio_shows_each_key_only_its_own_tasks(tenant_server: HttpServer, transport: str) -> None:
    session = SESSIONS[transport]
    async with (
        session(tenant_server, ALICE_KEY, apps=True) as alice,
        session(tenant_server, BOB_KEY, apps=True) as bob,
    ):
        task_ids = []
        for client, name in ((alice, "alice"), (bob, "bob")):
            failed, made, text = await call(client, "generate_image", {"prompt": f"{name}'s lantern over {transport}"})
            assert not failed, text
            task_ids.append(made["task_id"])
        alices, bobs = task_ids

        for client, key, own, other in ((alice, ALICE_KEY, alices, bobs), (bob, BOB_KEY, bobs, alices)):
            _, listed, _ = await call(client, "list_tasks", {"limit": 60})
            failed, shown, text = await call(client, "show_images", {"limit": 60})
            assert not failed, text
            shown_ids = [task.get("task_id") for task in shown["tasks"]]
            assert own in shown_ids and other not in shown_ids and other not in text
            assert shown_ids == [task.get("task_id") for task in listed["tasks"]]
            folder = tenant_folder(tenant_server.output_dir, key)
            assert all(Path(i["path"]).is_relative_to(folder) for task in shown["tasks"] for i in task["images"])

            failed, looked_up, text = await call(client, "studio_tasks", {"task_ids": [own, other]})
            assert not failed, text
            assert [task["task_id"] for task in looked_up["tasks"]] == [own] and other not in text


@pytest.mark.parametrize("transport", SESSIONS)
async def test_a_client_request_id_and_the_dedupe_window_are_each_keys_own(
    tenant_server: HttpServer, transport: str
) -> None:
    session = SESSIONS[transport]
    request_id = f"shared-id-{transport}"
    async with session(tenant_server, ALICE_KEY) as alice, session(tenant_server, BOB_KEY) as bob:
        arguments = {"prompt": f"a kite over {transport}", "wait_seconds": 0}
        _, first, text = await call(alice, "generate_image", {**arguments, "client_request_id": request_id})
        assert "task_id" in first, text
        # The same id (and a different request) from Bob is his own, not "already used".
        failed, other, text = await call(bob, "generate_image", {"prompt": "a boat", "client_request_id": request_id})
        assert not failed, text
        assert other["task_id"] != first["task_id"]
        # The same request without an id, inside the window: Bob gets a task of his own, not Alice's.
        failed, again, text = await call(bob, "generate_image", arguments)
        assert not failed, text
        assert again["task_id"] != first["task_id"]


@pytest.mark.parametrize("transport", SESSIONS)
async def test_files_and_quota_are_each_keys_own(tenant_server: HttpServer, transport: str) -> None:
    session = SESSIONS[transport]
    reference = write_png(tenant_server.allowed_dir / f"shared-{transport}.png")
    data = base64.b64encode(reference.read_bytes()).decode()
    async with session(tenant_server, ALICE_KEY) as alice, session(tenant_server, BOB_KEY) as bob:
        failed, uploaded, text = await call(alice, "upload_file", {"base64_data": data, "file_name": "mine.png"})
        assert not failed, text
        file_id = uploaded["file_id"]
        _, bobs, _ = await call(bob, "list_files", {})
        assert file_id not in json.dumps(bobs)
        assert bobs["quota"]["used_files"] == 0
        failed, _, text = await call(bob, "delete_file", {"file_id": file_id})
        assert failed, text
        _, alices, _ = await call(alice, "list_files", {})
        assert file_id in json.dumps(alices)
        # The operator's shared folder is no tenant's to read.
        failed, _, text = await call(alice, "upload_file", {"file_path": str(reference)})
        assert failed, text


@pytest.mark.parametrize("path", ["/mcp", "/sse"])
def test_a_request_without_its_callers_key_is_refused(tenant_server: HttpServer, path: str) -> None:
    response = httpx2.get(f"{tenant_server.base_url}{path}", headers=tenant_server.auth, timeout=5)

    assert response.status_code == 401
    assert KEY_HEADER in response.json()["message"]


def test_the_bearer_token_is_still_required_with_a_key(tenant_server: HttpServer) -> None:
    response = httpx2.get(f"{tenant_server.base_url}/sse", headers={KEY_HEADER: ALICE_KEY}, timeout=5)

    assert response.status_code == 401


async def test_another_key_cannot_post_into_an_sse_session(tenant_server: HttpServer) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx2.AsyncClient(base_url=tenant_server.base_url, timeout=10) as http:
        with anyio.fail_after(CALL_TIMEOUT):
            async with http.stream("GET", "/sse", headers=headers(tenant_server, ALICE_KEY)) as stream:
                lines = stream.aiter_lines()  # kept open: the session lasts as long as its stream
                endpoint = ""
                while not endpoint.startswith("data:"):
                    endpoint = await anext(lines)
                endpoint = endpoint.removeprefix("data:").strip()
                hijack = await http.post(endpoint, json=message, headers=headers(tenant_server, BOB_KEY))
                own = await http.post(endpoint, json=message, headers=headers(tenant_server, ALICE_KEY))

    assert hijack.status_code == 404
    assert own.status_code == 202


async def test_another_key_cannot_use_a_streamable_http_session(tenant_server: HttpServer) -> None:
    async with httpx2.AsyncClient(base_url=tenant_server.base_url, timeout=10) as http:
        opened = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers(tenant_server, ALICE_KEY)})
        session = {"mcp-session-id": opened.headers["mcp-session-id"], **MCP_HEADERS}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        hijack = await http.post("/mcp", json=ping, headers={**session, **headers(tenant_server, BOB_KEY)})

    assert hijack.status_code == 404


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[str]:
    """A sandbox that outlives the servers, tasks taking 3 s; its base URL."""
    with sandbox_running(tmp_path, "3") as url:
        yield url


def images_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


async def saved_in(folder: Path) -> list[Path]:
    """The images in `folder` once there are some (the background follower saves them as the task ends)."""
    with anyio.fail_after(CALL_TIMEOUT):
        while True:
            if found := await anyio.to_thread.run_sync(images_in, folder):
                return found
            await anyio.sleep(0.05)


async def test_a_tenants_task_left_running_at_a_restart_is_finished_when_that_tenant_next_calls(
    tmp_path: Path, sandbox_process: str
) -> None:
    upstream = {"EVOLINK_BASE_URL": sandbox_process, "EVOLINK_FILES_BASE_URL": sandbox_process}
    alice_folder = tenant_folder(tmp_path / "out", ALICE_KEY)
    with serving(tmp_path, log_name="first.log", **upstream) as first:
        async with streamable_http_session(first, ALICE_KEY) as alice:
            _, made, text = await call(alice, "generate_image", {"prompt": "a slow comet", "wait_seconds": 0})
            assert made["status"] in ("pending", "processing"), text

    with serving(tmp_path, log_name="second.log", **upstream) as second:
        # The key is not on disk: nothing can follow Alice's task until she comes back.
        async with streamable_http_session(second, BOB_KEY) as bob:
            await call(bob, "list_tasks", {})
        assert images_in(alice_folder) == []
        async with streamable_http_session(second, ALICE_KEY) as alice:
            await call(alice, "list_models", {})
            (image,) = await saved_in(alice_folder)
        assert made["task_id"] in image.name


@pytest.mark.parametrize(
    ("missing", "says"),
    [("EVOLINK_TENANT_SECRET", "needs EVOLINK_TENANT_SECRET"), ("EVOLINK_MCP_TOKEN", "needs EVOLINK_MCP_TOKEN")],
)
def test_per_user_keys_refuse_to_start_without_the_secret_or_the_token(tmp_path: Path, missing: str, says: str) -> None:
    env = child_env(
        tmp_path / "home",
        EVOLINK_TENANT_KEYS="header",
        EVOLINK_TENANT_SECRET=TENANT_SECRET,
        EVOLINK_MCP_TOKEN=MCP_TOKEN,
    )
    del env[missing]
    argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(free_port()), "--sandbox")

    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert says in done.stderr
