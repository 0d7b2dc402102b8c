"""The error hierarchy of the Evolink client, and the advice for failed tasks.

Every error knows whether trying again can help (`retryable`), what an agent should do next
(`next_step`) and, for the paid submission, whether credits may have been spent (`charged`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Charged = Literal["no", "unknown"]


class EvolinkError(Exception):
    """Base of every error the client raises."""

    category: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False
    default_next_step: ClassVar[str] = "Check the request and try again."

    def __init__(self, message: str, *, next_step: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.next_step = next_step or self.default_next_step
        self.request_id = request_id
        # False only when the request certainly never reached the server (it could not connect).
        self.sent = True

    @property
    def charged(self) -> Charged:
        """For a submission that raised this: could credits have been spent?"""
        return "no"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "category": self.category,
            "message": self.message,
            "retryable": self.retryable,
            "next_step": self.next_step,
        }
        if self.request_id:
            data["request_id"] = self.request_id
        return data


class ConfigurationError(EvolinkError):
    category = "configuration"
    default_next_step = "Set EVOLINK_API_KEY (get a key at https://evolink.ai), or run with --sandbox to try it."


class InvalidRequestError(EvolinkError):
    """We refused the request before sending anything: nothing was charged."""

    category = "invalid_request"
    default_next_step = "Fix the parameters named above and call again; list_models shows each model's limits."

    def __init__(self, message: str, *, problems: list[Any] | None = None, next_step: str | None = None) -> None:
        super().__init__(message, next_step=next_step)
        self.problems = list(problems or [])
        self.sent = False

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.problems:
            data["problems"] = [
                {k: v for k, v in vars(p).items() if v is not None} if hasattr(p, "__dict__") else p
                for p in self.problems
            ]
        return data


class UnexpectedServerError(EvolinkError):
    """A bug of ours: the details stay in the server's log."""

    category = "internal"
    default_next_step = "Try again; if it keeps failing, report it with the server's log (stderr)."


class RequestInProgressError(EvolinkError):
    """Another call (perhaps on another replica) is submitting this very request right now: nothing was sent."""

    category = "in_progress"
    retryable = True
    default_next_step = "Call again in a few seconds with the same client_request_id: it returns that request's task."


class SpendingCapError(InvalidRequestError):
    """The request would cost more than the configured cap: refused before sending."""

    category = "spending_cap"
    default_next_step = "Raise max_credits (or EVOLINK_MAX_CREDITS_PER_CALL), or ask for less."


class APIStatusError(EvolinkError):
    """The API answered with an error status (or a files-API envelope with success=false)."""

    status_code: ClassVar[int] = 0
    # The default next step names the page to go to: an upstream suggestion stays in `suggestion` only.
    page_advice: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        code: int | str | None = None,
        param: str | None = None,
        suggestion: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        next_step: str | None = None,
    ) -> None:
        advice = None if self.page_advice else suggestion
        super().__init__(message, next_step=next_step or advice, request_id=request_id)
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.suggestion = suggestion
        self.retry_after = retry_after

    def __str__(self) -> str:
        kind = f" {self.type}" if self.type else ""
        where = f" (param: {self.param})" if self.param else ""
        return f"HTTP {self.status}{kind}: {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["status"] = self.status
        for key in ("type", "code", "param", "suggestion", "retry_after"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


class BadRequestError(APIStatusError):
    category = "invalid_request"
    default_next_step = "Fix the parameter named in the message; list_models shows each model's allowed values."


class AuthenticationError(APIStatusError):
    category = "authentication"
    page_advice = True
    default_next_step = (
        "The API key is invalid or expired: create one at https://evolink.ai/dashboard/keys and set EVOLINK_API_KEY."
    )


class InsufficientCreditsError(APIStatusError):
    category = "insufficient_credits"
    page_advice = True
    default_next_step = "Out of credits: top up at https://evolink.ai/dashboard/billing, then try again."


class PermissionDeniedError(APIStatusError):
    category = "permission"
    default_next_step = "This key may not use this model: pick another model (list_models)."


class NotFoundError(APIStatusError):
    category = "not_found"
    default_next_step = "Check the id; list_models shows every model."


class RequestTooLargeError(APIStatusError):
    category = "too_large"
    default_next_step = "Use a smaller image (resize or compress it) and try again."


class FilesQuotaError(APIStatusError):
    category = "files_quota"
    default_next_step = "The file quota is full: delete files you no longer need (list_files, delete_file)."


class RateLimitError(APIStatusError):
    category = "rate_limit"
    retryable = True
    default_next_step = "Rate limited: wait a minute, then try again."


class InternalServerError(APIStatusError):
    category = "server_error"
    retryable = True
    default_next_step = "Evolink had an internal error: try again in a minute."


class UpstreamError(APIStatusError):
    category = "upstream_error"
    retryable = True
    default_next_step = "The model's provider is unavailable: try again later or pick another model."


class ModelUnavailableError(APIStatusError):
    """`model_unavailable` as an error code: as a task error, not worth retrying with the same model."""

    category = "model_unavailable"
    default_next_step = "The model is unavailable: pick another model (list_models)."


class ServiceUnavailableError(APIStatusError):
    category = "service_unavailable"
    retryable = True
    default_next_step = "Evolink is temporarily unavailable: try again in a minute."


class APIConnectionError(EvolinkError):
    """No usable answer: the connection failed or broke."""

    category = "connection"
    retryable = True
    default_next_step = "Could not reach Evolink: check the network (or EVOLINK_BASE_URL) and try again."


class APITimeoutError(APIConnectionError):
    category = "timeout"
    default_next_step = "Evolink did not answer in time: try again in a minute."


class AnswerTooLargeError(APIConnectionError):
    """The answer was larger than any answer of this API can be: not read further, not retried."""

    category = "answer_too_large"
    retryable = False
    default_next_step = "The server at EVOLINK_BASE_URL sent an answer far larger than Evolink's: check that setting."


class ResultRefusedError(EvolinkError):
    """A result link or its content we will not fetch or keep: a non-public address, a downgrade, not an image."""

    category = "result_refused"
    default_next_step = (
        "The result was not saved. If the address is yours and trusted, add its host to EVOLINK_DOWNLOAD_ALLOW_HOSTS."
    )

    def __init__(self, message: str, *, next_step: str | None = None) -> None:
        super().__init__(message, next_step=next_step)
        self.sent = False


class SubmissionOutcomeUnknownError(EvolinkError):
    """The submission may have created a (paid) task, but its answer was lost."""

    category = "outcome_unknown"
    retryable = False  # not blindly: a blind retry may pay twice

    def __init__(self, message: str, *, idempotency_key: str, request_id: str | None = None) -> None:
        super().__init__(
            message,
            next_step=(
                "The request may have created a task that is being charged. Do not submit a new request "
                "blindly: retry with the same client_request_id so the server can find the task first."
            ),
            request_id=request_id,
        )
        self.idempotency_key = idempotency_key

    @property
    def charged(self) -> Charged:
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "idempotency_key": self.idempotency_key}


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
    500: InternalServerError,
    502: UpstreamError,
    503: ServiceUnavailableError,
}

