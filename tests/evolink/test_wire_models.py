"""Wire models tolerate what a newer API may send; Retry-After and error codes parse in every form."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from typing import Any

import pytest

from evolink_mcp.evolink import (
    BadRequestError,
    FileList,
    InsufficientCreditsError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    Task,
    UploadedFile,
    task_failure_advice,
)
from evolink_mcp.evolink.client import parse_retry_after
from evolink_mcp.evolink.errors import error_class_for

CREATED: dict[str, Any] = {
    "created": 1757165031,
    "id": "task-unified-1757165031-uyujaw3d",
    "model": "gemini-3.1-flash-image-preview",
    "object": "image.generation.task",
    "progress": 0,
    "status": "pending",
    "task_info": {"can_cancel": True, "estimated_time": 45},
    "type": "image",
    "usage": {"billing_rule": "per_call", "credits_reserved": 1.6, "user_group": "default"},
}


def test_the_documented_creation_response_parses() -> None:
    task = Task.model_validate(CREATED)

    assert (task.id, task.status, task.progress) == (CREATED["id"], "pending", 0)
    assert task.estimated_seconds_left == 45
    assert task.usage.credits_reserved == 1.6
    assert not task.is_terminal


def test_unknown_fields_are_kept_at_every_level_instead_of_breaking_the_parse() -> None:
    wire = {
        **CREATED,
        "priority": "high",
        "task_info": {**CREATED["task_info"], "queue_position": 3},
        "usage": {**CREATED["usage"], "credits_charged": 1.6, "billing_rule": "per_megapixel"},
        "error": {"code": "x", "message": "m", "retry_hint": 30},
    }

    task = Task.model_validate(wire)

    assert task.model_extra == {"priority": "high"}
    assert task.task_info.model_extra == {"queue_position": 3}
    assert task.usage.model_extra == {"credits_charged": 1.6}
    assert task.usage.billing_rule == "per_megapixel"
    assert task.error is not None and task.error.model_extra == {"retry_hint": 30}


def test_file_models_keep_unknown_fields() -> None:
    uploaded = UploadedFile.model_validate({"file_id": "f1", "file_url": "https://x/f1.png", "checksum": "abc"})
    listing = FileList.model_validate(
        {"total": 1, "page": 1, "files": [{"file_id": "f1", "mime_type": "image/png", "file_url": "u"}]}
    )

    assert uploaded.model_extra == {"checksum": "abc"}
    assert listing.model_extra == {"page": 1}
    assert listing.files[0].model_extra == {"mime_type": "image/png", "file_url": "u"}


@pytest.mark.parametrize(
    ("results", "result_data", "expected"),
    [
        (["https://cdn/a.png"], None, ["https://cdn/a.png"]),
        (None, [{"image_url": "https://cdn/a.png"}], ["https://cdn/a.png"]),
        (["https://cdn/a.png"], [{"image_url": "https://cdn/a.png"}], ["https://cdn/a.png"]),
        (
            ["https://cdn/a.png"],
            [{"image_url": "https://cdn/b.png"}],
            ["https://cdn/a.png", "https://cdn/b.png"],
        ),
        (
            None,
            [{"video_url": "https://cdn/v.mp4"}, {"image_url": "https://cdn/c.png"}],
            ["https://cdn/c.png"],
        ),
        ([], [], []),
    ],
)
def test_result_urls_are_read_from_both_results_and_result_data(
    results: list[str] | None, result_data: list[dict[str, str]] | None, expected: list[str]
) -> None:
    wire = {**CREATED, "status": "completed", "progress": 100}
    if results is not None:
        wire["results"] = results
    if result_data is not None:
        wire["result_data"] = result_data

    assert Task.model_validate(wire).image_urls == expected


@pytest.mark.parametrize(
    ("status", "terminal", "succeeded"),
    [
        ("pending", False, False),
        ("processing", False, False),
        ("completed", True, True),
        ("failed", True, False),
        ("cancelled", True, False),
        ("expired", True, False),
    ],
)
def test_any_status_other_than_pending_or_processing_is_terminal(status: str, terminal: bool, succeeded: bool) -> None:
    task = Task.model_validate({**CREATED, "status": status})

    assert (task.status, task.is_terminal, task.succeeded) == (status, terminal, succeeded)


@pytest.mark.parametrize("code", ["generation_timeout", 500, None])
def test_a_task_error_code_may_be_a_string_an_int_or_missing(code: str | int | None) -> None:
    task = Task.model_validate({**CREATED, "status": "failed", "error": {"code": code, "message": "no"}})

    assert task.error is not None and task.error.code == code
    assert type(task.error.code) is type(code)


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("content_policy_violation", False),
        ("CONTENT_POLICY_VIOLATION", False),
        ("generation_timeout", True),
        ("resource_not_found", False),
        ("a_code_from_the_future", True),
        (500, True),
        (None, True),
    ],
)
def test_task_failure_advice_knows_which_codes_are_worth_retrying(code: str | int | None, retryable: bool) -> None:
    advice = task_failure_advice(code)

    assert advice.retryable is retryable
    assert advice.next_step


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (402, 402, InsufficientCreditsError),
        (429, "insufficient_quota", InsufficientCreditsError),
        (429, "Insufficient_Quota", InsufficientCreditsError),
        (400, "rate_limit_exceeded", RateLimitError),
        (503, "an_unlisted_string", ServiceUnavailableError),
        (200, 404, NotFoundError),
        (418, None, BadRequestError),
        (599, None, InternalServerError),
    ],
)
def test_error_codes_are_accepted_as_ints_or_strings(status: int, code: int | str | None, expected: type) -> None:
    assert error_class_for(status, code) is expected


# -- Retry-After ---------------------------------------------------------------------------------------

NOW = 1_757_165_031.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
    ],
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "header", [None, "", "   ", "soon", "in a minute", "Tomorrow, 99 Foo 2024", "nan", "inf", "1e400"]
)
def test_a_missing_or_unreadable_retry_after_is_none(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


@pytest.fixture
def local_time_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to UTC-5/-4 for the test, restored afterwards."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is Unix-only")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_far_from_utc")
def test_an_http_date_without_a_zone_name_is_utc_whatever_the_local_time_zone() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW + 30), now=NOW) == pytest.approx(30.0)  # "... -0000"
    assert parse_retry_after(email.utils.formatdate(NOW + 30, usegmt=True), now=NOW) == pytest.approx(30.0)


def test_an_http_date_retry_after_counts_from_the_current_time_by_default() -> None:
    header = email.utils.formatdate(time.time() + 100, usegmt=True)

    assert 98 <= (parse_retry_after(header) or 0) <= 100
