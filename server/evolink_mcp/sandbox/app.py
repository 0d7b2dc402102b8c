"""The Evolink-compatible ASGI app: generation, tasks and files APIs, result downloads, test controls."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..catalog import Problem, errors_only, validate_request
from .errors import ERROR_EXTRAS, api_error, documented_api_error, files_error, files_ok
from .files import UploadRejected
from .render import render_image
from .state import Fault, InsufficientBalance, LoggedRequest, Sandbox, endpoint_of
from .tasks import TASK_ID, SandboxTask, request_from_wire, strip_markers

logger = logging.getLogger("evolink_mcp.sandbox")

LOGGED_HEADERS = ("idempotency-key", "user-agent", "content-type", "content-length", "x-request-id", "accept")
BODY_LOGGED = ("generations", "files/upload/url")
MULTIPART_SLACK = 1024 * 1024  # multipart framing and fields around the file part


class DroppedConnection(Exception):
    """Raised out of the app so that the server closes the connection without a complete answer."""


# -- fault injection and the request log ------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _logged_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:2000].decode("utf-8", "replace")


async def _close_without_answer(send: Send) -> None:
    # uvicorn (h11) marks the response as started, then h11 refuses the illegal header value before
    # anything is written; the exception makes uvicorn close the transport: the client sees the
    # connection closed with no response at all.
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-sandbox-drop", b"\n")]})
    raise DroppedConnection("connection dropped before processing (scripted)")


class FaultsAndLog:
    """Outermost ASGI layer: logs every API request and applies the scripted latency and faults."""

    def __init__(self, app: ASGIApp, state: Sandbox) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        endpoint = endpoint_of(method, path)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        entry = LoggedRequest(
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            endpoint=endpoint,
            headers={name: headers[name] for name in LOGGED_HEADERS if name in headers},
            time=time.time(),
            request_id="req-" + secrets.token_hex(8),
        )
        if "authorization" in headers:
            entry.headers["authorization"] = headers["authorization"].partition(" ")[0] + " [redacted]"
        if endpoint in BODY_LOGGED:
            raw = await _read_body(receive)
            entry.body = _logged_body(raw)
            receive = _replaying(raw, receive)
        self.state.record(entry)
        scope["sandbox.log_entry"] = entry

        delay = self.state.take_latency(endpoint, method)
        if delay > 0:
            await anyio.sleep(delay)
        fault = self.state.take_fault(endpoint, method)
        if fault is not None:
            entry.fault = fault.id
            logger.info("sandbox: fault %s on %s %s", fault.to_json(), method, path)

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", entry.request_id)
            await send(message)

        if fault is not None and fault.kind == "drop" and fault.when == "before":
            entry.dropped = "before"
            await _close_without_answer(send)
        if fault is not None and fault.kind == "status":
            await self._answer_status(fault, endpoint, scope, receive, send_tagged)
            return
        if fault is not None and fault.kind == "drop":
            await self._answer_then_drop(entry, scope, receive, send)
            return
        await self.app(scope, receive, send_tagged)

    async def _answer_status(self, fault: Fault, endpoint: str, scope: Scope, receive: Receive, send: Send) -> None:
        await _read_body(receive)  # drain: a client still uploading would otherwise see a broken pipe
        status = fault.status or 500
        if fault.body is not None:
            body = fault.body
        elif endpoint.startswith("files/"):
            body = files_error(status)
        else:
            body = documented_api_error(
                status,
                endpoint=endpoint,
                retry_after=fault.retry_after,
                default_model=self.state.catalog.default.id,
            )
        headers = {"retry-after": fault.retry_after} if fault.retry_after else None
        await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)

    async def _answer_then_drop(self, entry: LoggedRequest, scope: Scope, receive: Receive, send: Send) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        entry.dropped = "after"
        start = next(m for m in messages if m["type"] == "http.response.start")
        entry.status = start["status"]
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        # Declare at least one byte more than is sent, so that even an empty answer arrives incomplete.
        MutableHeaders(scope=start)["content-length"] = str(max(len(body), 1))
        await send(start)
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise DroppedConnection("connection dropped after processing (scripted)")


# -- the API ------------------------------------------------------------------------------------------


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _api_error(status: int, message: str, **fields: Any) -> JSONResponse:
    return JSONResponse(api_error(status, message, **fields), status_code=status)


def _files_error(code: int, status: int, message: str | None = None) -> JSONResponse:
    return JSONResponse(files_error(code, message), status_code=status)


async def _drain(request: Request) -> None:
    async for _ in request.stream():
        pass


def _as_int(text: str | None, default: int) -> int | None:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        return None


class SandboxAPI:
    """Route handlers over one Sandbox state."""

    def __init__(self, state: Sandbox) -> None:
        self.state = state

    # helpers

    def base_url(self, request: Request) -> str:
        return (self.state.config.public_url or str(request.base_url)).rstrip("/")

    def auth_problem(self, request: Request) -> str | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return "Missing API key: send the header Authorization: Bearer <EVOLINK_API_KEY>."
        expected = self.state.config.api_key
        if expected is not None and not secrets.compare_digest(key.encode(), expected.encode()):
            return "Invalid API key."
        return None

    @staticmethod
    def account(request: Request) -> str:
        """Whose a request is: each key is its own account (its tasks, files, idempotency keys), known by a digest
        of the key, not the key itself."""
        key = request.headers.get("authorization", "").partition(" ")[2].strip()
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def api_denied(self, request: Request) -> Response | None:
        problem = self.auth_problem(request)
        return None if problem is None else _api_error(401, problem)

    async def files_denied(self, request: Request) -> Response | None:
        problem = self.auth_problem(request)
        if problem is None:
            return None
        await _drain(request)
        return _files_error(401, 401, problem)

    @staticmethod
    async def json_object(request: Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def entry(self, request: Request) -> LoggedRequest | None:
        entry = request.scope.get("sandbox.log_entry")
        return entry if isinstance(entry, LoggedRequest) else None

    # generation API

    async def create_generation(self, request: Request) -> Response:
        if denied := self.api_denied(request):
            return denied
        body = await self.json_object(request)
        if body is None:
            return _api_error(400, "The request body must be a JSON object.")
        name = body.get("model")
        if not isinstance(name, str) or not name.strip():
            return _api_error(400, "model is required.", param="model")
        catalog = self.state.catalog
        spec = catalog.get(name)
        if spec is None:
            near = [found for alias in catalog.suggest(name, limit=1) if (found := catalog.get(alias))]
            fallback = (near[0] if near else catalog.default).id
            return _api_error(404, f"Model {name!r} not found.", param="model", suggestion=fallback)
        req = request_from_wire(spec, body)
        if isinstance(req, Problem):
            return _api_error(400, req.message, param=req.param)
        problems = errors_only(validate_request(spec, req, allow_local_files=False))
        if problems:
            message = problems[0].message
            if len(problems) > 1:
                message += " Also: " + " ".join(p.message for p in problems[1:])
            return _api_error(400, message, param=problems[0].param.removeprefix("extra."))
        # A request sent again under the same Idempotency-Key gets the task the first created: nothing new is made
        # or billed. (Evolink's own client sends the header; its docs do not promise it is honoured.)
        key, account = request.headers.get("idempotency-key"), self.account(request)
        task = self.state.get_task(self.state.idempotency_keys.get((account, key), "")) if key else None
        if task is not None:
            logger.info("sandbox: replayed %s (Idempotency-Key seen before: nothing new made or billed)", task.id)
        else:
            try:
                task = self.state.create_task(spec, req, self.base_url(request), body, account)
            except InsufficientBalance as exc:
                return _api_error(402, str(exc), suggestion=ERROR_EXTRAS[402]["fallback_suggestion"])
            if key:
                self.state.idempotency_keys[account, key] = task.id
            logger.info("sandbox: created %s (%s, %dx%d, n=%d)", task.id, spec.id, task.width, task.height, task.n)
        if entry := self.entry(request):
            entry.task_id = task.id
        return _json(task.to_wire(self.state.clock()))

    async def get_credits(self, request: Request) -> Response:
        if denied := self.api_denied(request):
            return denied
        return _json(self.state.credits_json())

    def live_task(self, task_id: str) -> SandboxTask | None:
        task = self.state.get_task(task_id)
        return None if task is None or task.is_gone(self.state.clock()) else task

    async def get_task(self, request: Request) -> Response:
        if denied := self.api_denied(request):
            return denied
        task_id = request.path_params["task_id"]
        if not TASK_ID.match(task_id):
            return _api_error(400, f"Malformed task id {task_id[:100]!r}.", param="task_id")
        task = self.live_task(task_id)
        if task is None or task.account != self.account(request):
            return _api_error(404, f"Task {task_id} not found: unknown or expired.", param="task_id")
        return _json(task.to_wire(self.state.clock()))

    # results (like a CDN link: no auth)

    def completed_result(self, task_id: str, file_name: str) -> tuple[SandboxTask, int] | None:
        task = self.live_task(task_id)
        index_text, _, extension = file_name.partition(".")
        if task is None or not task.is_finished(self.state.clock()) or task.outcome != "completed":
            return None
        if not index_text.isdigit() or int(index_text) >= task.n or extension != task.extension:
            return None
        return task, int(index_text)

    async def result_bytes(self, task: SandboxTask, index: int) -> bytes:
        caption = f"{task.model} | {task.width}x{task.height} | {index + 1}/{task.n}"
        inputs = (strip_markers(task.prompt), task.width, task.height, task.image_format, caption)
        # Keyed by what is drawn, not by task: the same picture is rendered once (a CDN serves stored files;
        # the simulator should not spend the CPU of the server it stands next to).
        return await anyio.to_thread.run_sync(self.state.images.get_or_render, inputs, partial(render_image, *inputs))

    async def get_result(self, request: Request) -> Response:
        found = self.completed_result(request.path_params["task_id"], request.path_params["file_name"])
        if found is None:
            return _api_error(404, "Result not found or expired.")
        task, index = found
        data = await self.result_bytes(task, index)
        return Response(data, media_type=task.mime_type, headers={"cache-control": "public, max-age=86400"})

    # files API

    async def store(
        self,
        source: IO[bytes],
        *,
        file_name: str | None,
        original_name: str | None,
        upload_path: str | None,
        request: Request,
    ) -> Response:
        files = self.state.files
        try:
            files.check_room(upload_path, file_name, self.account(request))
            incoming, size, mime = await anyio.to_thread.run_sync(files.receive, source)
            stored = files.commit(
                incoming,
                size,
                mime,
                file_name=file_name,
                original_name=original_name,
                upload_path=upload_path,
                account=self.account(request),
            )
        except UploadRejected as rejected:
            return _files_error(rejected.code, rejected.status, rejected.message)
        if entry := self.entry(request):
            entry.file_id = stored.file_id
        return _json(files_ok(stored.to_wire(self.base_url(request))))

    def too_large(self, request: Request, slack: float) -> bool:
        length = _as_int(request.headers.get("content-length"), 0) or 0
        return length > self.state.config.max_file_bytes * slack + MULTIPART_SLACK

    def file_too_large(self) -> Response:
        return _files_error(
            40001, 413, f"File too large: at most {self.state.config.max_file_bytes // (1024 * 1024)} MB."
        )

    async def upload_base64(self, request: Request) -> Response:
        if denied := await self.files_denied(request):
            return denied
        if self.too_large(request, 4 / 3):
            await _drain(request)
            return self.file_too_large()
        body = await self.json_object(request)
        data = body.get("base64_data") if body else None
        if body is None or not isinstance(data, str) or not data.strip():
            return _files_error(400, 400, "base64_data is required: raw base64 or a data URL.")
        if data.startswith("data:"):
            header, _, data = data.partition(",")
            if not header.endswith(";base64"):
                return _files_error(400, 400, "base64_data: only base64 data URLs are accepted.")
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            return _files_error(400, 400, "base64_data is not valid base64.")
        if len(raw) > self.state.config.max_file_bytes:
            return self.file_too_large()
        file_name, upload_path = body.get("file_name"), body.get("upload_path")
        return await self.store(
            io.BytesIO(raw),
            file_name=_str_or_none(file_name),
            original_name=_str_or_none(file_name),
            upload_path=_str_or_none(upload_path),
            request=request,
        )

    async def upload_stream(self, request: Request) -> Response:
        if denied := await self.files_denied(request):
            return denied
        if self.too_large(request, 1):
            await _drain(request)
            return self.file_too_large()
        try:
            form = await request.form(max_files=1, max_fields=20)
        except (HTTPException, MultiPartException) as exc:
            detail = exc.detail if isinstance(exc, HTTPException) else exc.message
            return _files_error(400, 400, f"Malformed multipart body: {detail}")
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return _files_error(400, 400, "The multipart part `file` is required.")
            file_name = _str_or_none(form.get("file_name")) or upload.filename
            return await self.store(
                upload.file,
                file_name=file_name,
                original_name=upload.filename,
                upload_path=_str_or_none(form.get("upload_path")),
                request=request,
            )
        finally:
            await form.close()

    async def upload_url(self, request: Request) -> Response:
        if denied := await self.files_denied(request):
            return denied
        body = await self.json_object(request)
        url = body.get("file_url") if body else None
        if body is None or not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            return _files_error(400, 400, "file_url is required: a public http(s) URL.")
        own = await self.own_resource(request, url)
        if own is None:
            # The sandbox never goes out to the network: only its own /files and /results URLs resolve.
            return _files_error(40004, 400, f"URL download failed: {url[:200]}")
        source, url_name = own
        file_name = _str_or_none(body.get("file_name"))
        try:
            return await self.store(
                source,
                file_name=file_name or url_name,
                original_name=url_name,
                upload_path=_str_or_none(body.get("upload_path")),
                request=request,
            )
        finally:
            source.close()

    async def own_resource(self, request: Request, url: str) -> tuple[IO[bytes], str] | None:
        parts = urlsplit(url)
        ours = {_origin(str(request.base_url))}
        if self.state.config.public_url:
            ours.add(_origin(self.state.config.public_url))
        if _origin(url) not in ours:
            return None
        segments = [unquote(s) for s in parts.path.split("/")]
        if len(segments) == 4 and segments[1] == "files":
            stored = self.state.files.get(segments[2])
            if stored is None or stored.file_name != segments[3]:
                return None
            return stored.path.open("rb"), stored.file_name
        if len(segments) == 4 and segments[1] == "results":
            found = self.completed_result(segments[2], segments[3])
            if found is None:
                return None
            return io.BytesIO(await self.result_bytes(*found)), segments[3]
        return None

    async def list_files(self, request: Request) -> Response:
        if denied := await self.files_denied(request):
            return denied
        page = _as_int(request.query_params.get("page"), 1)
        size = _as_int(request.query_params.get("pageSize"), 20)
        if page is None or size is None or page < 1 or not 1 <= size <= 100:
            return _files_error(400, 400, "page must be >= 1 and pageSize 1-100.")
        files = self.state.files.listing(self.account(request))
        base = self.base_url(request)
        chosen = files[(page - 1) * size : page * size]
        return _json(
            files_ok(
                {
                    "total": len(files),
                    "page": page,
                    "pageSize": size,
                    "files": [f.to_listing(base) for f in chosen],
                }
            )
        )

    async def quota(self, request: Request) -> Response:
        if denied := await self.files_denied(request):
            return denied
        used, most = self.state.files.used_by(self.account(request)), self.state.config.max_files
        return _json(
            files_ok(
                {
                    "user_group": self.state.config.user_group,
                    "used_files": used,
                    "max_files": most,
                    "remain_files": max(0, most - used),
                }
            )
        )

    async def delete_file(self, request: Request) -> Response:
        if denied := await self.files_denied(request):
            return denied
        file_id = request.path_params["file_id"]
        if not self.state.files.delete(file_id, self.account(request)):
            return _files_error(404, 404, f"File {file_id[:100]} not found.")
        return _json(files_ok({"file_id": file_id, "deleted": True}))

    async def download_file(self, request: Request) -> Response:
        stored = self.state.files.get(request.path_params["file_id"])
        if stored is None or stored.file_name != request.path_params["file_name"]:
            return _files_error(404, 404, "File not found or expired.")
        attachment = stored.file_name if request.query_params.get("download") else None
        return FileResponse(stored.path, media_type=stored.mime_type, filename=attachment)

    # test controls (no auth: tests in another process script the sandbox through these)

    async def control_health(self, request: Request) -> Response:
        config = self.state.config
        return _json({"ok": True, "task_seconds": config.task_seconds, "api_key_required": config.api_key is not None})

    async def control_reset(self, request: Request) -> Response:
        self.state.reset()
        return _json({"ok": True})

    async def control_config(self, request: Request) -> Response:
        body = await self.json_object(request)
        try:
            config = self.state.configure(**(body or {}))
        except (TypeError, ValueError) as exc:
            return _api_error(400, f"Bad sandbox config: {exc}")
        return _json({"ok": True, "task_seconds": config.task_seconds, "max_files": config.max_files})

    async def control_requests(self, request: Request) -> Response:
        entries = self.state.requests(request.query_params.get("endpoint"), request.query_params.get("method"))
        return _json({"requests": [e.to_json() for e in entries]})

    async def control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.clear_faults()
        elif request.method == "POST":
            body = await self.json_object(request)
            if body is None:
                return _api_error(400, "Expected a JSON object.")
            try:
                made = self.add_fault(body)
            except (KeyError, TypeError, ValueError) as exc:
                return _api_error(400, f"Bad fault: {exc}")
            return _json({"fault": made})
        return _json(
            {
                "faults": [f.to_json() for f in self.state.faults],
                "latencies": [latency.to_json() for latency in self.state.latencies],
            }
        )

    def add_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        kind, endpoint = body.get("kind", "status"), body["endpoint"]
        method = body.get("method")
        if kind == "status":
            return self.state.fail_next(
                endpoint,
                int(body["status"]),
                count=int(body.get("count", 1)),
                method=method,
                retry_after=body.get("retry_after"),
                body=body.get("body"),
            ).to_json()
        if kind == "drop":
            return self.state.drop_next(
                endpoint, count=int(body.get("count", 1)), when=body.get("when", "before"), method=method
            ).to_json()
        if kind == "latency":
            count = body.get("count")
            return self.state.add_latency(
                endpoint, float(body["ms"]), method=method, count=None if count is None else int(count)
            ).to_json()
        raise ValueError(f"kind must be status, drop or latency; got {kind!r}")

    async def control_tasks(self, request: Request) -> Response:
        now = self.state.clock()
        return _json({"tasks": [t.to_wire(now) | {"expired": t.is_gone(now)} for t in self.state.tasks.values()]})

    async def control_expire_task(self, request: Request) -> Response:
        if not self.state.expire(request.path_params["task_id"]):
            return _api_error(404, "No such task.", param="task_id")
        return _json({"ok": True})

    async def control_expire_file(self, request: Request) -> Response:
        if not self.state.files.expire(request.path_params["file_id"]):
            return _files_error(404, 404, "No such file.")
        return _json({"ok": True})


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _origin(url: str) -> tuple[str, int | None]:
    """(host, port) with every loopback spelling made equal: the sandbox is the same on each."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return ("", None)
    host = (parts.hostname or "").lower()
    return ("127.0.0.1" if host in LOOPBACK_NAMES else host, port)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if request.url.path.startswith("/api/v1/files"):
        return _files_error(status, status)
    return _api_error(status, {404: "Not found.", 405: "Method not allowed."}.get(status, f"HTTP {status}."))