# Gateways sometimes put a string in error.code instead of the HTTP status.
CODE_ERRORS: dict[str, type[APIStatusError]] = {
    "invalid_request": BadRequestError,
    "invalid_parameters": BadRequestError,
    "invalid_api_key": AuthenticationError,
    "insufficient_quota": InsufficientCreditsError,
    "insufficient_user_quota": InsufficientCreditsError,
    "model_not_found": NotFoundError,
    "rate_limit_exceeded": RateLimitError,
    "model_unavailable": ModelUnavailableError,
    "upstream_error": UpstreamError,
    "service_unavailable": ServiceUnavailableError,
}

# The files API's own codes (envelope `code`).
FILES_CODE_ERRORS: dict[int, type[APIStatusError]] = {
    40001: RequestTooLargeError,
    40002: BadRequestError,
    40003: FilesQuotaError,
    40004: BadRequestError,
    50001: InternalServerError,
}
FILES_NEXT_STEPS: dict[int, str] = {
    40001: "The file is over the 100 MB limit: resize or compress it and upload again.",
    40002: "Only JPEG, PNG, GIF and WebP images are accepted: convert the file and upload again.",
    40004: "Evolink could not download the URL: check it is public and points at the image itself, or upload "
    "the file (file_path or base64_data) instead.",
}


def error_class_for(status: int, code: int | str | None) -> type[APIStatusError]:
    """The error class for an HTTP status and an envelope code (int or string)."""
    if isinstance(code, str) and code.lower() in CODE_ERRORS:
        return CODE_ERRORS[code.lower()]
    if isinstance(code, int) and code in FILES_CODE_ERRORS:
        return FILES_CODE_ERRORS[code]
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    if isinstance(code, int) and code in STATUS_ERRORS:
        return STATUS_ERRORS[code]
    if status >= 500:
        return InternalServerError
    return BadRequestError


@dataclass(frozen=True)
class TaskFailureAdvice:
    retryable: bool
    next_step: str


_TASK_FAILURES: dict[str, TaskFailureAdvice] = {
    "content_policy_violation": TaskFailureAdvice(
        False, "Rephrase the prompt: no NSFW content, violence or real people's names."
    ),
    "invalid_parameters": TaskFailureAdvice(False, "Check the values against the model's limits (list_models)."),
    "image_dimension_mismatch": TaskFailureAdvice(False, "Resize the input image to the requested aspect ratio."),
    "image_processing_error": TaskFailureAdvice(
        False, "Check the input image: JPEG, PNG or WebP, within the size limit, and its URL reachable."
    ),
    "request_cancelled": TaskFailureAdvice(False, "The task was cancelled; submit again if that was unintended."),
    "model_unavailable": TaskFailureAdvice(False, "The model is unavailable: pick another model (list_models)."),
    "generation_timeout": TaskFailureAdvice(True, "Generation timed out: try again, perhaps with a simpler prompt."),
    "quota_exceeded": TaskFailureAdvice(True, "Quota exceeded: wait, or top up credits, then try again."),
    "resource_exhausted": TaskFailureAdvice(True, "Capacity exhausted: wait 30-60 seconds, then try again."),
    "service_error": TaskFailureAdvice(True, "Service error: try again in a minute."),
    "service_unavailable": TaskFailureAdvice(True, "Service unavailable: try again in a minute."),
    "upstream_error": TaskFailureAdvice(True, "The model's provider failed: try again in a minute."),
    "generation_failed_no_content": TaskFailureAdvice(True, "No image came back: modify the prompt and try again."),
    "resource_not_found": TaskFailureAdvice(False, "The task id is unknown or expired."),
}
_UNKNOWN_FAILURE = TaskFailureAdvice(True, "Try again; if it keeps failing, report the task id to Evolink support.")


def task_failure_advice(code: str | int | None) -> TaskFailureAdvice:
    """Whether a failed task is worth retrying, and what to do next, by its error code."""
    return _TASK_FAILURES.get(str(code or "").lower(), _UNKNOWN_FAILURE)
