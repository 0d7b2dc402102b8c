"""The error envelopes of evolink-api.md: the generation API's `{"error": ...}` and the files API's."""

from __future__ import annotations

from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
}
ERROR_MESSAGES = {
    400: "Invalid request parameters.",
    401: "Invalid or expired API key.",
    402: "Insufficient credits: top up your balance.",
    403: "This API key is not allowed to use this model.",
    404: "Resource not found.",
    413: "Reference image too large.",
    429: "Rate limit exceeded.",
    500: "Internal server error.",
    502: "The model provider is unavailable.",
    503: "The service is temporarily unavailable.",
}
# What the documented bodies add per status (param, fallback_suggestion).
ERROR_EXTRAS: dict[int, dict[str, str]] = {
    402: {"fallback_suggestion": "top up credits on the billing page: https://evolink.ai/dashboard/billing"},
    403: {"param": "model"},
    413: {"param": "image_urls"},
    429: {"fallback_suggestion": "retry after 60 seconds"},
    502: {"fallback_suggestion": "try another model"},
}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "internal_server_error"


def api_error(
    status: int,
    message: str | None = None,
    *,
    param: str | None = None,
    suggestion: str | None = None,
    code: int | str | None = None,
) -> dict[str, Any]:
    """`{"error": {"code", "message", "type", "param"?, "fallback_suggestion"?}}`."""
    error: dict[str, Any] = {
        "code": status if code is None else code,
        "message": message or ERROR_MESSAGES.get(status, f"HTTP {status}."),
        "type": error_type(status),
    }
    if param is not None:
        error["param"] = param
    if suggestion is not None:
        error["fallback_suggestion"] = suggestion
    return {"error": error}


def documented_api_error(status: int, *, endpoint: str, retry_after: str | None, default_model: str) -> dict[str, Any]:
    """The body the contract documents for `status` on a generation-API endpoint."""
    extras = dict(ERROR_EXTRAS.get(status, {}))
    if status == 404:
        extras = (
            {"param": "task_id"} if endpoint == "tasks" else {"param": "model", "fallback_suggestion": default_model}
        )
    if status == 429 and retry_after and retry_after.strip().isdigit():
        extras["fallback_suggestion"] = f"retry after {retry_after.strip()} seconds"
    return api_error(status, param=extras.get("param"), suggestion=extras.get("fallback_suggestion"))


FILES_MESSAGES = {
    400: "Bad request.",
    401: "Unauthorized: invalid or missing API key.",
    403: "Forbidden.",
    404: "File not found.",
    413: "File too large.",
    429: "Too many requests.",
    500: "Internal server error.",
    503: "Service temporarily unavailable.",
}


def files_error(code: int, msg: str | None = None) -> dict[str, Any]:
    """`{"success": false, "code", "msg", "data": null}`."""
    return {
        "success": False,
        "code": code,
        "msg": msg or FILES_MESSAGES.get(code, f"Error {code}."),
        "data": None,
    }


def files_ok(data: Any) -> dict[str, Any]:
    return {"success": True, "code": 200, "msg": "success", "data": data}