def create_app(state: Sandbox | None = None) -> ASGIApp:
    """The sandbox as an ASGI app (its state is at `app.state.sandbox` of the inner Starlette app)."""
    state = state if state is not None else Sandbox()
    api = SandboxAPI(state)
    Handler = Callable[[Request], Awaitable[Response]]
    routes: list[tuple[str, Handler, list[str]]] = [
        ("/v1/images/generations", api.create_generation, ["POST"]),
        ("/v1/tasks/{task_id}", api.get_task, ["GET"]),
        ("/v1/credits", api.get_credits, ["GET"]),
        ("/api/v1/files/upload/base64", api.upload_base64, ["POST"]),
        ("/api/v1/files/upload/stream", api.upload_stream, ["POST"]),
        ("/api/v1/files/upload/url", api.upload_url, ["POST"]),
        ("/api/v1/files/list", api.list_files, ["GET"]),
        ("/api/v1/files/quota", api.quota, ["GET"]),
        ("/api/v1/files/{file_id}", api.delete_file, ["DELETE"]),
        ("/results/{task_id}/{file_name}", api.get_result, ["GET"]),
        ("/files/{file_id}/{file_name}", api.download_file, ["GET"]),
        ("/_sandbox/health", api.control_health, ["GET"]),
        ("/_sandbox/reset", api.control_reset, ["POST"]),
        ("/_sandbox/config", api.control_config, ["POST"]),
        ("/_sandbox/requests", api.control_requests, ["GET"]),
        ("/_sandbox/faults", api.control_faults, ["GET", "POST", "DELETE"]),
        ("/_sandbox/tasks", api.control_tasks, ["GET"]),
        ("/_sandbox/tasks/{task_id}/expire", api.control_expire_task, ["POST"]),
        ("/_sandbox/files/{file_id}/expire", api.control_expire_file, ["POST"]),
    ]
    app = Starlette(
        routes=[Route(path, handler, methods=methods) for path, handler, methods in routes],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox = state
    return FaultsAndLog(app, state)


__all__ = ["DroppedConnection", "FaultsAndLog", "SandboxAPI", "create_app"]
