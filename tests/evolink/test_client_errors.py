"""Every documented error answer maps to its error class; the API key never leaks into errors or logs."""

from __future__ import annotations

import base64
import io
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from client_support import API_KEY, client_for, generation, png_bytes

from evolink_mcp.evolink import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    EvolinkClient,
    EvolinkError,
    FilesQuotaError,
    InsufficientCreditsError,
    InternalServerError,
    ModelUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    RetryPolicy,
    ServiceUnavailableError,
    SubmissionOutcomeUnknownError,
    UpstreamError,
)
from evolink_mcp.sandbox import SandboxServer

pytestmark = pytest.mark.anyio

TASK_ID = "task-unified-1757165031-uyujaw3d"


@pytest.fixture
async def one_shot(sandbox: SandboxServer) -> AsyncIterator[EvolinkClient]:
    """A client that never retries: these tests are about mapping one answer, not the retry policy."""
    sandbox.state.configure(api_key=API_KEY)
    async with client_for(sandbox.base_url, retry=RetryPolicy(max_attempts=1)) as evolink:
        yield evolink


# -- the generation API's {"error": {...}} envelope --------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "error_type", "param", "suggestion"),
    [
        (400, BadRequestError, "invalid_request_error", None, None),
        (401, AuthenticationError, "authentication_error", None, None),
        (
            402,
            InsufficientCreditsError,
            "insufficient_quota_error",
            None,
            "top up credits on the billing page",
        ),
        (403, PermissionDeniedError, "permission_error", "model", None),
        (404, NotFoundError, "not_found_error", "task_id", None),
        (413, RequestTooLargeError, "request_too_large_error", "image_urls", None),
        (429, RateLimitError, "rate_limit_error", None, "retry after 60 seconds"),
        (500, InternalServerError, "internal_server_error", None, None),
        (502, UpstreamError, "upstream_error", None, "try another model"),
        (503, ServiceUnavailableError, "service_unavailable_error", None, None),
    ],
)
async def test_each_documented_http_error_maps_to_its_error_class(
    one_shot: EvolinkClient,
    sandbox: SandboxServer,
    status: int,
    error_class: type[APIStatusError],
    error_type: str,
    param: str | None,
    suggestion: str | None,
) -> None:
    sandbox.state.fail_next("tasks", status)

    with pytest.raises(APIStatusError) as caught:
        await one_shot.get_task(TASK_ID)

    error = caught.value
    assert type(error) is error_class
    assert (error.status, error.type, error.code, error.param) == (status, error_type, status, param)
    assert error.suggestion is None if suggestion is None else suggestion in (error.suggestion or "")
    assert error.request_id == sandbox.state.requests("tasks")[0].request_id
    assert error.retryable is (status in (429, 500, 502, 503))
    assert error.next_step and error.message
    assert str(error).startswith(f"HTTP {status} {error_type}: ")


async def test_a_wrong_key_is_an_authentication_error(sandbox: SandboxServer) -> None:
    sandbox.state.configure(api_key="sk-the-right-one")

    async with client_for(sandbox.base_url) as wrong:
        with pytest.raises(AuthenticationError) as api:
            await wrong.get_task(TASK_ID)
        with pytest.raises(AuthenticationError) as files:
            await wrong.get_quota()

    assert api.value.status == files.value.status == 401
    assert files.value.code == 401
    assert len(sandbox.state.requests()) == 2  # 401 is final: no retries


async def test_an_unknown_model_is_not_found_with_the_suggested_model(one_shot: EvolinkClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await one_shot.submit_generation(generation(model="no-such-model-anywhere"))

    assert caught.value.param == "model"
    assert caught.value.suggestion
    assert caught.value.next_step == caught.value.suggestion
    assert caught.value.charged == "no"


async def test_an_invalid_parameter_is_a_bad_request_naming_the_param(one_shot: EvolinkClient) -> None:
    with pytest.raises(BadRequestError) as caught:
        await one_shot.submit_generation(generation(size="7:1"))

    assert caught.value.status == 400 and caught.value.param == "size"


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (429, "insufficient_quota", InsufficientCreditsError),
        (403, "insufficient_user_quota", InsufficientCreditsError),
        (503, "model_unavailable", ModelUnavailableError),
        (400, "invalid_api_key", AuthenticationError),
        (400, "rate_limit_exceeded", RateLimitError),
        (404, "MODEL_NOT_FOUND", NotFoundError),
        (403, "a_code_nobody_documented", PermissionDeniedError),
    ],
)
async def test_a_string_error_code_is_accepted_and_mapped_ahead_of_the_status(
    one_shot: EvolinkClient, sandbox: SandboxServer, status: int, code: str, error_class: type[APIStatusError]
) -> None:
    body = {"error": {"code": code, "message": f"gateway says {code}", "type": "gateway_error"}}
    sandbox.state.fail_next("tasks", status, body=body)

    with pytest.raises(APIStatusError) as caught:
        await one_shot.get_task(TASK_ID)

    assert type(caught.value) is error_class
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == f"gateway says {code}"


