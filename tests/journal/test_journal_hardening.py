"""Hardening: files stay in the output directory, downloads are bounded, inputs are checked before sending,
and the API key never reaches a log."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from journal_support import DEFAULT_MODEL

from evolink_mcp.evolink import EvolinkClient, InvalidRequestError, RetryPolicy, Timeouts
from evolink_mcp.logs import RedactSecrets, configure_logging
from evolink_mcp.media import safe_component, save_results
from evolink_mcp.sandbox import SandboxServer
from evolink_mcp.tools.files import check_base64
from mcp_session import API_KEY, INSTANT

pytestmark = pytest.mark.anyio

WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Not the API key of the other tests: logging it on purpose must not trip their "never logged" check.
LOG_SECRET = "sk-log-secret-91c4e7a2b5d86f03"


@pytest.fixture
async def client(sandbox: SandboxServer, anyio_backend: str) -> AsyncIterator[EvolinkClient]:
    async with EvolinkClient(API_KEY, base_url=sandbox.base_url, files_base_url=sandbox.base_url) as client:
        yield client


async def result_urls(client: EvolinkClient) -> list[str]:
    """The result URLs of a finished sandbox task, as the upstream answers them."""
    task = await client.submit_generation({"model": DEFAULT_MODEL, "prompt": "a kettle" + INSTANT})
    assert task.image_urls
    return task.image_urls


def files_under(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file() or p.is_symlink()}


# Saved files never escape the output directory.

HOSTILE_IDS = ["../../etc/passwd", "..", ".", "/abs/olute", "a\\..\\b", "task\x00id", "...hidden", "", "é/../ü"]


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
def test_a_hostile_task_id_becomes_a_plain_file_name_component(task_id: str, tmp_path: Path) -> None:
    component = safe_component(task_id)

    assert component and not component.startswith(".")
    assert not {"/", "\\", "\x00"} & set(component)
    assert (tmp_path / component).resolve().parent == tmp_path.resolve()


async def test_saving_results_of_a_task_id_with_dot_dots_writes_only_inside_the_output_directory(
    client: EvolinkClient, tmp_path: Path
) -> None:
    output = tmp_path / "deep" / "images"
    output.mkdir(parents=True)
    urls = await result_urls(client)

    saved, errors = await save_results(
        client, "../../../escape", urls, output, max_bytes=10_000_000, sidecar={}, when=WHEN
    )

    assert errors == [] and len(saved) == 1
    assert saved[0].path.parent == output and saved[0].path.read_bytes().startswith(PNG_SIGNATURE)
    assert files_under(tmp_path) == files_under(output) and len(files_under(output)) == 2  # image + sidecar


async def test_a_symlink_at_the_target_name_is_replaced_and_never_written_through(
    client: EvolinkClient, tmp_path: Path
) -> None:
    output = tmp_path / "images"
    output.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = {name: outside / name for name in ("image.png", "sidecar.json")}
    for victim in victims.values():
        victim.write_bytes(b"keep me")
    stem = f"{WHEN:%Y%m%d-%H%M%S}_task-x"
    (output / f"{stem}_1.png").symlink_to(victims["image.png"])
    (output / f"{stem}.json").symlink_to(victims["sidecar.json"])

    saved, errors = await save_results(
        client, "task-x", await result_urls(client), output, max_bytes=10_000_000, sidecar={}, when=WHEN
    )

    assert errors == [] and saved[0].path == output / f"{stem}_1.png"
    assert all(victim.read_bytes() == b"keep me" for victim in victims.values())
    for name in (f"{stem}_1.png", f"{stem}.json"):
        assert not (output / name).is_symlink()
    assert (output / f"{stem}_1.png").read_bytes().startswith(PNG_SIGNATURE)


# Downloads: only http(s) URLs from the upstream's answers, bounded in size and time.


@pytest.mark.parametrize("public_url", ["file:///etc", "ftp://cdn.example.com"])
async def test_a_task_answer_with_a_non_http_result_url_is_reported_and_never_downloaded(
    public_url: str, mcp: Any, sandbox: SandboxServer, output_dir: Path
) -> None:
    sandbox.state.configure(public_url=public_url)  # the upstream answers result URLs of another scheme

    result = await mcp.call("generate_image", {"prompt": "a kettle" + INSTANT})

    assert not result.is_error
    data = mcp.data(result)
    assert data["status"] == "completed" and data["images"][0]["url"].startswith(public_url)
    assert "non-http(s)" in data["save_error"] and "path" not in data["images"][0]
    assert sandbox.state.requests("results") == []
    assert [p async for p in anyio.Path(output_dir).glob("*")] == []


async def test_a_result_over_the_download_cap_is_refused_and_leaves_no_file(
    server_for: Any, connect: Any, sandbox: SandboxServer, output_dir: Path
) -> None:
    async with connect(server_for(max_download_bytes=1000)) as mcp:
        result = await mcp.call("generate_image", {"prompt": "a kettle" + INSTANT})

    data = mcp.data(result)
    assert data["status"] == "completed" and "1000-byte cap" in data["save_error"]
    assert "path" not in data["images"][0] and "Saving failed" in mcp.text(result)
    assert [p async for p in anyio.Path(output_dir).iterdir()] == []  # no image, sidecar or partial file
    assert len(sandbox.state.requests("results")) == 1


async def test_a_download_that_stalls_times_out_and_leaves_no_file(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.add_latency("results", 5000, count=1)
    impatient = EvolinkClient(
        API_KEY,
        base_url=sandbox.base_url,
        timeouts=Timeouts(download_read=0.3),
        retry=RetryPolicy(max_attempts=1),
    )
    async with impatient:
        urls = await result_urls(impatient)
        started = time.monotonic()
        with anyio.fail_after(4):
            saved, errors = await save_results(impatient, "task-x", urls, tmp_path, max_bytes=10_000_000, sidecar={})

    assert time.monotonic() - started < 3
    assert saved == [] and len(errors) == 1 and "no answer in time" in errors[0]
    assert [p async for p in anyio.Path(tmp_path).iterdir()] == []


async def test_result_downloads_never_carry_the_api_key(mcp: Any, sandbox: SandboxServer) -> None:
    await mcp.call("generate_image", {"prompt": "a kettle" + INSTANT})

    (download,) = sandbox.state.requests("results")
    assert download.header("authorization") is None
    assert sandbox.state.requests("generations")[0].header("authorization") is not None  # the API calls do


# callback_url is checked before anything is sent.


@pytest.mark.parametrize(
    "callback_url",
    [
        "http://hooks.example.com/done",
        "https://127.0.0.1/done",
        "https://localhost:8443/done",
        "https://printer.local/done",
        "https://10.1.2.3/done",
        "https://192.168.0.10/done",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/done",
        "https://[::ffff:127.0.0.1]/done",
        "https://2130706433/done",
        "https://hooks.example.com/" + "a" * 2048,
    ],
)
async def test_a_callback_url_that_is_not_public_https_within_2048_characters_is_refused_unsent(
    callback_url: str, mcp: Any, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a kettle" + INSTANT, "callback_url": callback_url})

    assert result.is_error
    data = mcp.error(result)
    assert (data["category"], data["charged"]) == ("invalid_request", "no")
    assert "callback_url" in data["message"]
    assert sandbox.state.requests("generations") == []


async def test_a_public_https_callback_url_is_sent_as_given(mcp: Any, sandbox: SandboxServer) -> None:
    url = "https://hooks.example.com/evolink/done?job=7"

    result = await mcp.call("generate_image", {"prompt": "a kettle" + INSTANT, "callback_url": url})

    assert not result.is_error, mcp.text(result)
    (posted,) = sandbox.state.requests("generations")
    assert posted.body["callback_url"] == url


# base64 input is size-capped before it is decoded.


def _png_base64(raw_size: int) -> str:
    return base64.b64encode(PNG_SIGNATURE + b"\0" * (raw_size - len(PNG_SIGNATURE))).decode()


def test_base64_over_the_cap_is_refused_by_its_length_before_any_decoding() -> None:
    not_even_base64 = "!" * 10_000  # decoding it would fail: the refusal must come before

    with pytest.raises(InvalidRequestError, match=r"over the .* upload limit"):
        check_base64(not_even_base64, max_bytes=4096)


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_base64_of_an_image_over_the_cap_is_refused_and_one_within_it_accepted(prefix: str) -> None:
    check_base64(prefix + _png_base64(4096), max_bytes=4096)

    with pytest.raises(InvalidRequestError, match=r"over the .* upload limit"):
        check_base64(prefix + _png_base64(4096 + 3000), max_bytes=4096)


def test_the_default_base64_cap_is_the_files_api_limit() -> None:
    with pytest.raises(InvalidRequestError, match="100 MB"):
        check_base64("A" * (140 * 1024 * 1024))


# The API key is redacted from every log record and exception text, httpx2's included.


@pytest.fixture
def redacting_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose only handler redacts LOG_SECRET, and what it wrote."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets([LOG_SECRET]))
    logger = logging.getLogger("evolink_mcp.tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


def test_the_secret_is_redacted_from_a_records_message_arguments_and_exception_text(
    redacting_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = redacting_log

    logger.info(f"key in the message {LOG_SECRET}")
    logger.info("key in the arguments %s %r", LOG_SECRET, {"authorization": f"Bearer {LOG_SECRET}"})
    try:
        raise RuntimeError(f"the server echoed {LOG_SECRET}")
    except RuntimeError:
        logger.exception("a call failed")

    written = stream.getvalue()
    assert LOG_SECRET not in written
    assert written.count("[redacted]") == 4
    assert "RuntimeError: the server echoed [redacted]" in written and "Traceback" in written


async def test_the_secret_is_redacted_from_an_httpx_exception_logged_with_exc_info(
    redacting_log: tuple[logging.Logger, io.StringIO], sandbox: SandboxServer
) -> None:
    logger, stream = redacting_log
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{sandbox.base_url}/v1/tasks/nosuch?api_key={LOG_SECRET}")
    with pytest.raises(httpx2.HTTPStatusError) as raised:
        response.raise_for_status()
    assert LOG_SECRET in str(raised.value)  # httpx2 puts the URL, and so the key, in its message

    logger.error("polling failed", exc_info=raised.value)

    written = stream.getvalue()
    assert "HTTPStatusError" in written and "api_key=[redacted]" in written
    assert LOG_SECRET not in written


@pytest.fixture
def configured_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """configure_logging() for the test, writing to the captured stderr; undone afterwards."""
    root = logging.getLogger()
    level = root.level
    configure_logging("DEBUG", [LOG_SECRET])
    yield
    for handler in [h for h in root.handlers if getattr(h, "_evolink", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


async def test_a_librarys_own_request_log_line_is_redacted_by_the_servers_log_handler(
    configured_logging: None, capsys: pytest.CaptureFixture[str], sandbox: SandboxServer
) -> None:
    async with httpx2.AsyncClient() as http:
        await http.get(f"{sandbox.base_url}/v1/tasks/nosuch?api_key={LOG_SECRET}")

    err = capsys.readouterr().err
    assert "HTTP Request: GET" in err and "api_key=[redacted]" in err
    assert LOG_SECRET not in err
