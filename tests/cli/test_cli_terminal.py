"""The terminal as a person or a script uses it: --json and --open, `check`, Ctrl-C, `doctor`, `gallery`, pipes,
narrow terminals, bad options, help text, and messages that name commands rather than MCP tools."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import RUN_TIMEOUT, SECRET_KEY, run_cli

from evolink_mcp.sandbox import SandboxConfig, SandboxServer
from evolink_mcp.settings import Settings
from process_support import evolink_argv, free_port, stop

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("serve", "generate", "check", "models", "tasks", "doctor", "gallery", "sandbox")


@pytest.fixture
def upstream(env: dict[str, str], sandbox: SandboxServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The user's environment pointed at the test's sandbox, so tasks outlive one command."""
    env.update(
        EVOLINK_API_KEY=SECRET_KEY,
        EVOLINK_BASE_URL=sandbox.base_url,
        EVOLINK_FILES_BASE_URL=sandbox.base_url,
        EVOLINK_OUTPUT_DIR=str(tmp_path / "out"),
    )
    yield env


def wait_for_file(path: Path, seconds: float = 10.0) -> str:
    """A file another process writes, waited for (bounded): there is no event to wait on."""
    deadline = time.monotonic() + seconds
    while not path.is_file() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text()


@pytest.mark.slow
def test_generate_json_gives_a_script_the_task_paths_urls_credits_and_charged(
    tmp_path: Path, env: dict[str, str]
) -> None:
    finished = run_cli(env, "generate", "a red fox", "--sandbox", "--out", str(tmp_path / "out"), "--json")

    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["task_id"].startswith("task-")
    assert result["status"] == "completed"
    assert result["charged"] == "yes" and result["credits"] > 0
    (path,) = result["paths"]
    assert Path(path).parent == tmp_path / "out" and Path(path).is_file()
    assert len(result["urls"]) == 1 and result["urls"][0].startswith("http")


def test_generate_json_of_a_refused_request_says_nothing_was_charged(tmp_path: Path, env: dict[str, str]) -> None:
    finished = run_cli(env, "generate", "a fox", "--sandbox", "--size", "7:3", "--json")

    assert finished.returncode == 2
    result = json.loads(finished.stdout)
    assert result["charged"] == "no"
    assert result["error"]["category"] == "invalid_request" and "7:3" in result["error"]["message"]


@pytest.mark.slow
def test_generate_open_shows_the_saved_image_with_the_system_viewer(tmp_path: Path, env: dict[str, str]) -> None:
    bin_dir, opened = tmp_path / "bin", tmp_path / "opened.txt"
    bin_dir.mkdir()
    viewer = bin_dir / "xdg-open"
    viewer.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    viewer.chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"

    finished = run_cli(env, "generate", "a red fox", "--sandbox", "--out", str(tmp_path / "out"), "--open")

    assert finished.returncode == 0, finished.stderr
    assert wait_for_file(opened) == finished.stdout.strip()


@pytest.mark.slow
def test_check_waits_for_a_task_generate_left_running_saves_it_and_prints_its_path(
    tmp_path: Path, upstream: dict[str, str]
) -> None:
    left = run_cli(upstream, "generate", "a slow fox [sandbox:duration=1]", "--wait", "0")
    task_id = re.search(r"task (task-\S+) submitted", left.stderr)

    assert left.returncode == 4, left.stderr
    assert task_id is not None
    assert f"`evolink-mcp check {task_id[1]}` fetches it" in left.stderr
    assert "check_task" not in left.stderr

    checked = run_cli(upstream, "check", task_id[1], "--wait", "30")

    assert checked.returncode == 0, checked.stderr
    (path,) = checked.stdout.splitlines()
    assert Path(path).parent == tmp_path / "out" and Path(path).is_file()


def test_check_of_an_unknown_task_says_so_naming_cli_commands(upstream: dict[str, str]) -> None:
    finished = run_cli(upstream, "check", "task-that-does-not-exist")

    assert finished.returncode == 3
    assert "evolink-mcp tasks" in finished.stderr and "list_tasks" not in finished.stderr


