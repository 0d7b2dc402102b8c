"""The HTTP server under abuse a loopback attacker can try: slow or half-sent requests, piles of sessions,
Host tricks. Each server here is `evolink-mcp serve` as a subprocess with small limits."""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx2
import pytest
from transport_support import MCP_TOKEN, HttpServer, serving

import process_support
from process_support import MCP_HEADERS

INITIALIZE = json.dumps(process_support.INITIALIZE).encode()
pytestmark = pytest.mark.slow  # a server process per test: .ci/run's slow stage

READ_SECONDS = "1"
BOUND = 20.0  # seconds any cut-off or recovery below may take, many times what it should


@contextmanager
def http_server(
    root: Path, *, host: str = "127.0.0.1", token: str | None = MCP_TOKEN, max_files: int | None = None, **env: str
) -> Iterator[HttpServer]:
    settings = {"EVOLINK_MCP_READ_SECONDS": READ_SECONDS, **env}
    if token:
        settings["EVOLINK_MCP_TOKEN"] = token

    def limit_files() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    with serving(root, "--sandbox", host=host, preexec_fn=limit_files, **settings) as server:
        yield server


def connect(server: HttpServer, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    sock.sendall(first_bytes)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes the connection (True) or BOUND seconds pass in silence (False)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def initialize(server: HttpServer, **headers: str) -> httpx2.Response:
    auth = server.auth if server.token else {}
    return httpx2.post(
        f"{server.base_url}/mcp", headers={**MCP_HEADERS, **auth, **headers}, content=INITIALIZE, timeout=BOUND
    )


def test_half_sent_headers_are_cut_off_and_do_not_stop_healthz_answering(tmp_path: Path) -> None:
    with http_server(tmp_path, max_files=96) as server, ExitStack() as stack:
        attackers = [
            stack.enter_context(connect(server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "))
            for _ in range(150)
        ]

        assert closed_by_server(attackers[0])
        deadline = time.monotonic() + BOUND
        while True:  # the server accepts the backlog as it closes the attackers' connections
            try:
                answer = httpx2.get(f"{server.base_url}/healthz", timeout=2.0)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, server.log_text()[-2000:]
        assert answer.status_code == 200


def test_a_slow_authenticated_body_is_cut_off_after_the_read_timeout(tmp_path: Path) -> None:
    with http_server(tmp_path) as server:
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {len(INITIALIZE)}\r\n\r\n"
        ).encode()
        started = time.monotonic()
        with connect(server, head + INITIALIZE[:10]) as slow:
            assert closed_by_server(slow)
        assert time.monotonic() - started < BOUND


def test_sessions_beyond_the_cap_get_503_and_idle_ones_expire(tmp_path: Path) -> None:
    with http_server(tmp_path, EVOLINK_MCP_MAX_SESSIONS="2", EVOLINK_MCP_SESSION_IDLE_SECONDS="1") as server:
        opened = [initialize(server) for _ in range(2)]
        assert [r.status_code for r in opened] == [200, 200]
        assert all(r.headers.get("mcp-session-id") for r in opened)
        assert initialize(server).status_code == 503

        deadline = time.monotonic() + BOUND
        while (answer := initialize(server)).status_code == 503:  # room frees up once the idle ones expire
            assert time.monotonic() < deadline, "idle sessions never expired"
        assert answer.status_code == 200
        session = {"Mcp-Session-Id": opened[0].headers["mcp-session-id"]}
        ping = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        expired = httpx2.post(
            f"{server.base_url}/mcp", headers={**MCP_HEADERS, **server.auth, **session}, content=ping, timeout=BOUND
        )
        assert expired.status_code == 404


def test_a_server_on_127_0_0_2_accepts_its_own_address(tmp_path: Path) -> None:
    with http_server(tmp_path, host="127.0.0.2") as server:
        assert initialize(server).status_code == 200
        assert httpx2.get(f"{server.base_url}/healthz", timeout=BOUND).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    with http_server(tmp_path_factory.mktemp("hardening")) as running:
        yield running


def test_host_and_origin_match_whatever_their_case(server: HttpServer) -> None:
    answer = initialize(server, Host=f"LocalHost:{server.port}", Origin=f"HTTP://LOCALHOST:{server.port}")

    assert answer.status_code == 200


def test_healthz_refuses_a_foreign_host_too(server: HttpServer) -> None:
    answer = httpx2.get(f"{server.base_url}/healthz", headers={"Host": "evil.example"}, timeout=BOUND)

    assert answer.status_code == 421


def test_serving_loopback_without_a_token_says_anyone_on_this_machine_can_call_it(tmp_path: Path) -> None:
    with http_server(tmp_path, token=None) as server:
        assert initialize(server).status_code == 200
        log = server.log_text()
    assert log.count("anyone on this machine") == 1, log


def test_a_call_answered_after_the_read_timeout_is_not_cut_off(tmp_path: Path) -> None:
    """The read timeout bounds the arrival of a request, not the time its answer takes."""
    with http_server(tmp_path, EVOLINK_SANDBOX_TASK_SECONDS="2.5") as server:
        session = {"Mcp-Session-Id": initialize(server).headers["mcp-session-id"]}
        headers = {**MCP_HEADERS, **server.auth, **session}
        with httpx2.Client(base_url=server.base_url, headers=headers, timeout=BOUND) as client:
            client.post("/mcp", content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            call = {"name": "generate_image", "arguments": {"prompt": "a red fox", "wait_seconds": 10}}
            started = time.monotonic()
            answer = client.post(
                "/mcp", content=json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
            )
            took = time.monotonic() - started

    assert answer.status_code == 200
    assert '"isError":false' in answer.text.replace(" ", ""), answer.text[-2000:]
    assert took > float(READ_SECONDS)