async def test_a_429_whose_code_says_insufficient_quota_is_not_retried(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    body = {"error": {"code": "insufficient_quota", "message": "You exceeded your quota.", "type": "x"}}
    sandbox.state.fail_next("generations", 429, body=body, count=3)

    with pytest.raises(InsufficientCreditsError) as caught:
        await client.submit_generation(generation())

    assert caught.value.charged == "no"
    assert len(sandbox.state.requests("generations")) == 1


# -- the files API's {"success": false, "code": ...} envelope ----------------------------------------


async def test_a_file_over_the_size_cap_is_request_too_large_with_code_40001(
    one_shot: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(max_file_bytes=1024)

    with pytest.raises(RequestTooLargeError) as caught:
        await one_shot.upload_base64(base64.b64encode(png_bytes() + bytes(2048)).decode())

    assert (caught.value.status, caught.value.code) == (413, 40001)


async def test_a_file_that_is_not_an_image_is_a_bad_request_with_code_40002(one_shot: EvolinkClient) -> None:
    with pytest.raises(BadRequestError) as caught:
        await one_shot.upload_base64(base64.b64encode(b"%PDF-1.7 not an image").decode())

    assert (caught.value.status, caught.value.code) == (400, 40002)


async def test_a_full_file_quota_is_a_files_quota_error_with_code_40003(
    one_shot: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.configure(max_files=1)
    await one_shot.upload_base64(base64.b64encode(png_bytes()).decode())

    with pytest.raises(FilesQuotaError) as caught:
        await one_shot.upload_base64(base64.b64encode(png_bytes()).decode())

    assert (caught.value.status, caught.value.code) == (403, 40003)
    assert "delete" in caught.value.next_step.lower()


async def test_a_url_the_service_cannot_fetch_is_a_bad_request_with_code_40004(
    one_shot: EvolinkClient,
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await one_shot.upload_url("https://images.example.com/cat.png")

    assert (caught.value.status, caught.value.code) == (400, 40004)


async def test_a_storage_failure_is_an_internal_server_error_with_code_50001(
    one_shot: EvolinkClient, sandbox: SandboxServer
) -> None:
    body = {"success": False, "code": 50001, "msg": "Storage error.", "data": None}
    sandbox.state.fail_next("files/upload/base64", 500, body=body)

    with pytest.raises(InternalServerError) as caught:
        await one_shot.upload_base64(base64.b64encode(png_bytes()).decode())

    assert (caught.value.status, caught.value.code, caught.value.message) == (500, 50001, "Storage error.")


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (40001, RequestTooLargeError),
        (40002, BadRequestError),
        (40003, FilesQuotaError),
        (40004, BadRequestError),
        (50001, InternalServerError),
        (401, AuthenticationError),
        (404, NotFoundError),
    ],
)
async def test_a_200_answer_with_success_false_is_an_error_by_its_envelope_code(
    one_shot: EvolinkClient, sandbox: SandboxServer, code: int, error_class: type[APIStatusError]
) -> None:
    sandbox.state.fail_next("files/quota", 200, body={"success": False, "code": code, "msg": "no", "data": None})

    with pytest.raises(APIStatusError) as caught:
        await one_shot.get_quota()

    assert type(caught.value) is error_class
    assert caught.value.code == code
    assert caught.value.status >= 400


async def test_a_files_api_status_without_its_own_code_maps_by_http_status(
    one_shot: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("files", 403, method="GET")

    with pytest.raises(PermissionDeniedError) as caught:
        await one_shot.list_files()

    assert (caught.value.status, caught.value.code) == (403, 403)


# -- the key stays secret --------------------------------------------------------------------------


def texts_of(error: BaseException) -> list[str]:
    """Everything an error can show: str, repr, to_dict, the formatted traceback, and its causes'."""
    texts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current), repr(current.args)]
        if isinstance(current, EvolinkError):
            texts.append(repr(current.to_dict()))
            texts.append(repr(vars(current)))
        current = current.__cause__ or current.__context__
    texts.append("".join(traceback.format_exception(error)))
    return texts


async def test_the_api_key_never_appears_in_the_client_repr_errors_or_log_records(
    sandbox: SandboxServer, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.state.configure(api_key=API_KEY)
    # A careless gateway that echoes the key it was sent, in every field it has.
    echo = {
        "error": {
            "code": 401,
            "message": f"Key {API_KEY} is not valid",
            "type": "authentication_error",
            "fallback_suggestion": f"replace {API_KEY}",
        }
    }
    files_echo = {"success": False, "code": 500, "msg": f"bad key {API_KEY}", "data": None}
    sandbox.state.fail_next("tasks", 401, body=echo)
    sandbox.state.fail_next("generations", 500, body={"error": {**echo["error"], "code": 500}})
    sandbox.state.fail_next("files/upload/base64", 500, body=files_echo)
    errors: list[BaseException] = []

    async with (
        client_for(sandbox.base_url) as client,
        client_for(f"http://127.0.0.1:{closed_port}") as offline,
    ):
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.get_task(TASK_ID),
            lambda: client.submit_generation(generation()),
            lambda: client.upload_base64(base64.b64encode(png_bytes()).decode()),
            lambda: client.download(f"{sandbox.base_url}/results/{TASK_ID}/0.png", io.BytesIO(), max_bytes=10),
            lambda: offline.submit_generation(generation()),
            lambda: offline.get_quota(),
        ]
        for call in calls:
            with pytest.raises(EvolinkError) as caught:
                await call()
            errors.append(caught.value)
        shown = [repr(client), str(client), repr(vars(client)), repr(offline)]

    assert [type(e) for e in errors] == [
        AuthenticationError,
        SubmissionOutcomeUnknownError,
        InternalServerError,
        NotFoundError,
        APIConnectionError,
        APIConnectionError,
    ]
    assert "[redacted]" in str(errors[0])  # the echoed key really came back, and was blanked out
    for error in errors:
        for text in texts_of(error):
            assert API_KEY not in text
    for text in shown:
        assert API_KEY not in text
    client_records = [r for r in caplog.records if not r.name.startswith("evolink_mcp.sandbox")]
    assert any(r.name == "evolink_mcp.evolink.client" for r in client_records)  # aiohttp logs no requests
    for record in client_records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.args)
        if record.exc_info:
            assert API_KEY not in "".join(traceback.format_exception(*record.exc_info))


