"""The official TypeScript MCP client and the MCP Inspector CLI, at the versions tests/clients/typescript pins,
against `evolink-mcp` subprocesses over a sandbox on loopback HTTP.

The TypeScript client validates every result that carries structuredContent against the tool's outputSchema,
errors included, and throws (McpError -32602) on a mismatch: these checks see what Claude Desktop, Claude Code,
VS Code and Cursor see. `pytest -rP tests/clients/test_typescript_client.py` shows each error text as the
clients printed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typescript_support import client_checks, describe, require_node_project, run_node

from evolink_mcp.catalog import load_catalog
from evolink_mcp.sandbox import SandboxConfig, SandboxServer
from evolink_mcp.settings import Settings
from evolink_mcp.tools import tool_specs
from process_support import child_env, clean_env, evolink_argv, free_port, stop, wait_until_answering

pytestmark = pytest.mark.slow

API_KEY = "sk-ts-client-5e1c8b2a9d7f4036"
MCP_TOKEN = "mcp-ts-client-token-81d4c7a2"
TRANSPORTS = ["stdio", "streamable-http"]
ERROR_CASES = {  # check name in client_checks.mjs -> the error category our text must lead with
    "error_invalid_size": "invalid_request",
    "error_unknown_task": "not_found",
    "error_failed_task": "task_failed",
    "error_missing_file": "invalid_request",
}
UNKNOWN_TASK = "task-unified-0000000000-nosuchtask"


@pytest.fixture(scope="module")
def upstream() -> Iterator[SandboxServer]:
    """The Evolink sandbox on loopback HTTP; prompt markers set each task's duration."""
    require_node_project()
    with SandboxServer(SandboxConfig(task_seconds=0.05)) as sandbox:
        yield sandbox


