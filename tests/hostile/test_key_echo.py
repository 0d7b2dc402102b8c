"""Finding 1: an upstream that echoes the API key (whole, cut short, or JSON-escaped) in any body field or header
the client reads gets it blanked out of every result, the journal, `evolink-mcp tasks` and the logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from hostile_support import API_KEY, Connected, leaked
from hostile_upstream import TASK_ID, Hostile, key_of, task_body
from starlette.requests import Request
from starlette.responses import Response

from evolink_mcp.logs import RedactSecrets
from process_support import child_env, evolink_argv

pytestmark = pytest.mark.anyio

Connect = Callable[..., AbstractAsyncContextManager[Connected]]


def echoes(key: str) -> str:
    """The key as a hostile upstream may echo it: whole, cut short, and in JSON escapes (\\u0073k-...)."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    return f"Bearer {key} / {key[:-1]} / {key[4:]} / {escaped}"


def echoing_headers(key: str) -> dict[str, str]:
    return {"X-Request-Id": f"Bearer {key}", "x-oneapi-request-id": key, "Retry-After": key[:-2]}


def raw_json(body: dict[str, object], key: str, status: int = 200) -> Response:
    """`body` with every "ECHO" replaced by the echoes (escapes kept as escapes, which json.dumps would not)."""
    text = json.dumps(body).replace("ECHO", echoes(key).replace("\\", "\\\\").replace("\\\\u", "\\u"))
    return Response(text, status, media_type="application/json", headers=echoing_headers(key))


def assert_no_part_of_the_key(text: str) -> None:
    assert not leaked(text), text[:2000]


async def test_a_failed_task_echoing_the_key_reaches_no_result_journal_or_cli_output(
    connect: Connect, hostile: Hostile, tmp_path: Path
) -> None:
    def submitted(request: Request) -> Response:
        return raw_json(task_body("pending", model="ECHO"), key_of(request))

    def failed(request: Request) -> Response:
        error = {"code": "ECHO", "message": "the provider said ECHO"}
        return raw_json(task_body("failed", error=error, results=["ECHO"]), key_of(request))

    hostile.answer("POST /v1/images/generations", submitted)
    hostile.answer("GET /v1/tasks/", failed)

    async with connect() as c:
        generated = await c.mcp.call("generate_image", {"prompt": "a castle"})
        checked = await c.mcp.call("check_task", {"task_id": TASK_ID})
        listed = await c.mcp.call("list_tasks", {})

    assert "[redacted]" in c.mcp.text(generated)  # the echo came back, and was blanked out
    for result in (generated, checked, listed):
        assert_no_part_of_the_key(result.model_dump_json())
    for stored in (tmp_path / "state").rglob("*"):
        if stored.is_file():
            assert_no_part_of_the_key(stored.read_bytes().decode("latin-1"))
    env = child_env(tmp_path / "home", EVOLINK_STATE_DIR=str(tmp_path / "state"), EVOLINK_API_KEY=API_KEY)
    with anyio.fail_after(60):
        shown = await anyio.run_process(evolink_argv("tasks"), env=env, check=False)
    assert TASK_ID in shown.stdout.decode()
    assert_no_part_of_the_key((shown.stdout + shown.stderr).decode(errors="replace"))


@pytest.mark.parametrize("status", [400, 401, 500])
async def test_an_error_answer_echoing_the_key_in_headers_and_every_envelope_field_is_redacted(
    connect: Connect, hostile: Hostile, status: int
) -> None:
    def refused(request: Request) -> Response:
        fields = {"code": status, "message": "ECHO", "type": "ECHO", "param": "ECHO", "fallback_suggestion": "ECHO"}
        return raw_json({"error": fields}, key_of(request), status)

    hostile.answer("POST /v1/images/generations", refused)
    hostile.answer("GET /v1/tasks/", refused)

    async with connect() as c:
        generated = await c.mcp.call("generate_image", {"prompt": "a castle"})
        checked = await c.mcp.call("check_task", {"task_id": TASK_ID})

    for result in (generated, checked):
        assert result.is_error
        assert_no_part_of_the_key(result.model_dump_json())
    assert "[redacted]" in c.mcp.data(checked)["error"]["request_id"]


async def test_an_html_error_page_echoing_the_key_where_it_is_cut_is_redacted_before_the_cut(
    connect: Connect, hostile: Hostile
) -> None:
    def page(request: Request) -> Response:
        padding = "x" * (300 - len("Bearer ") - 1 - len(key_of(request)) // 2)  # the key straddles character 300
        return Response(f"{padding} Bearer {key_of(request)} </html>", 502, media_type="text/html")

    hostile.answer("GET /v1/tasks/", page)
    hostile.answer("POST /api/v1/files/upload/url", page)

    async with connect() as c:
        checked = await c.mcp.call("check_task", {"task_id": TASK_ID})
        uploaded = await c.mcp.call("upload_file", {"file_url": "https://example.com/a.png"})

    for result in (checked, uploaded):
        assert result.is_error
        assert_no_part_of_the_key(result.model_dump_json())


async def test_a_files_envelope_echoing_the_key_is_redacted(connect: Connect, hostile: Hostile) -> None:
    def envelope(request: Request) -> Response:
        return raw_json({"success": False, "code": 400, "msg": "ECHO", "data": None}, key_of(request))

    hostile.answer("GET /api/v1/files/", envelope)

    async with connect() as c:
        listed = await c.mcp.call("list_files", {})

    assert listed.is_error
    assert_no_part_of_the_key(listed.model_dump_json())


def test_the_stderr_log_filter_blanks_a_cut_or_partial_echo_of_the_key_too() -> None:
    line = f"gateway said: Bearer {API_KEY[:-1]}… and later …{API_KEY[5:]}"

    shown = RedactSecrets([API_KEY]).redact(line)

    assert_no_part_of_the_key(shown)
    assert shown == "gateway said: Bearer [redacted]… and later …[redacted]"