# -- success answers of the wrong shape ----------------------------------------------------------------


async def test_a_200_submission_answer_that_is_not_a_task_has_an_unknown_outcome(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("generations", 200, body={"object": "image.generation.task", "status": "pending"})

    with pytest.raises(SubmissionOutcomeUnknownError) as caught:
        await client.submit_generation(generation())

    assert caught.value.charged == "unknown"
    assert "id" in caught.value.message
    assert len(sandbox.state.requests("generations")) == 1


async def test_a_task_answer_of_the_wrong_shape_is_a_client_error_rather_than_a_validation_crash(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("tasks", 200, body={"id": TASK_ID, "progress": "most of it"})

    with pytest.raises(APIConnectionError) as caught:
        await client.get_task(TASK_ID)

    assert caught.value.retryable  # polling again is the right move
    assert "progress" in caught.value.message
    assert caught.value.request_id == sandbox.state.requests("tasks")[0].request_id


async def test_an_upload_answer_without_data_is_a_client_error_rather_than_a_validation_crash(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    sandbox.state.fail_next("files/upload/base64", 200, body={"success": True, "code": 200, "data": None})

    with pytest.raises(APIConnectionError) as caught:
        await client.upload_base64(base64.b64encode(png_bytes()).decode())

    assert "UploadedFile" in caught.value.message
    assert len(sandbox.state.requests("files/upload/base64")) == 1


async def test_listing_quota_and_delete_answers_without_data_read_as_empty(
    client: EvolinkClient, sandbox: SandboxServer
) -> None:
    empty = {"success": True, "code": 200, "msg": "ok", "data": None}
    for endpoint in ("files/list", "files/quota", "files/delete"):
        sandbox.state.fail_next(endpoint, 200, body=empty)

    listing = await client.list_files()
    quota = await client.get_quota()
    await client.delete_file("file_whatever")

    assert (listing.total, listing.files) == (0, [])
    assert quota.max_files is None