def server_env(root: Path, sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    """What a client config sets to run `evolink-mcp` against the sandbox, every folder in `root`."""
    return child_env(
        root / "home",
        EVOLINK_API_KEY=API_KEY,
        EVOLINK_BASE_URL=sandbox.base_url,
        EVOLINK_FILES_BASE_URL=sandbox.base_url,
        EVOLINK_OUTPUT_DIR=str(root / "out"),
        **extra,
    )


@dataclass
class ClientRun:
    transport: str
    checks: dict[str, Any]
    output_dir: Path
    upload_path: Path


@pytest.fixture(scope="module", params=TRANSPORTS)
def ts(request: pytest.FixtureRequest, upstream: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> ClientRun:
    """One run of client_checks.mjs over the transport, the server a subprocess with a folder of its own."""
    transport: str = request.param
    root = tmp_path_factory.mktemp(f"ts-{transport}")
    allowed = root / "allowed"
    allowed.mkdir()
    upload_path = allowed / "reference.png"
    Image.new("RGB", (64, 48), (30, 120, 200)).save(upload_path, format="PNG")
    upstream.state.reset()
    config: dict[str, Any] = {
        "transport": transport,
        "sandbox_url": upstream.base_url,
        "upload_path": str(upload_path),
        "missing_path": str(allowed / "missing.png"),
    }
    node_env = clean_env(root / "node-home")
    if transport == "stdio":
        command, *args = evolink_argv()
        config |= {"command": command, "args": args, "env": server_env(root, upstream)}
        checks = client_checks(config, node_env)
    else:
        port, log = free_port(), root / "server.log"
        env = server_env(root, upstream, EVOLINK_MCP_TOKEN=MCP_TOKEN, EVOLINK_ALLOWED_DIRS=str(allowed))
        argv = evolink_argv("serve", "--transport", "streamable-http", "--port", str(port))
        with log.open("wb") as log_file:
            process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        try:
            wait_until_answering(f"http://127.0.0.1:{port}/healthz", process, log, healthy=True)
            config |= {"url": f"http://127.0.0.1:{port}/mcp", "token": MCP_TOKEN}
            checks = client_checks(config, node_env)
        finally:
            stop(process)
    assert API_KEY not in json.dumps(checks), "the API key reached the client"
    return ClientRun(transport, checks, root / "out", upload_path)


def observed(run: ClientRun, check: str) -> Any:
    """What the client saw for `check`; fails with what it threw instead."""
    seen = run.checks[check]
    if isinstance(seen, dict) and "threw" in seen:
        pytest.fail(f"[{run.transport}] {check}: the TypeScript client threw: {seen['threw']}", pytrace=False)
    return seen


def test_the_typescript_client_lists_every_tool_with_its_output_schema(ts: ClientRun) -> None:
    names = {spec.name for spec in tool_specs(load_catalog(), Settings().wait_seconds)}
    listed = observed(ts, "list_tools")
    assert set(listed["names"]) == names
    assert set(listed["with_output_schema"]) == names


def test_generate_image_reports_progress_and_its_result_names_the_saved_file(ts: ClientRun) -> None:
    seen = observed(ts, "generate_image")

    assert not seen["isError"], seen["text"]
    progress = seen["progress"]
    assert progress, "no progress notification arrived"
    assert progress[0]["progress"] < 100 and progress[-1]["progress"] == progress[-1]["total"] == 100
    saved = Path(seen["structuredContent"]["images"][0]["path"])
    assert saved.parent == ts.output_dir and saved.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert str(saved) in seen["text"]


@pytest.mark.parametrize("check", list(ERROR_CASES))
def test_each_error_arrives_as_a_readable_error_result_not_a_thrown_error(ts: ClientRun, check: str) -> None:
    seen = observed(ts, check)
    text = seen["text"]
    print(f"[TypeScript SDK, {ts.transport}] {check}:\n{text}\n")

    assert seen["isError"], f"{check}: not an error result: {text}"
    assert text.startswith(f"Error ({ERROR_CASES[check]}): "), text
    assert "Next step: " in text, text
    assert seen["structuredContent"]["error"]["category"] == ERROR_CASES[check], seen["structuredContent"]
    if check == "error_invalid_size":
        assert "Charged: no" in text, text
    if check == "error_failed_task":
        assert "Charged: unknown" in text, text


def test_a_saved_images_resource_link_reads_back_as_its_png_bytes(ts: ClientRun) -> None:
    link = observed(ts, "generate_image")["links"][0]
    saved = Path(observed(ts, "generate_image")["structuredContent"]["images"][0]["path"])
    [content] = observed(ts, "read_resource")

    assert link["mimeType"] == content["mimeType"] == "image/png"
    assert content["uri"] == link["uri"]
    assert content["blob_sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()


def test_upload_file_of_a_local_path_succeeds(ts: ClientRun) -> None:
    seen = observed(ts, "upload_file")

    assert not seen["isError"], seen["text"]
    assert seen["structuredContent"]["file_name"] == ts.upload_path.name
    assert seen["structuredContent"]["file_size"] == ts.upload_path.stat().st_size
    assert seen["structuredContent"]["file_url"] in seen["text"]


def test_cancelling_with_an_abort_signal_ends_the_call_and_the_servers_polling_ends_with_the_saved_image(
    ts: ClientRun,
) -> None:
    seen = observed(ts, "cancel")

    assert "AbortError" in seen.get("rejected", ""), f"the aborted call was not rejected: {seen}"
    assert seen["rejected_after_ms"] < 1000
    # The server keeps following what was paid for (the call's cancellation hands the task to its background
    # follower): submitted once, downloaded once, and once it is saved no poll of the task follows.
    assert (seen["submissions"], seen["downloads"]) == (1, 1), seen
    assert seen["polls_after_quiet"] == seen["polls_by_save"], f"polling went on after the image was saved: {seen}"
    # A cancelled request is never answered with a result; over streamable HTTP the SDK ends the request's
    # stream with a "Request cancelled" error, which the client reports as a response it no longer awaits.
    unexpected = [e for e in ts.checks["client_errors"] if '"code":-32800' not in e]
    assert not unexpected, f"the server went on with the cancelled call: {unexpected}"
    assert observed(ts, "session_alive")["tools"] == len(observed(ts, "list_tools")["names"])


# -- the MCP Inspector CLI: a new server process for every command -------------------------------------------


@dataclass
class Inspector:
    root: Path
    sandbox: SandboxServer

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = server_env(self.root, self.sandbox)
        forwarded = [key for key in env if key.startswith("EVOLINK_") or key in ("HOME", "PYTHONPATH")]
        settings = [f"{key}={env[key]}" for key in forwarded]
        argv = [
            "inspector",
            "--cli",
            *[flag for setting in settings for flag in ("-e", setting)],
            *evolink_argv(),
            *args,
        ]
        return run_node(argv, clean_env(self.root / "inspector-home"), timeout=60)


@pytest.fixture(scope="module")
def inspector(upstream: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    return Inspector(tmp_path_factory.mktemp("inspector"), upstream)


@pytest.fixture(scope="module")
def inspector_image(inspector: Inspector) -> dict[str, Any]:
    """generate_image through the Inspector CLI: its printed result."""
    done = inspector("--method", "tools/call", "--tool-name", "generate_image", "--tool-arg", "prompt=a red fox")
    assert done.returncode == 0, describe(done)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_inspector_lints_our_tool_schemas_with_no_problem(inspector: Inspector) -> None:
    listed = inspector("--strict", "--method", "tools/list")

    assert listed.returncode == 0, describe(listed)  # no error
    assert "Warning:" not in listed.stderr + listed.stdout, describe(listed)  # nor a warning


def test_the_inspector_calls_generate_image_and_check_task(
    inspector: Inspector, inspector_image: dict[str, Any]
) -> None:
    task_id = inspector_image["structuredContent"]["task_id"]
    assert inspector_image["structuredContent"]["status"] == "completed"

    checked = inspector("--method", "tools/call", "--tool-name", "check_task", "--tool-arg", f"task_id={task_id}")

    assert checked.returncode == 0, describe(checked)
    assert json.loads(checked.stdout)["structuredContent"]["status"] == "completed"


def test_the_inspector_reads_a_saved_image_from_its_resource_link(
    inspector: Inspector, inspector_image: dict[str, Any]
) -> None:
    [link] = [block for block in inspector_image["content"] if block["type"] == "resource_link"]
    saved = Path(inspector_image["structuredContent"]["images"][0]["path"])

    read = inspector("--method", "resources/read", "--uri", link["uri"])

    assert read.returncode == 0, describe(read)
    [content] = json.loads(read.stdout)["contents"]
    assert content["mimeType"] == "image/png"
    assert base64.b64decode(content["blob"]) == saved.read_bytes()


def test_the_inspector_prints_our_error_text_for_an_unknown_task(inspector: Inspector) -> None:
    called = inspector("--method", "tools/call", "--tool-name", "check_task", "--tool-arg", f"task_id={UNKNOWN_TASK}")
    print(f"[MCP Inspector CLI] check_task of an unknown task:\n{called.stdout}{called.stderr}")

    # Exit 5 is the Inspector's "the tool returned isError": the result itself was accepted and printed.
    assert called.returncode == 5, describe(called)
    result = json.loads(called.stdout)
    assert result["isError"] is True
    assert result["content"][0]["text"].startswith("Error (not_found): "), result
    assert "tool_is_error" in called.stderr and "schema" not in called.stderr, called.stderr