@pytest.mark.slow
def test_ctrl_c_while_generate_waits_says_the_task_continues_and_check_fetches_it(
    tmp_path: Path, upstream: dict[str, str]
) -> None:
    process = subprocess.Popen(
        evolink_argv("generate", "a patient fox [sandbox:duration=4]"),
        env=upstream,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # "task X submitted (...)": the wait has begun
        task_id = re.search(r"task (task-\S+) submitted", first)
        assert task_id is not None, first
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(process)  # type: ignore[arg-type]  # Popen[str]: the same stop

    assert process.returncode == 130
    assert f"task {task_id[1]} continues; `evolink-mcp check {task_id[1]}` fetches it." in err
    assert "Traceback" not in err and out == ""
    checked = run_cli(upstream, "check", task_id[1], "--wait", "30")
    assert checked.returncode == 0, checked.stderr
    assert Path(checked.stdout.strip()).is_file()


def test_doctor_shows_each_setting_and_its_source_checks_the_setup_and_never_the_key(
    tmp_path: Path, upstream: dict[str, str]
) -> None:
    finished = run_cli(upstream, "doctor", "--default-model", "gpt-image-2")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = finished.stdout
    assert SECRET_KEY not in report + finished.stderr
    assert "EVOLINK_API_KEY = set (not shown)  [env EVOLINK_API_KEY]" in report
    assert f"EVOLINK_OUTPUT_DIR = {tmp_path / 'out'}  [env EVOLINK_OUTPUT_DIR]" in report
    assert "EVOLINK_DEFAULT_MODEL = gpt-image-2  [flag --default-model]" in report
    assert "EVOLINK_WAIT_SECONDS = 45.0  [default]" in report
    assert "reachable, key accepted" in report
    assert f"output folder {tmp_path / 'out'}: writable" in report
    assert "journal " in report and ": readable" in report
    assert '"mcpServers"' in report and "claude mcp add evolink" in report and '"servers"' in report


def test_doctor_fails_on_an_unreachable_api_and_a_missing_key(env: dict[str, str]) -> None:
    env["EVOLINK_BASE_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    finished = run_cli(env, "doctor")

    assert finished.returncode == 1
    assert "FAIL API key: not set" in finished.stdout
    assert "FAIL API http://127.0.0.1" in finished.stdout
    assert "Traceback" not in finished.stderr


@pytest.mark.slow
def test_gallery_writes_an_html_page_of_saved_images_with_every_upstream_text_escaped(
    tmp_path: Path, upstream: dict[str, str]
) -> None:
    made = run_cli(upstream, "generate", 'a fox <script>alert("x")</script> & "friends"')
    assert made.returncode == 0, made.stderr

    finished = run_cli(upstream, "gallery")

    assert finished.returncode == 0, finished.stderr
    page = Path(finished.stdout.strip())
    html = page.read_text()
    assert page.parent == tmp_path / "out"
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;friends&quot;" in html
    assert f'src="{Path(made.stdout.strip()).as_uri()}"' in html


def test_models_json_into_a_pipe_that_closes_early_ends_quietly(env: dict[str, str]) -> None:
    finished = subprocess.run(
        ["sh", "-c", '"$0" "$@" | head -c 10', *evolink_argv("models", "--json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )

    assert finished.stdout == "[\n  {\n    "  # the first 10 characters
    assert finished.stderr == ""


def test_models_fits_a_narrow_terminal_keeping_model_ids_whole(env: dict[str, str]) -> None:
    env["COLUMNS"] = "80"

    finished = run_cli(env, "models")

    assert finished.returncode == 0
    lines = finished.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("gemini-3.1-flash-image-preview ") for line in lines)


def test_tasks_with_an_unknown_status_is_an_error_naming_the_statuses(env: dict[str, str]) -> None:
    finished = run_cli(env, "tasks", "--status", "bogus")

    assert finished.returncode == 2
    assert "bogus" in finished.stderr
    assert all(status in finished.stderr for status in ("pending", "processing", "completed", "failed"))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text_naming_its_default(env: dict[str, str], command: str) -> None:
    env["COLUMNS"] = "200"  # one option per line

    finished = run_cli(env, command, "--help")

    assert finished.returncode == 0
    options: list[str] = []  # each option's signature and help, its wrapped lines joined
    for line in finished.stdout.split("options:", 1)[1].splitlines():
        if line.startswith("  -"):
            options.append(line.strip())
        elif line.startswith("   ") and options:
            options[-1] += "  " + line.strip()
    options = [o for o in options if not o.startswith("-h, --help")]
    assert options
    for option in options:
        assert re.search(r"\S\s{2,}\S", option), f"{command}: no help text for {option!r}"
        assert "default" in option, f"{command}: no default named for {option!r}"


def test_an_unknown_model_names_the_cli_command_that_lists_models(env: dict[str, str]) -> None:
    finished = run_cli(env, "generate", "a fox", "--sandbox", "--model", "no-such-model")

    assert finished.returncode == 2
    assert "evolink-mcp models" in finished.stderr
    assert "list_models" not in finished.stderr


def test_the_sandbox_takes_the_same_time_everywhere() -> None:
    parser_help = subprocess.run(evolink_argv("sandbox", "--help"), capture_output=True, text=True, check=True)
    seconds = Settings().sandbox_task_seconds

    assert SandboxConfig().task_seconds == seconds
    assert f"(default: {seconds:g})" in parser_help.stdout
    assert f"default {seconds:g} s" in (REPO / "README.md").read_text()


def test_the_quick_start_output_folder_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "evolink-images/20261205-000000_task_1.png"], cwd=REPO, check=False
    )

    assert ignored.returncode == 0
