"""The studio as a person sees it: headless Chromium renders the view in a test host built on the official MCP Apps
bridge, wired to the real server over stdio with the sandbox upstream (tests/studio/host/host.mjs plays the
session: gallery, full size, variations, an edit with the image as reference, mask painting, comparison, live
status). Screenshots are kept in the test's tmp folder; EVOLINK_UPDATE_STUDIO_SCREENSHOT=1 copies the gallery's to
docs/studio.png for the README.

Skipped without node, tests/studio/host/node_modules (`npm ci --prefix tests/studio/host`) or /usr/bin/chromium
(Debian's `chromium`); failed instead when EVOLINK_REQUIRE_STUDIO=1 (.ci/run sets it).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image

from evolink_mcp.sandbox import SandboxConfig, SandboxServer
from process_support import clean_env, evolink_argv

pytestmark = pytest.mark.slow  # a browser session: .ci/run's studio stage, not the default run

HOST = Path(__file__).parent / "host"
CHROMIUM = Path("/usr/bin/chromium")
README_SCREENSHOT = Path(__file__).parents[2] / "docs" / "studio.png"
SECRET = "sk-studio-never-shown-5d1e8c2a"
SESSION_SECONDS = 240
LIGHTHOUSE = "A lighthouse on a cliff at dusk, watercolor"  # the image the session opens (host.mjs)


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (HOST / "node_modules").is_dir():
        return "the test host is not installed: npm ci --prefix tests/studio/host"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium"
    return None


@dataclass
class Session:
    report: dict[str, Any]
    sandbox: SandboxServer

    def app_calls(self, name: str) -> list[dict[str, Any]]:
        """The arguments of each tools/call the view sent the host, in order."""
        return [call["arguments"] for call in self.report["appCalls"] if call["name"] == name]

    def generations(self) -> list[dict[str, Any]]:
        """What reached the (simulated) Evolink API: each submission's body."""
        return [r.body for r in self.sandbox.state.requests("generations") if r.method == "POST"]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    missing = _missing()
    if missing:
        if os.environ.get("EVOLINK_REQUIRE_STUDIO") == "1":
            pytest.fail(f"EVOLINK_REQUIRE_STUDIO=1 but {missing}")
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("studio")
    # A second per task: long enough to see a task run, short enough for the whole session in seconds.
    with SandboxServer(SandboxConfig(task_seconds=1.0)) as sandbox:
        env = {
            **clean_env(root / "home"),
            "EVOLINK_API_KEY": SECRET,
            "EVOLINK_BASE_URL": sandbox.base_url,
            "EVOLINK_FILES_BASE_URL": sandbox.base_url,
            "EVOLINK_STATE_DIR": str(root / "state"),
            "EVOLINK_OUTPUT_DIR": str(root / "images"),
        }
        command, *args = evolink_argv()
        config = {
            "server": {"command": command, "args": args, "env": env, "cwd": str(root)},
            "out": str(root / "screenshots"),
            "secret": SECRET,
            "chromium": str(CHROMIUM),
        }
        (root / "host.json").write_text(json.dumps(config))
        played = subprocess.run(
            ["node", str(HOST / "host.mjs"), str(root / "host.json")],
            capture_output=True,
            text=True,
            timeout=SESSION_SECONDS,
            cwd=root,
        )
        report_file = root / "screenshots" / "report.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else {}
        assert played.returncode == 0 and report.get("ok"), (
            f"the studio session failed at {report.get('steps', ['start'])[-1]!r}: {report.get('error')}\n"
            f"screenshots in {root / 'screenshots'}\n{played.stderr[-4000:]}"
        )
        if os.environ.get("EVOLINK_UPDATE_STUDIO_SCREENSHOT") == "1":
            README_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(report["screenshots"]["gallery"], README_SCREENSHOT)
        yield Session(report, sandbox)


