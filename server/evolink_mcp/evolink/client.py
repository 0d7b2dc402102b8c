"""The Evolink API client: one request loop with timeouts, one retry policy, one error mapping.

No MCP here: the client is usable and testable on its own. HTTP goes through aiohttp: under load a request
costs it a seventh of the CPU httpx2 spends (bench/RESULTS.md), and the event loop is what a busy server runs
short of.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

import anyio
from pydantic import SecretStr, ValidationError

from .. import __version__
from .errors import (
    FILES_NEXT_STEPS,
    AnswerTooLargeError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    EvolinkError,
    InvalidRequestError,
    NotFoundError,
    RequestTooLargeError,
    ResultRefusedError,
    SubmissionOutcomeUnknownError,
    error_class_for,
)
from .redaction import Redactor
from .types import Balance, FileList, FileQuota, Task, UploadedFile, Wire

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.evolink.ai"
DEFAULT_FILES_BASE_URL = "https://files-api.evolink.ai"
USER_AGENT = f"evolink-mcp/{__version__}"
CERTAINLY_NOT_CREATED = (429, 503)  # a submission answered with these created no task
MAX_CONNECTIONS = 100
# No answer of the API comes near these: a larger one is a broken or hostile upstream, not read on.
MAX_ANSWER_BYTES = 4 << 20
MAX_ERROR_BODY_BYTES = 64 << 10  # an error body beyond this is cut: only its first few hundred characters are shown
MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# What real ids use (e.g. task-unified-1757165031-uyujaw3d); no dot segment, nothing a URL path would reinterpret.
TASK_ID_SHAPE = re.compile(r"[A-Za-z0-9._-]{1,256}")
FILE_ID_SHAPE = re.compile(r"[^\x00-\x20\x7f/\\?#%]{1,256}")  # the files API documents no shape: only what is unsafe


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0
    write: float = 60.0
    pool: float = 10.0
    download_read: float = 60.0
    download_total: float = 300.0  # one result download, retries included, however slowly it trickles in

    def for_aiohttp(self, read: float | None = None) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts: `connect` covers the wait for a pooled connection, `sock_read` each read. aiohttp
        has no write timeout: upload_file enforces `write` itself."""
        import aiohttp

        return aiohttp.ClientTimeout(
            total=None, connect=self.pool + self.connect, sock_connect=self.connect, sock_read=read or self.read
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0  # a longer Retry-After is reported, not slept through
    deadline: float = 25.0  # per call, across attempts: an unreachable upstream fails well under 30 s

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter for the given (1-based) attempt that just failed."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


RetryMode = Literal["idempotent", "once"]
WireT = TypeVar("WireT", bound=Wire)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # "-0000": HTTP dates are always UTC, never the local time
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def header_safe_key(key: str) -> str:
    """`key` as an HTTP header value: visible ASCII kept, anything else (and `%`) percent-encoded.

    A caller's client_request_id may hold any Unicode or control character, which no header may carry;
    the encoding is one-to-one, so distinct ids stay distinct keys and the same id is always the same key.
    """
    return quote(key, safe=_HEADER_SAFE)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read (within its cap): what the retry loop and the error mapping look at.

    Everything upstream wrote reaches the rest of the program through here, with the API key blanked out:
    the headers and reason as stored, the body through `text` and `json()`."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    content: bytes = b""  # as received: read it through `text` or `json()`
    redactor: Redactor = field(default_factory=lambda: Redactor(None))

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.redactor.text(self.content.decode("utf-8", "replace"))

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return self.redactor.data(json.loads(self.content))


def _request_id(response: Answer) -> str | None:
    return response.headers.get("x-request-id") or response.headers.get("x-oneapi-request-id")


def error_from_response(response: Answer) -> APIStatusError:
    """Map an error response (either envelope, int or string codes) to the matching exception."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code: int | str | None = None
    type_ = param = suggestion = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        message = str(err.get("message") or response.reason_phrase)
        code, type_, param = err.get("code"), err.get("type"), err.get("param")
        suggestion = err.get("fallback_suggestion")
    elif isinstance(body, dict) and "success" in body:
        code = body.get("code")
        message = str(body.get("msg") or response.reason_phrase)
    else:
        message = (response.text or "").strip()[:300] or response.reason_phrase or "error"
    status = response.status_code
    if status < 400 and isinstance(code, int) and code >= 400:
        status = code if code < 600 else (413 if code == 40001 else 400 if code < 50000 else 500)
    cls = error_class_for(status, code)
    return cls(
        message,
        status=status,
        type=type_,
        code=code,
        param=param,
        suggestion=suggestion,
        request_id=_request_id(response),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        next_step=FILES_NEXT_STEPS.get(code) if isinstance(code, int) else None,
    )


def check_id(value: str, *, param: str) -> None:
    """Refuse, before anything is sent, an id that no real task (or file) can have."""
    shape = TASK_ID_SHAPE if param == "task_id" else FILE_ID_SHAPE
    if not shape.fullmatch(value) or ".." in value or value == ".":
        raise InvalidRequestError(
            f"{param} {value[:80]!r} cannot be a valid id: ids are at most 256 letters, digits, '.', '_' or '-' "
            "(no '..', '/', spaces or control characters).",
            next_step=f"Pass the {param} exactly as it was returned (list_tasks and list_files show them).",
        )


def _host_key(host: str | None) -> str:
    """A host as the download allow list holds it: lower case, no trailing dot, no IPv6 brackets."""
    return (host or "").lower().rstrip(".").strip("[]")


def _files_failed(response: Answer) -> bool:
    """The files API can answer 200 with success=false."""
    if "json" not in response.headers.get("content-type", ""):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("success") is False


_UNSAFE_IN_URL = re.compile(r"[^!-~]|[\"<>\\^`{|}]")


def _url(url: str) -> Any:
    """`url` for aiohttp, sent as given when it is already valid: requoting could change a signed CDN link."""
    from yarl import URL

    return URL(url) if _UNSAFE_IN_URL.search(url) else URL(url, encoded=True)


_FORM_ESCAPES = {'"': "%22", "\\": "\\\\", **{chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}}
_FORM_ESCAPE = re.compile("|".join(map(re.escape, _FORM_ESCAPES)))


def form_disposition(name: str, file_name: str | None = None) -> dict[str, str]:
    """A form part's Content-Disposition, names escaped as HTML5 forms (and so every server) do: aiohttp's own
    quoting percent-encodes every non-token character of a file name, which servers store as is."""
    text = f'form-data; name="{_FORM_ESCAPE.sub(lambda m: _FORM_ESCAPES[m[0]], name)}"'
    if file_name is not None:
        text += f'; filename="{_FORM_ESCAPE.sub(lambda m: _FORM_ESCAPES[m[0]], file_name)}"'
    return {"Content-Disposition": text}


def _own_file(source: Path | IO[bytes]) -> IO[bytes]:
    """`source` opened, or a duplicate of the caller's open file: aiohttp closes the file it sent."""
    return source.open("rb") if isinstance(source, Path) else os.fdopen(os.dup(source.fileno()), "rb")


@dataclass
class _UploadProgress:
    """An upload's trace_request_ctx: each body chunk aiohttp sends moves the stall deadline on; the last one
    lifts it (the read timeout takes over)."""

    stalled: anyio.CancelScope
    seconds: float
    left: int

    def sent(self, size: int) -> None:
        self.left -= size
        self.stalled.deadline = math.inf if self.left <= 0 else anyio.current_time() + self.seconds


async def _on_chunk_sent(_: object, context: SimpleNamespace, params: aiohttp.TraceRequestChunkSentParams) -> None:
    progress = (context.trace_request_ctx or {}).get("upload")
    if progress is not None:
        progress.sent(memoryview(params.chunk).nbytes)


@dataclass
class Connections:
    """A client's HTTP sessions, built on first use; shared by the clients `with_key` makes from it."""

    api: aiohttp.ClientSession | None = None
    downloads: aiohttp.ClientSession | None = None  # its resolver refuses non-public addresses


class EvolinkClient:
    """Async client for Evolink's generation, task and files APIs. One per process."""

    def __init__(
        self,
        api_key: str | SecretStr | None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        files_base_url: str = DEFAULT_FILES_BASE_URL,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        download_allow_hosts: Iterable[str] = (),
        connections: Connections | None = None,
    ) -> None:
        self._api_key = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        self._redactor = Redactor(self._api_key.get_secret_value() if self._api_key is not None else None)
        self.base_url = base_url.rstrip("/")
        self.files_base_url = files_base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._proxies: dict[tuple[str, str], str | None] = {}
        # Hosts a download may reach at any address, loopback and private included: the configured API hosts
        # (the sandbox serves results itself), the operator's list, and the proxies in use.
        self.download_allow_hosts = {_host_key(urlsplit(u).hostname) for u in (self.base_url, self.files_base_url)} | {
            _host_key(h) for h in download_allow_hosts
        }
        self._owns_connections = connections is None
        self._connections = connections or Connections()

    def with_key(self, api_key: str | SecretStr) -> EvolinkClient:
        """This client speaking for another key (a caller's own, over HTTP): the same hosts and policies, its
        connections shared (the key goes with each request), its own redaction. Closing it closes nothing."""
        return EvolinkClient(
            api_key,
            base_url=self.base_url,
            files_base_url=self.files_base_url,
            timeouts=self.timeouts,
            retry=self.retry,
            download_allow_hosts=self.download_allow_hosts,
            connections=self._connections,
        )

    def __repr__(self) -> str:
        return f"EvolinkClient(base_url={self.base_url!r}, files_base_url={self.files_base_url!r})"

    @property
    def has_key(self) -> bool:
        return bool(self._api_key and self._api_key.get_secret_value())

    @property
    def _http(self) -> aiohttp.ClientSession:
        # Built on first use: importing aiohttp and creating the SSL context cost start-up time the stdio server
        # should not pay.
        if self._connections.api is None:
            self._connections.api = self._new_session()
        return self._connections.api

    @property
    def _downloads(self) -> aiohttp.ClientSession:
        """Result downloads' own session: its resolver refuses non-public addresses (API calls need no check)."""
        if self._connections.downloads is None:
            from .addresses import PublicAddressResolver

            resolver = PublicAddressResolver(self._may_download_from_any_address)
            self._connections.downloads = self._new_session(resolver)
        return self._connections.downloads

    def _new_session(self, resolver: aiohttp.abc.AbstractResolver | None = None) -> aiohttp.ClientSession:
        import aiohttp
        import httpx2  # already imported by the MCP SDK

        # aiohttp has no write timeout: uploads watch their own progress (upload_file).
        trace = aiohttp.TraceConfig()
        trace.on_request_chunk_sent.append(_on_chunk_sent)
        # aiohttp resends an idempotent request (GET, DELETE) once, at once, when a reused keep-alive connection
        # turns out closed (RFC 9112 9.3.1). Kept: it has no public switch, the API calls it can repeat are the
        # ones the retry policy repeats anyway, and a POST (a submission, an upload) is never resent.
        return aiohttp.ClientSession(
            # The SDK's certificate choice: SSL_CERT_FILE/DIR, else the system store (truststore on Windows/macOS).
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=httpx2.create_ssl_context(), resolver=resolver),
            timeout=self.timeouts.for_aiohttp(),
            headers={"User-Agent": USER_AGENT},
            trace_configs=[trace],
        )

    def _proxy(self, url: str) -> str | None:
        """The proxy for `url` from HTTP_PROXY/HTTPS_PROXY and NO_PROXY, looked up once per scheme and host.

        Not aiohttp's trust_env: it looks up the proxy and .netrc in worker threads on every request."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxies:
            from urllib.request import getproxies, proxy_bypass

            self._proxies[key] = None if proxy_bypass(key[1]) else getproxies().get(key[0])
        return self._proxies[key]

    async def aclose(self) -> None:
        if not self._owns_connections:
            return  # the client with_key was called on closes them
        for session in (self._connections.api, self._connections.downloads):
            if session is not None:
                await session.close()
        self._connections.api = self._connections.downloads = None

    async def __aenter__(self) -> EvolinkClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _auth(self) -> dict[str, str]:
        """Headers of every API request: the key, and our User-Agent."""
        if not self.has_key:
            raise ConfigurationError("No Evolink API key is configured (EVOLINK_API_KEY is not set).")
        assert self._api_key is not None
        return {"Authorization": f"Bearer {self._api_key.get_secret_value()}", "User-Agent": USER_AGENT}

    def redact(self, text: str) -> str:
        """`text` with the API key (and any long enough part of it) blanked out."""
        return self._redactor.text(text)

    def _answer(self, response: aiohttp.ClientResponse, content: bytes = b"") -> Answer:
        """The one way an answer comes in: what upstream wrote, the key blanked out of it."""
        from multidict import CIMultiDict, CIMultiDictProxy

        headers = CIMultiDict((name, self._redactor.text(value)) for name, value in response.headers.items())
        reason = self._redactor.text(response.reason or "")
        return Answer(response.status, reason, CIMultiDictProxy(headers), content, self._redactor)

    async def _read(self, response: aiohttp.ClientResponse) -> Answer:
        """The answer with its body, streamed within a cap: an error body is cut, a larger success refused."""
        success = 200 <= response.status < 300
        limit = MAX_ANSWER_BYTES if success else MAX_ERROR_BODY_BYTES

        def too_large() -> AnswerTooLargeError:
            return AnswerTooLargeError(
                f"The answer from {response.url.host or 'the server'} (HTTP {response.status}) is over "
                f"{limit >> 20} MB, more than any Evolink answer; it was not read.",
                request_id=_request_id(self._answer(response)),
            )

        if success and (response.content_length or 0) > limit:
            raise too_large()
        body = bytearray()
        async for chunk in response.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > limit:
                if success:
                    raise too_large()
                del body[limit:]
                break
        return self._answer(response, bytes(body))

    async def _send(self, method: str, url: str, *, headers: Mapping[str, str], **kwargs: Any) -> Answer:
        """One request, its answer read (within its cap). Never follows a redirect."""
        proxy = self._proxy(url)
        async with self._http.request(
            method, _url(url), headers=headers, allow_redirects=False, proxy=proxy, **kwargs
        ) as answer:
            return await self._read(answer)

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[Answer]], *, mode: RetryMode, what: str, url: str
    ) -> Answer:
        """Run `attempt` until it succeeds or the retry policy gives up; raise the mapped error.

        mode="idempotent": retry connection errors, timeouts, 429 and 5xx.
        mode="once": retry only when the request certainly had no effect (never connected, 429, 503).
        Errors raised after the request may have been processed carry `sent=True`.
        """
        import aiohttp

        host = urlsplit(url).hostname or "the server"
        policy = self.retry
        give_up_at = time.monotonic() + policy.deadline
        for number in range(1, policy.max_attempts + 1):
            sent = True
            try:
                response = await attempt()
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.ClientHttpProxyError) as exc:
                sent = False  # never connected (a pool wait counts): nothing reached the API
                cls = APITimeoutError if isinstance(exc, TimeoutError) else APIConnectionError
                error: EvolinkError = cls(f"{what}: could not connect to {host} ({type(exc).__name__}).")
            except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
                error = APITimeoutError(f"{what}: no answer in time from {host} ({type(exc).__name__}).")
            except aiohttp.ClientError as exc:
                error = APIConnectionError(f"{what}: the connection to {host} broke ({type(exc).__name__}).")
            else:
                if response.is_success and not _files_failed(response):
                    return response
                error = error_from_response(response)
            error.sent = sent
            if not self._may_retry(error, mode, sent) or number == policy.max_attempts:
                raise error
            retry_after = error.retry_after if isinstance(error, APIStatusError) else None
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise error
            delay = retry_after if retry_after is not None else policy.backoff(number)
            if time.monotonic() + delay > give_up_at:
                raise error
            log.info("%s failed (%s); retry %d in %.2fs", what, error.category, number, delay)
            await anyio.sleep(delay)
        raise AssertionError("unreachable")

    @staticmethod
    def _may_retry(error: EvolinkError, mode: RetryMode, sent: bool) -> bool:
        if not error.retryable:
            return False
        if mode == "idempotent":
            return True
        if isinstance(error, APIStatusError):
            return error.status in CERTAINLY_NOT_CREATED
        return not sent

    async def _json(self, response: Answer, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise APIConnectionError(
                f"{what}: the answer was not JSON (HTTP {response.status_code}).",
                request_id=_request_id(response),
            ) from None

    @staticmethod
    def _parse(model: type[WireT], data: Any, response: Answer, what: str) -> WireT:
        """`data` as `model`: a success answer of the wrong shape is an unusable answer, not a crash."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "the body"
            raise APIConnectionError(
                f"{what}: the answer was not a valid {model.__name__} ({where}: {first['msg']}).",
                request_id=_request_id(response),
            ) from None

    # Generation API

    async def submit_generation(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> Task:
        """POST /v1/images/generations: create a (paid) task. Never sent twice unless surely not created."""
        key = idempotency_key or str(uuid.uuid4())
        headers = {**self._auth(), "Idempotency-Key": header_safe_key(key)}
        url = f"{self.base_url}/v1/images/generations"

        async def attempt() -> Answer:
            return await self._send("POST", url, json=body, headers=headers)

        what = "Submitting the generation"
        try:
            response = await self._with_retries(attempt, mode="once", what=what, url=url)
            # A 200 we cannot read still created a task: the same unknown outcome as a lost answer.
            return self._parse(Task, await self._json(response, what), response, what)
        except (APIConnectionError, APIStatusError) as exc:
            ambiguous_status = isinstance(exc, APIStatusError) and exc.status >= 500 and exc.status != 503
            lost_answer = isinstance(exc, APIConnectionError) and exc.sent
            if ambiguous_status or lost_answer:
                raise SubmissionOutcomeUnknownError(
                    f"The generation request was sent but its outcome is unknown ({exc.message})",
                    idempotency_key=key,
                    request_id=exc.request_id,
                ) from exc
            raise

    async def get_task(self, task_id: str) -> Task:
        """GET /v1/tasks/{task_id}: the task's current state."""
        check_id(task_id, param="task_id")
        url = f"{self.base_url}/v1/tasks/{quote(task_id, safe='')}"
        headers = self._auth()

        async def attempt() -> Answer:
            return await self._send("GET", url, headers=headers)

        what = "Checking the task"
        try:
            response = await self._with_retries(attempt, mode="idempotent", what=what, url=url)
        except NotFoundError as exc:
            exc.next_step = (
                "The task id is unknown or has expired. Check the id; list_tasks shows the tasks this server submitted."
            )
            raise
        return self._parse(Task, await self._json(response, what), response, what)

    async def get_balance(self) -> Balance:
        """GET /v1/credits: the account's credits left and used, and this API key's own limit (free)."""
        url = f"{self.base_url}/v1/credits"
        headers = self._auth()

        async def attempt() -> Answer:
            return await self._send("GET", url, headers=headers)

        what = "Reading the credits balance"
        response = await self._with_retries(attempt, mode="idempotent", what=what, url=url)
        envelope = await self._json(response, what)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        return self._parse(Balance, data, response, what)

    # Files API

    async def _files_request(self, method: str, path: str, *, mode: RetryMode, what: str, **kwargs: Any) -> Answer:
        url = f"{self.files_base_url}/api/v1/files/{path}"
        headers = self._auth()

        async def attempt() -> Answer:
            return await self._send(method, url, headers=headers, **kwargs)

        return await self._with_retries(attempt, mode=mode, what=what, url=url)

    async def _files_call(
        self, method: str, path: str, model: type[WireT], *, mode: RetryMode, what: str, **kwargs: Any
    ) -> WireT:
        response = await self._files_request(method, path, mode=mode, what=what, **kwargs)
        return await self._files_data(model, response, what)

    async def _files_data(self, model: type[WireT], response: Answer, what: str) -> WireT:
        envelope = await self._json(response, what)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if data is None and model is not UploadedFile:  # only an upload must say what it stored
            data = {}
        return self._parse(model, data, response, what)

    @staticmethod
    def _upload_fields(upload_path: str | None, file_name: str | None) -> dict[str, str]:
        return {k: v for k, v in (("upload_path", upload_path), ("file_name", file_name)) if v}

    async def upload_base64(
        self, base64_data: str, *, upload_path: str | None = None, file_name: str | None = None
    ) -> UploadedFile:
        """POST upload/base64: raw base64 or a data URL."""
        body = {"base64_data": base64_data, **self._upload_fields(upload_path, file_name)}
        return await self._files_call(
            "POST", "upload/base64", UploadedFile, mode="once", what="Uploading the image", json=body
        )

    async def upload_url(
        self, file_url: str, *, upload_path: str | None = None, file_name: str | None = None
    ) -> UploadedFile:
        """POST upload/url: Evolink downloads the file from a public URL."""
        body = {"file_url": file_url, **self._upload_fields(upload_path, file_name)}
        return await self._files_call(
            "POST", "upload/url", UploadedFile, mode="once", what="Uploading from the URL", json=body
        )

    async def upload_file(
        self,
        source: Path | IO[bytes],
        *,
        upload_path: str | None = None,
        file_name: str | None = None,
        mime_type: str = "application/octet-stream",
    ) -> UploadedFile:
        """POST upload/stream: multipart, streamed from disk in chunks (never read whole). `source`: a path, or
        a file open for reading (sent from its start, left open), so that the file checked is the file sent."""
        url = f"{self.files_base_url}/api/v1/files/upload/stream"
        fields = self._upload_fields(upload_path, file_name)
        write_timeout = self.timeouts.write

        async def attempt() -> Answer:
            import aiohttp

            name = file_name or (source.name if isinstance(source, Path) else "upload")
            with _own_file(source) as handle, anyio.CancelScope() as stalled:
                handle.seek(0)
                form = aiohttp.MultipartWriter("form-data")
                for field_name, value in fields.items():
                    form.append(value, form_disposition(field_name))
                form.append(handle, {"Content-Type": mime_type, **form_disposition("file", name)})
                assert form.size is not None  # a regular file's: sent with a Content-Length, streamed
                progress = _UploadProgress(stalled, write_timeout, form.size)
                progress.sent(0)
                trace = {"upload": progress}
                return await self._send("POST", url, headers=self._auth(), data=form, trace_request_ctx=trace)
            raise TimeoutError(f"no upload progress in {write_timeout:g} s")

        response = await self._with_retries(attempt, mode="once", what="Uploading the file", url=url)
        return await self._files_data(UploadedFile, response, "Uploading the file")

    async def list_files(self, page: int = 1, page_size: int = 20) -> FileList:
        return await self._files_call(
            "GET",
            "list",
            FileList,
            mode="idempotent",
            what="Listing files",
            params={"page": page, "pageSize": page_size},
        )

    async def get_quota(self) -> FileQuota:
        return await self._files_call("GET", "quota", FileQuota, mode="idempotent", what="Reading the file quota")

    async def delete_file(self, file_id: str) -> None:
        check_id(file_id, param="file_id")
        what = "Deleting the file"
        try:
            response = await self._files_request("DELETE", quote(file_id, safe=""), mode="idempotent", what=what)
        except NotFoundError as exc:
            exc.next_step = "The file id is unknown or has expired (uploads live 72 hours); list_files shows them."
            raise
        await self._json(response, what)

    # Result downloads: CDN links, fetched without the API key.

    def _may_download_from_any_address(self, host: str) -> bool:
        return _host_key(host) in self.download_allow_hosts

    def _check_download_target(self, target: URL, shown: str) -> None:
        """Refuse, before connecting, what no result link may be: not http(s), or a non-public IP literal.

        Host names are checked where they are resolved (PublicAddressResolver); aiohttp resolves no IP literal."""
        from .addresses import is_ip_literal, is_public_address

        if target.scheme not in ("http", "https") or not target.host:
            raise ResultRefusedError(f"Refusing to download a non-http(s) URL: {shown[:100]!r}.")
        host = target.host
        if not self._may_download_from_any_address(host) and is_ip_literal(host) and not is_public_address(host):
            raise ResultRefusedError(f"Refusing to download {shown[:100]}: {host} is not a public address.")

    async def _download_get(self, target: URL, shown: str) -> aiohttp.ClientResponse:
        import aiohttp

        from .addresses import NonPublicAddressError

        self._check_download_target(target, shown)
        proxy = self._proxy(str(target))
        if proxy:  # the operator's proxy is trusted wherever it is; it resolves the target itself
            self.download_allow_hosts.add(_host_key(urlsplit(proxy).hostname))
        headers = {"User-Agent": USER_AGENT}  # and never the key: result links are public CDN URLs
        try:
            return await self._downloads.get(
                target,
                headers=headers,
                timeout=self.timeouts.for_aiohttp(read=self.timeouts.download_read),
                proxy=proxy,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, NonPublicAddressError):
                raise ResultRefusedError(f"Refusing to download {shown[:100]}: {exc.os_error}.") from None
            raise

    async def download(self, url: str, sink: IO[bytes], *, max_bytes: int, deadline: float | None = None) -> str | None:
        """Stream `url` into `sink` (at most `max_bytes`) by `deadline` (a time.monotonic() value; at the latest
        `timeouts.download_total` from now); return its content type. Retries restart `sink`.

        Redirects are followed (a CDN may send a signed link elsewhere), but never from https to http; no hop may
        reach a non-public address unless its host is allowed. Nothing secret goes with the request."""
        from yarl import URL

        first = _url(url)
        self._check_download_target(first, url)
        latest = time.monotonic() + self.timeouts.download_total
        deadline = latest if deadline is None else min(deadline, latest)

        async def attempt() -> Answer:
            sink.seek(0)
            sink.truncate()
            target, shown = first, url
            for _ in range(MAX_REDIRECTS + 1):
                async with await self._download_get(target, shown) as response:
                    location = response.headers.get("location")
                    if response.status in REDIRECT_STATUSES and location:
                        shown = self._redactor.text(location)
                        following = target.join(URL(shown))
                        if target.scheme == "https" and following.scheme != "https":
                            raise ResultRefusedError(f"Refusing a redirect from https to {shown[:100]!r}.")
                        target = following
                        continue
                    if not 200 <= response.status < 300:
                        return await self._read(response)
                    declared = response.content_length or 0
                    if declared > max_bytes:
                        raise RequestTooLargeError(
                            f"The result at {shown[:100]} is {declared} bytes, over the {max_bytes}-byte cap.",
                            status=413,
                        )
                    written = 0
                    async for chunk in response.content.iter_any():
                        written += len(chunk)
                        if written > max_bytes:
                            raise RequestTooLargeError(
                                f"The result at {shown[:100]} is over the {max_bytes}-byte cap.", status=413
                            )
                        sink.write(chunk)
                    return self._answer(response)
            raise ResultRefusedError(f"Refusing to follow more than {MAX_REDIRECTS} redirects from {url[:100]}.")

        seconds = max(0.0, deadline - time.monotonic())
        with anyio.move_on_after(seconds):
            answer = await self._with_retries(attempt, mode="idempotent", what="Downloading the result", url=url)
            return answer.headers.get("content-type")
        raise APITimeoutError(f"Downloading the result: not finished within {seconds:.0f} s ({url[:100]}).")
