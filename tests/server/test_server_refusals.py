"""What is refused and how: local validation sends nothing; upstream faults say whether credits were spent."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evolink_mcp.sandbox import SandboxServer
from mcp_session import Connect, ServerFor, Session

pytestmark = pytest.mark.anyio

REF = "https://example.com/reference.png"

# (arguments, the parameter the refusal names, what the message must also say: the allowed values or the fix)
REFUSALS = [
    pytest.param(
        {"model": "gemini-3.1-flash-imag"},
        "model",
        ["'gemini-3.1-flash-imag'", "Did you mean", "'gemini-3.1-flash-image-preview'", "list_models"],
        id="unknown-model",
    ),
    pytest.param({"size": "7:3"}, "size", ["'7:3'", "Did you mean '21:9'", "16:9", "auto"], id="bad-size"),
    pytest.param({"quality": "8K"}, "quality", ["'8K'", "Allowed: 0.5K, 1K, 2K, 4K"], id="bad-quality"),
    pytest.param({"model": "gpt-image-1", "n": 5}, "n", ["n=5", "Allowed: 1-4"], id="n-out-of-range"),
    pytest.param({"n": 2}, "n", ["n=2", "Allowed: 1"], id="n-on-a-single-image-model"),
    pytest.param({"image_urls": [REF] * 15}, "image_urls", ["at most 14", "got 15"], id="too-many-references"),
    pytest.param(
        {"extra": {"foo": 1}},
        "extra.foo",
        ["extra.foo", "model_params.web_search", "model_params.thinking_level"],
        id="unknown-extra",
    ),
    pytest.param(
        {"extra": {"model_params.thinking_level": "extreme"}},
        "extra.model_params.thinking_level",
        ["'extreme'", "Allowed: auto, min, high"],
        id="bad-extra-enum",
    ),
    pytest.param(
        {"image_urls": [REF], "mask_url": "https://example.com/mask.png"},
        "mask_url",
        ["takes no mask", "inpaint", "gpt-image-2"],
        id="mask-on-a-model-without-masks",
    ),
    pytest.param({"callback_url": "http://example.com/hook"}, "callback_url", ["https://"], id="http-callback-url"),
]


@pytest.mark.parametrize(("arguments", "param", "says"), REFUSALS)
async def test_an_invalid_generation_is_refused_with_the_parameter_and_its_allowed_values_and_nothing_is_sent(
    arguments: dict[str, Any], param: str, says: list[str], mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "a quiet harbour", **arguments})

    assert result.is_error
    data = mcp.error(result)
    assert data["category"] == "invalid_request" and data["charged"] == "no" and data["retryable"] is False
    assert param in data["message"]
    for fact in says:
        assert fact in data["message"], fact
    (problem,) = data["problems"]
    assert problem["param"] == param
    text = mcp.text(result)
    assert data["message"] in text and "Charged: no" in text and data["next_step"] in text
    assert sandbox.state.requests() == []


@pytest.mark.parametrize(
    ("make_ref", "says"),
    [
        pytest.param(lambda tmp: str(tmp / "missing.png"), "file not found", id="missing-file"),
        pytest.param(lambda tmp: str(tmp / "notes.txt"), "is not a JPEG, PNG, GIF or WebP image", id="not-an-image"),
        pytest.param(lambda tmp: "pictures/cat.png", "relative path", id="relative-path"),
    ],
)
async def test_a_local_reference_that_cannot_be_used_is_refused_and_nothing_is_sent(
    make_ref: Callable[[Path], str], says: str, mcp: Session, sandbox: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not an image, whatever the name says")
    ref = make_ref(tmp_path)

    result = await mcp.call("generate_image", {"prompt": "edit this", "image_urls": [ref]})

    assert result.is_error
    data = mcp.error(result)
    assert data["category"] == "invalid_request" and data["charged"] == "no"
    assert data["message"].startswith("image_urls:") and says in data["message"] and ref in data["message"]
    assert sandbox.state.requests() == []


async def test_n_beyond_the_models_maximum_is_refused_with_the_allowed_range_and_nothing_is_sent(
    mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("generate_image", {"prompt": "many", "model": "doubao-seedream-4.0", "n": 16})

    assert result.is_error
    assert mcp.error(result)["category"] == "invalid_request"
    assert mcp.error(result)["charged"] == "no"
    assert "n=16" in mcp.text(result) and "1-15" in mcp.text(result)
    assert sandbox.state.requests() == []


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        pytest.param({}, "exactly one of file_path, base64_data or file_url", id="no-source"),
        pytest.param(
            {"base64_data": "aGVsbG8=", "file_url": "https://example.com/a.png"},
            "exactly one",
            id="two-sources",
        ),
        pytest.param({"base64_data": "not base64 at all!"}, "not valid base64", id="bad-base64"),
        pytest.param(
            {"base64_data": base64.b64encode(b"plain text").decode()},
            "not a JPEG, PNG, GIF or WebP",
            id="not-an-image",
        ),
        pytest.param({"file_url": "ftp://example.com/a.png"}, "public http(s) URL", id="not-http"),
        pytest.param({"file_path": "/nowhere/at/all.png"}, "file not found", id="missing-file"),
    ],
)
async def test_an_invalid_upload_is_refused_and_nothing_is_sent(
    arguments: dict[str, Any], says: str, mcp: Session, sandbox: SandboxServer
) -> None:
    result = await mcp.call("upload_file", arguments)

    assert result.is_error
    assert mcp.error(result)["category"] == "invalid_request" and says in mcp.error(result)["message"]
    assert sandbox.state.requests() == []


async def test_without_an_api_key_tools_are_listed_but_calls_say_how_to_set_it_and_send_nothing(
    server_for: ServerFor, connect: Connect, sandbox: SandboxServer
) -> None:
    async with connect(server_for(api_key=None)) as mcp:
        assert len(await mcp.tools()) == 11
        assert not (await mcp.call("list_models", {})).is_error

        generated = await mcp.call("generate_image", {"prompt": "a kite"})
        uploaded = await mcp.call("upload_file", {"file_url": "https://example.com/a.png"})
        checked = await mcp.call("check_task", {"task_id": "task-unified-1-abcdefgh"})
        listed = await mcp.call("list_files", {})
        balance = await mcp.call("check_balance", {})

    assert mcp.error(generated)["category"] == "configuration" and mcp.error(generated)["charged"] == "no"
    for result in (generated, uploaded, checked, listed, balance):
        assert result.is_error
        assert mcp.error(result)["category"] == "configuration"
        assert "EVOLINK_API_KEY" in mcp.text(result) and "--sandbox" in mcp.text(result)
    assert sandbox.state.requests() == []


async def test_out_of_credits_on_submit_is_insufficient_credits_and_charged_no(
    mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 402)

    result = await mcp.call("generate_image", {"prompt": "a castle"})

    assert result.is_error
    data = mcp.error(result)
    assert data["category"] == "insufficient_credits" and data["charged"] == "no" and data["retryable"] is False
    assert "billing" in data["next_step"] and "Charged: no" in mcp.text(result)
    assert len(sandbox.state.requests("generations")) == 1
    assert sandbox.state.requests("tasks") == []


async def test_a_server_error_on_submit_is_charged_unknown_and_returns_the_client_request_id_it_sent(
    mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 500)

    result = await mcp.call("generate_image", {"prompt": "a castle"})

    assert result.is_error
    data = mcp.error(result)
    assert data["charged"] == "unknown" and data["retryable"] is False
    (submitted,) = sandbox.state.requests("generations")  # never resent blindly: it may have been billed
    assert data["client_request_id"] == submitted.header("idempotency-key")
    assert data["client_request_id"] in mcp.text(result) and "Charged: unknown" in mcp.text(result)


async def test_a_rejected_api_key_is_an_authentication_error_and_charged_no(
    mcp: Session, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(api_key="sk-some-other-key")

    result = await mcp.call("generate_image", {"prompt": "a castle"})

    assert result.is_error
    assert mcp.error(result)["category"] == "authentication" and mcp.error(result)["charged"] == "no"
    assert "EVOLINK_API_KEY" in mcp.error(result)["next_step"]


async def test_an_upstream_error_echoing_the_api_key_reaches_the_agent_redacted(
    mcp: Session, sandbox: SandboxServer, api_key: str
) -> None:
    echo = f"Key {api_key} may not use this model"
    sandbox.state.fail_next(
        "generations",
        403,
        body={"error": {"code": 403, "type": "permission_error", "message": echo, "param": "model"}},
    )
    sandbox.state.fail_next("files/upload/url", 200, body={"success": False, "code": 400, "msg": echo, "data": None})

    generated = await mcp.call("generate_image", {"prompt": "a castle"})  # Session.call: no key in the result
    uploaded = await mcp.call("upload_file", {"file_url": f"{sandbox.base_url}/files/x/y.png"})

    assert generated.is_error and mcp.error(generated)["category"] == "permission"
    assert "[redacted]" in mcp.error(generated)["message"]
    assert uploaded.is_error and "[redacted]" in mcp.error(uploaded)["message"]


async def test_the_api_key_appears_in_no_log_record_even_at_debug_level(
    mcp: Session, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture, api_key: str
) -> None:
    sandbox.state.fail_next("generations", 401)

    await mcp.call("generate_image", {"prompt": "a castle [sandbox:duration=0]"})
    await mcp.call("generate_image", {"prompt": "a castle [sandbox:duration=0]"})

    ours = [r for r in caplog.records if r.name.startswith("evolink_mcp")]
    assert any(" submitted (" in r.getMessage() for r in ours)  # the capture sees our records
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert all(api_key not in r.getMessage() for r in caplog.records)
    assert api_key not in caplog.text
