"""What the benchmarks share: result rows, statistics, child environments, processes, memory readings."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx2

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PYTHON = sys.executable
START_TIMEOUT = 30.0
PROTOCOL = "2025-11-25"  # the initialize handshake desktop clients use today


@dataclass
class Row:
    """One line of the results table: a figure, its reference measured in the same run, and its target."""

    figure: str
    ours: str
    reference: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None  # None: informational, no target
    note: str = ""

    @property
    def verdict(self) -> str:
        return "-" if self.met is None else ("yes" if self.met else "NO")

    def informational(self) -> Row:
        """This row with no target: shown next to a figure that has one."""
        return replace(self, target="-", met=None)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mib(num_bytes: float) -> str:
    return f"{num_bytes / 1048576:.1f} MiB"


def ratio(ours: float, reference: float) -> str:
    if not reference:
        return "-"
    value = ours / reference
    return f"{value:.2f}x" if abs(value) >= 0.1 else f"{value:.3f}x"


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def evolink_argv(*args: str) -> list[str]:
    """The installed console script next to this interpreter (what client configs launch)."""
    script = shutil.which("evolink-mcp", path=str(Path(PYTHON).parent))
    return [script, *args] if script else [PYTHON, "-m", "evolink_mcp", *args]


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without the developer's EVOLINK_*/XDG_* settings; state and images under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "XDG_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        EVOLINK_STATE_DIR=str(home / "state"),
        EVOLINK_OUTPUT_DIR=str(home / "out"),
        EVOLINK_LOG_LEVEL="WARNING",
        # Benchmarks send one prompt many times on purpose: each call must be a task of its own, not the
        # earlier identical call's answer (the duplicate guard is for an agent retrying by mistake).
        EVOLINK_DEDUPE_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it lingers; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{log.read_text(errors='replace')}")
        try:
            httpx2.get(url, timeout=2.0)
            return
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered at {url}:\n{log.read_text(errors='replace')}") from None
            time.sleep(0.05)


@dataclass
class SandboxProcess:
    base_url: str
    process: subprocess.Popen[bytes]

    def configure(self, **changes: object) -> None:
        """Change the running sandbox's config (POST /_sandbox/config), e.g. max_file_bytes."""
        answer = httpx2.post(f"{self.base_url}/_sandbox/config", json=changes, timeout=10)
        answer.raise_for_status()


@contextmanager
def sandbox_process(home: Path, task_seconds: float) -> Iterator[SandboxProcess]:
    """`evolink-mcp sandbox` in its own process, so its CPU and memory are not counted as the server's."""
    port = free_port()
    log = home / "sandbox.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*evolink_argv("sandbox", "--port", str(port), "--task-seconds", str(task_seconds))],
            env=child_env(home),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{base_url}/_sandbox/health", process, log)
        yield SandboxProcess(base_url, process)
    finally:
        stop(process)


def upstream_env(sandbox: SandboxProcess) -> dict[str, str]:
    """EVOLINK_* settings that point a server at a sandbox running in another process."""
    return {
        "EVOLINK_BASE_URL": sandbox.base_url,
        "EVOLINK_FILES_BASE_URL": sandbox.base_url,
        "EVOLINK_API_KEY": "sandbox-key",
    }


@contextmanager
def http_server(home: Path, sandbox: SandboxProcess, token: str, **env: str) -> Iterator[tuple[str, int]]:
    """`evolink-mcp serve --transport streamable-http` over `sandbox`, its state under `home` and its log next to
    it (`home`.log), once ready: (its /mcp URL, its pid)."""
    port = free_port()
    log = home.with_name(f"{home.name}.log")
    home.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            evolink_argv("serve", "--transport", "streamable-http", "--port", str(port), "--token", token),
            env=child_env(home, **upstream_env(sandbox), **env),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/readyz", process, log)
        yield f"http://127.0.0.1:{port}/mcp", process.pid
    finally:
        stop(process)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in KiB, from /proc."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, own processes); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _send(process: subprocess.Popen[bytes], message: dict[str, object]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def _answer(process: subprocess.Popen[bytes], request_id: int) -> dict[str, object]:
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the server closed stdout (exit {process.poll()})")
        message = json.loads(line)
        if message.get("id") == request_id:
            return dict(message)


class StdioSession:
    """A minimal MCP client over a child's stdin/stdout: newline-delimited JSON-RPC, blocking, nothing else.

    Timing through it measures the server, not a client library (the SDK's Python client validates every
    structured result against the tool's output schema, which costs more than many servers take to answer).
    """

    def __init__(self, argv: list[str], env: dict[str, str], stderr: object = subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)  # type: ignore[call-overload]
        self._ids = iter(range(1, 1 << 62))

    @property
    def pid(self) -> int:
        return self.process.pid

    def request(self, method: str, params: dict[str, object] | None = None) -> dict[str, object]:
        """Send a request and return its `result`; a JSON-RPC error raises."""
        request_id = next(self._ids)
        message: dict[str, object] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        _send(self.process, message)
        answer = _answer(self.process, request_id)
        if "result" not in answer:
            raise RuntimeError(f"{method} failed: {answer}")
        return dict(answer["result"])  # type: ignore[call-overload]

    def notify(self, method: str) -> None:
        _send(self.process, {"jsonrpc": "2.0", "method": method})

    def initialize(self) -> dict[str, object]:
        result = self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
        )
        self.notify("notifications/initialized")
        return result

    def call_tool(self, name: str, arguments: dict[str, object]) -> dict[str, object]:
        return self.request("tools/call", {"name": name, "arguments": arguments})

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        stop(self.process)

    def __enter__(self) -> StdioSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class StartUp:
    wall: float  # seconds from spawn to the tools/list answer
    cpu: float  # CPU seconds the server used by then (steadier than wall time on a busy machine)
    tools: dict[str, object]  # the tools/list result


def stdio_tools_list(argv: list[str], env: dict[str, str], stderr: object = subprocess.DEVNULL) -> StartUp:
    """Spawn `argv`, initialize, and time its first tools/list."""
    started = time.perf_counter()
    with StdioSession(argv, env, stderr) as session:
        session.initialize()
        tools = session.request("tools/list")
        wall = time.perf_counter() - started
        return StartUp(wall, cpu_seconds(session.pid), tools)


def time_to_tools_list(argv: list[str], env: dict[str, str], stderr: object = subprocess.DEVNULL) -> float:
    return stdio_tools_list(argv, env, stderr).wall


def compact_json_bytes(data: object) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
