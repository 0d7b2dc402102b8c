"""Upload memory: peak RSS growth of the stdio server process while upload_file sends a large image.

The files API caps a file at 100 MB and upload_file refuses anything larger before sending, so the issue's
200 MB upload is measured three ways:
- upload_file of a ~100 MB image-headed file (just under the cap), through the stdio server;
- upload_file of a 200 MB file: the refusal path, through the same server;
- EvolinkClient.upload_file (the streaming code upload_file uses) sending 200 MB, in a child process, to a
  sandbox whose own cap is raised for the run (POST /_sandbox/config max_file_bytes).
Growth = peak RSS (VmHWM, reset just before the call) minus RSS before the call. The reference is the file's
size: what reading the file whole would cost at the very least.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from common import (
    PYTHON,
    Row,
    SandboxProcess,
    StdioSession,
    child_env,
    evolink_argv,
    memory_kib,
    mib,
    ratio,
    reset_peak_rss,
    sandbox_process,
    upstream_env,
)

MB = 1024 * 1024
TARGET = 32 * MB
UNDER_CAP = 100 * MB - 64 * 1024
OVER_CAP = 200 * MB
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"

CLIENT_UPLOAD = """
import anyio, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from common import memory_kib, reset_peak_rss
from evolink_mcp.evolink import EvolinkClient

async def main():
    async with EvolinkClient("sandbox-key", base_url=sys.argv[1], files_base_url=sys.argv[1]) as client:
        warm = Path(sys.argv[2] + ".warm")
        await client.upload_file(warm, mime_type="image/png")
        before = memory_kib(0)["VmRSS"]
        reset_peak_rss(0)
        uploaded = await client.upload_file(Path(sys.argv[2]), mime_type="image/png")
        print(json.dumps({"before": before, "peak": memory_kib(0)["VmHWM"], "size": uploaded.file_size}))

anyio.run(main)
""".replace("memory_kib(0)", "memory_kib(__import__('os').getpid())").replace(
    "reset_peak_rss(0)", "reset_peak_rss(__import__('os').getpid())"
)


def _image_file(path: Path, size: int) -> Path:
    """A file that sniffs as PNG: a PNG signature, then `size` bytes in total of incompressible filler."""
    block = os.urandom(MB)
    with path.open("wb") as handle:
        handle.write(PNG_HEAD)
        left = size - len(PNG_HEAD)
        while left > 0:
            handle.write(block[: min(left, MB)])
            left -= MB
    return path


def _growth_kib(session: StdioSession, arguments: dict[str, object]) -> tuple[int, dict[str, object]]:
    before = memory_kib(session.pid)["VmRSS"]
    if not reset_peak_rss(session.pid):
        raise RuntimeError("cannot reset the peak RSS (/proc/<pid>/clear_refs)")
    result = session.call_tool("upload_file", arguments)
    return memory_kib(session.pid)["VmHWM"] - before, result


def _client_streaming(sandbox: SandboxProcess, path: Path, home: Path) -> int:
    """Peak RSS growth (KiB) of EvolinkClient.upload_file sending `path`, in a fresh process."""
    import json

    from common import BENCH_DIR

    _image_file(Path(str(path) + ".warm"), MB)
    answer = subprocess.run(
        [PYTHON, "-c", CLIENT_UPLOAD, sandbox.base_url, str(path), str(BENCH_DIR)],
        env=child_env(home),
        capture_output=True,
        text=True,
        check=True,
    )
    numbers = json.loads(answer.stdout.strip().splitlines()[-1])
    if numbers["size"] != path.stat().st_size:
        raise RuntimeError(f"the sandbox stored {numbers['size']} bytes of {path.stat().st_size}")
    return int(numbers["peak"]) - int(numbers["before"])


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        home = Path(tmp)
        files = home / "files"
        files.mkdir()
        warm = _image_file(files / "warm.png", MB)
        under = _image_file(files / "under-cap.png", UNDER_CAP)
        over = _image_file(files / "over-cap.png", OVER_CAP)
        with sandbox_process(home / "sandbox", 1.0) as sandbox:
            sandbox.configure(max_file_bytes=300 * MB)
            with StdioSession(evolink_argv(), child_env(home / "server", **upstream_env(sandbox))) as server:
                server.initialize()
                server.call_tool("upload_file", {"file_path": str(warm)})  # code paths loaded, pools warm
                under_growth, under_result = _growth_kib(server, {"file_path": str(under)})
                if under_result.get("isError"):
                    raise RuntimeError(f"the upload failed: {under_result}")
                stored = under_result["structuredContent"]["file_size"]  # type: ignore[index]
                if stored != UNDER_CAP:
                    raise RuntimeError(f"the sandbox stored {stored} bytes of {UNDER_CAP}")
                over_growth, over_result = _growth_kib(server, {"file_path": str(over)})
                if not over_result.get("isError"):
                    raise RuntimeError("a 200 MB upload_file was not refused")
                server_rss = memory_kib(server.pid)["VmRSS"] * 1024
            client_growth = _client_streaming(sandbox, over, home / "client")
    return [
        Row(
            f"upload_file {UNDER_CAP / MB:.1f} MiB (under the 100 MB cap): server peak RSS growth",
            mib(under_growth * 1024),
            mib(UNDER_CAP) + " (the file)",
            ratio(under_growth * 1024, UNDER_CAP),
            f"<= {mib(TARGET)}",
            under_growth * 1024 <= TARGET,
            f"server RSS after: {mib(server_rss)}",
        ),
        Row(
            "upload_file 200 MiB: refused before sending; server peak RSS growth",
            mib(over_growth * 1024),
            mib(OVER_CAP) + " (the file)",
            ratio(over_growth * 1024, OVER_CAP),
            f"<= {mib(TARGET)}",
            over_growth * 1024 <= TARGET,
        ),
        Row(
            "EvolinkClient.upload_file streaming 200 MiB (sandbox cap raised): peak RSS growth",
            mib(client_growth * 1024),
            mib(OVER_CAP) + " (the file)",
            ratio(client_growth * 1024, OVER_CAP),
            f"<= {mib(TARGET)}",
            client_growth * 1024 <= TARGET,
            "the code upload_file uses, in its own process",
        ),
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