def test_the_gallery_shows_the_sandbox_images_the_model_made(session: Session) -> None:
    shot = Image.open(session.report["screenshots"]["gallery"])

    assert shot.width >= 1000 and shot.height >= 350
    assert len(shot.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 2000, "the gallery shows no images"
    assert session.report["resourceReads"] >= 4  # each image read through the host, never fetched
    assert session.report["fullSize"] == [1024, 1024]  # the full image, not a preview
    assert session.report["zoomLabel"] != "Fit"


def test_clicking_variations_sends_the_same_prompt_and_model_through_the_host(session: Session) -> None:
    variation = session.app_calls("generate_image")[0]

    assert variation["prompt"] == LIGHTHOUSE and variation["model"] == "gpt-image-2" and variation["size"] == "1:1"
    assert variation["client_request_id"].startswith("studio-")  # a click is a new task, never the deduped earlier one
    sent = [g for g in session.generations() if g["prompt"] == LIGHTHOUSE and g["model"] == "gpt-image-2"]
    assert len(sent) >= 2  # the model's own, then the variation (and the comparison's)


def test_editing_with_the_image_as_reference_sends_the_saved_image_through_the_host(session: Session) -> None:
    (edit,) = [c for c in session.app_calls("generate_image") if "image_urls" in c and "mask_url" not in c]
    (submitted,) = [g for g in session.generations() if g["prompt"] == edit["prompt"]]

    assert edit["image_urls"] == [session.report["lighthousePath"]] and edit["model"] == "gpt-image-2"
    assert edit["client_request_id"].startswith("studio-")
    assert submitted["model"] == edit["model"] and "mask_url" not in submitted
    (reference,) = submitted["image_urls"]  # the saved image, uploaded by the server from its path
    assert httpx2.get(reference, timeout=10).content == Path(edit["image_urls"][0]).read_bytes()


def test_painting_a_mask_uploads_it_as_a_png_and_edits_the_image_with_it(session: Session) -> None:
    (upload,) = session.app_calls("upload_file")
    edit = next(call for call in session.app_calls("generate_image") if "mask_url" in call)
    (submitted,) = [g for g in session.generations() if "mask_url" in g]

    assert upload["base64_data"].startswith("data:image/png;base64,")
    assert submitted["mask_url"] == edit["mask_url"] and submitted["prompt"] == edit["prompt"]
    assert len(submitted["image_urls"]) == 1  # the saved image, uploaded by the server from its path
    mask = Image.open(io.BytesIO(httpx2.get(edit["mask_url"], timeout=10).content))
    assert mask.format == "PNG" and mask.size == (1024, 1024)
    alpha = mask.getchannel("A").histogram()
    painted, kept = alpha[0], alpha[255]
    assert painted > 1000 and kept > painted, "the mask: transparent where painted, opaque elsewhere"


def test_compare_runs_the_prompt_on_each_model_within_the_cap(session: Session) -> None:
    compared = [call for call in session.app_calls("generate_image") if "max_credits" in call]

    assert len(compared) == session.report["comparePicked"] >= 2
    assert {call["prompt"] for call in compared} == {LIGHTHOUSE} and all(c["max_credits"] == 50 for c in compared)
    models = {call["model"] for call in compared}
    assert models <= {g["model"] for g in session.generations() if g["prompt"] == LIGHTHOUSE}
    assert Image.open(session.report["screenshots"]["studio-runs"]).height > 600


def test_a_result_still_running_shows_live_status_then_the_image(session: Session) -> None:
    assert session.report["liveFirstStatus"].startswith(("pending", "processing"))
    assert any(call["view"] == "live" and call["name"] == "check_task" for call in session.report["appCalls"])
    assert "completed" in session.report["liveFacts"]


def test_the_view_fetches_nothing_itself_logs_no_error_and_never_sees_the_key(session: Session) -> None:
    assert session.report["requests"] == []  # beyond its own document
    assert session.report["console"] == []  # a CSP violation or a script error would show here
    assert not session.report["secretInView"] and not session.report.get("secretToApp")
