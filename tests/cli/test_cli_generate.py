"""`evolink-mcp generate`: images saved, paths on stdout, errors and exit codes a script can rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import DEFAULT_MODEL, SECRET_KEY, run_cli
from PIL import Image

from evolink_mcp.sandbox import SandboxServer


@pytest.mark.slow
def test_generate_saves_a_16_9_png_with_its_sidecar_and_prints_only_the_path(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "images"

    finished = run_cli(env, "generate", "a red fox in the snow", "--sandbox", "--out", str(out), "--size", "16:9")

    assert finished.returncode == 0, finished.stderr
    printed = finished.stdout.splitlines()
    assert len(printed) == 1
    image = Path(printed[0])
    assert image.parent == out
    with Image.open(image) as png:
        assert png.format == "PNG"
        assert png.width / png.height == pytest.approx(16 / 9, rel=0.01)
    sidecar = json.loads(image.with_name(image.stem.removesuffix("_1") + ".json").read_text())
    assert sidecar["prompt"] == "a red fox in the snow"
    assert sidecar["model"] == DEFAULT_MODEL


def test_generate_with_an_invalid_size_exits_2_listing_the_allowed_sizes_and_creates_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "images"

    finished = run_cli(env, "generate", "a red fox", "--sandbox", "--out", str(out), "--size", "7:3")

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert "7:3" in finished.stderr
    assert "Allowed: auto, 1:1" in finished.stderr
    assert "16:9" in finished.stderr
    assert not out.exists()


@pytest.mark.parametrize("cap", ["0", "-1"])
def test_generate_with_a_cap_of_zero_or_less_exits_2_naming_the_option_and_creates_nothing(
    tmp_path: Path, env: dict[str, str], cap: str
) -> None:
    out = tmp_path / "images"

    finished = run_cli(env, "generate", "a red fox", "--sandbox", "--out", str(out), "--max-credits", cap)

    assert finished.returncode == 2 and finished.stdout == ""
    assert f"--max-credits must be above 0 (got {cap})" in finished.stderr
    assert not out.exists()


@pytest.mark.slow
def test_generate_of_a_task_that_fails_exits_1_with_the_reason_on_stderr(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "images"

    finished = run_cli(env, "generate", "a fox [sandbox:fail=content_policy_violation]", "--sandbox", "--out", str(out))

    assert finished.returncode == 1
    assert finished.stdout == ""
    assert "failed: content_policy_violation" in finished.stderr
    assert "next step: Rephrase the prompt" in finished.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_generate_with_a_real_key_never_prints_or_saves_the_key_even_at_debug_level(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxServer
) -> None:
    sandbox.state.configure(api_key=SECRET_KEY)  # success proves the key was sent
    env.update(
        EVOLINK_API_KEY=SECRET_KEY,
        EVOLINK_BASE_URL=sandbox.base_url,
        EVOLINK_FILES_BASE_URL=sandbox.base_url,
        EVOLINK_LOG_LEVEL="DEBUG",
    )
    out = tmp_path / "images"

    finished = run_cli(env, "generate", "a red fox", "--out", str(out))

    assert finished.returncode == 0, finished.stderr
    assert "DEBUG" in finished.stderr
    assert SECRET_KEY not in finished.stdout + finished.stderr
    for saved in out.iterdir():
        assert SECRET_KEY.encode() not in saved.read_bytes()


def test_a_rejected_key_exits_3_with_an_authentication_error_that_does_not_echo_the_key(
    tmp_path: Path, env: dict[str, str], sandbox: SandboxServer
) -> None:
    sandbox.state.configure(api_key="sk-test-the-one-the-server-expects")
    env.update(
        EVOLINK_API_KEY=SECRET_KEY,
        EVOLINK_BASE_URL=sandbox.base_url,
        EVOLINK_FILES_BASE_URL=sandbox.base_url,
        EVOLINK_LOG_LEVEL="DEBUG",
    )

    finished = run_cli(env, "generate", "a red fox", "--out", str(tmp_path / "images"))

    assert finished.returncode == 3
    assert "error (authentication)" in finished.stderr
    assert "EVOLINK_API_KEY" in finished.stderr
    assert SECRET_KEY not in finished.stdout + finished.stderr
