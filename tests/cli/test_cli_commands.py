"""`evolink-mcp models`, `--version` and `sandbox`: what a user sees in a terminal."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx2
from cli_support import DEFAULT_MODEL, RUN_TIMEOUT, SECRET_KEY, run_cli

from evolink_mcp import __version__
from process_support import evolink_argv, free_port, stop


def test_models_prints_a_table_that_marks_the_default_model(env: dict[str, str]) -> None:
    finished = run_cli(env, "models")

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].split()[:2] == ["MODEL", "MODES"]
    marked = [line.split()[0] for line in lines[1:] if line.split()[1:2] == ["*"]]
    assert marked == [DEFAULT_MODEL]
    assert f"* = default ({DEFAULT_MODEL})" in finished.stdout


def test_models_json_parses_and_flags_exactly_the_default_model(env: dict[str, str]) -> None:
    finished = run_cli(env, "models", "--json")

    assert finished.returncode == 0, finished.stderr
    models = json.loads(finished.stdout)
    assert len(models) > 1
    assert [m["id"] for m in models if m["default"]] == [DEFAULT_MODEL]


def test_models_follows_evolink_default_model(env: dict[str, str]) -> None:
    env["EVOLINK_DEFAULT_MODEL"] = "gpt-image-2"

    finished = run_cli(env, "models", "--json")

    assert finished.returncode == 0, finished.stderr
    assert [m["id"] for m in json.loads(finished.stdout) if m["default"]] == ["gpt-image-2"]


def test_version_prints_the_package_version(env: dict[str, str]) -> None:
    finished = run_cli(env, "--version")

    assert finished.returncode == 0
    assert finished.stdout == f"evolink-mcp {__version__}\n"


def test_the_sandbox_command_serves_the_task_api_and_refuses_requests_without_a_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/tasks/xyz"
    log = tmp_path / "sandbox.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            evolink_argv("sandbox", "--port", str(port)),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()
            try:
                without_key = httpx2.get(url, timeout=2)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, f"nothing answered at {url}:\n{log.read_text()}"
                time.sleep(0.05)
        unknown_with_key = httpx2.get(
            url.replace("xyz", "task-unknown"), headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=2
        )
    finally:
        stop(process)

    assert without_key.status_code == 401
    assert "API key" in without_key.json()["error"]["message"]
    assert unknown_with_key.status_code == 404  # with a key, the same route answers
