"""Python agent frameworks against our stdio server and its sandbox, each in its own virtualenv (a CI stage).

    python tests/clients/frameworks/run.py [--server PATH] [--only CLIENT ...]

For every row of matrix.json: a fresh virtualenv, `pip install -r requirements-<client>.txt` (exact pins), then
`check_<client>.py` run in it against `evolink-mcp --sandbox` (the one next to this interpreter: the server is not
installed into the framework's virtualenv, as langchain-mcp-adapters needs mcp<2 and we need mcp>=2). No model is
ever called. Prints a summary; exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_SECONDS = 240
CHECK_SECONDS = 120
# Server settings per client on top of the common ones.
SERVER_ENV = {
    # The adapter turns a resource_link into an image block with our evolink:// URI, which no provider fetches.
    "langchain-mcp-adapters": {"EVOLINK_RESOURCE_LINKS": "false"},
}
# Nothing in a check may reach a model provider or a tracing service.
OFFLINE_ENV = {"OPENAI_AGENTS_DISABLE_TRACING": "1", "LANGSMITH_TRACING": "false", "OPENAI_API_KEY": "dummy"}


def pinned_version(requirements: Path) -> str:
    """The version pinned on the first line (`name==version`), which matrix.json must show."""
    return requirements.read_text().splitlines()[0].split("==", 1)[1].strip()


def run_step(command: list[str], *, env: dict[str, str], timeout: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return False, f"{exc.output or ''}{exc.stderr or ''}\ntimed out after {timeout:.0f}s"
    return done.returncode == 0, done.stdout + done.stderr


def check_client(client: str, server: Path, work: Path) -> tuple[bool, str]:
    requirements = HERE / f"requirements-{client}.txt"
    script = HERE / f"check_{client.replace('-', '_')}.py"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(work)), **OFFLINE_ENV}
    for name, value in os.environ.items():  # the machine's package index set-up, for pip
        if name.startswith("PIP_") or name in ("SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
            env[name] = value
    home = work / client
    venv.create(home / "venv", with_pip=True)
    python = str(home / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python")
    installed, output = run_step(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)],
        env=env,
        timeout=INSTALL_SECONDS,
    )
    if not installed:
        return False, f"pip install -r {requirements.name} failed:\n{output}"
    server_env = {
        "PATH": env["PATH"],
        "EVOLINK_OUTPUT_DIR": str(home / "images"),
        "EVOLINK_STATE_DIR": str(home / "state"),
        "EVOLINK_SANDBOX_TASK_SECONDS": "0.5",
        "EVOLINK_LOG_LEVEL": "WARNING",
        **SERVER_ENV.get(client, {}),
    }
    spec = json.dumps({"command": str(server), "args": ["--sandbox"], "env": server_env})
    return run_step([python, str(script), spec], env=env, timeout=CHECK_SECONDS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", type=Path, default=Path(sys.executable).parent / "evolink-mcp")
    parser.add_argument("--only", nargs="+", metavar="CLIENT", help="check only these clients")
    args = parser.parse_args()
    if not args.server.is_file():
        parser.error(f"no evolink-mcp at {args.server}: install the package (pip install .) or pass --server")
    rows = json.loads((HERE / "matrix.json").read_text())
    results: list[tuple[str, str, bool, float]] = []
    with tempfile.TemporaryDirectory(prefix="evolink-frameworks-") as work:
        for row in rows:
            client = row["client"]
            if args.only and client not in args.only:
                continue
            started = time.monotonic()
            pin = pinned_version(HERE / f"requirements-{client}.txt")
            if pin != row["version"]:
                passed, output = False, f"matrix.json says {row['version']}, requirements-{client}.txt pins {pin}"
            else:
                passed, output = check_client(client, args.server, Path(work))
            seconds = time.monotonic() - started
            print(f"== {client} {pin}: {'passed' if passed else 'FAILED'} in {seconds:.0f}s", flush=True)
            print(output.rstrip(), flush=True)
            results.append((client, pin, passed, seconds))
    print("\nframework checks:")
    for client, pin, passed, seconds in results:
        print(f"  {'ok  ' if passed else 'FAIL'}  {client} {pin} ({seconds:.0f}s)")
    failed = [client for client, _, passed, _ in results if not passed]
    if failed or not results:
        print(f"framework checks failed: {', '.join(failed) or 'none ran'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
