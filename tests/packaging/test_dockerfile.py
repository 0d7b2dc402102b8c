"""The Dockerfile without a Docker engine: its build stage's commands replayed in a fresh virtualenv, then
its runtime stage's command, environment and healthcheck run against the result."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from mcp.client.streamable_http import streamable_http_client
from packaging_support import REPO, base_python, free_port, kill_group, network_env, run, unavailable

import evolink_mcp
from mcp_session import CheckedClient

DOCKERFILE = REPO / "Dockerfile"
IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"  # the python images' PATH
SERVER_START_TIMEOUT = 30.0
TOKEN = "packaging-test-token"
PINNED = re.compile(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}")  # name:tag@sha256:digest
GENERATION_WAIT_SECONDS = 45


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Copy:
    origin: str | None  # --from
    sources: list[str]
    dest: str


@dataclass(frozen=True)
class Run:
    workdir: str
    argv: list[str]


@dataclass
class Stage:
    image: str
    name: str | None
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=lambda: {"PATH": IMAGE_PATH})
    labels: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    steps: list[Copy | Run] = field(default_factory=list)  # COPY and RUN in the Dockerfile's order: its layers
    user: str = "root"
    volumes: list[str] = field(default_factory=list)
    healthcheck: dict[str, str] = field(default_factory=dict)
    healthcheck_cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> Iterator[str]:
    """Instructions with line continuations joined and comment lines dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def _pairs(rest: str, variables: dict[str, str]) -> dict[str, str]:
    """`K=V K2="V 2"` (ENV, LABEL, ARG); values expanded against `variables`."""
    pairs = {}
    for token in shlex.split(rest):
        key, sep, value = token.partition("=")
        assert sep, f"only the KEY=VALUE form is supported here, got {token!r}"
        pairs[key] = _expand(value, variables)
    return pairs


def _exec_form(rest: str) -> list[str]:
    if rest.startswith("["):
        return list(json.loads(rest))
    return ["/bin/sh", "-c", rest]


def parse_dockerfile(text: str) -> list[Stage]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            args.update(_pairs(rest, args))
            continue
        if keyword == "FROM":
            words = _expand(rest, args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
            continue
        _apply(stages[-1], keyword, rest)
    return stages


def _apply(stage: Stage, keyword: str, rest: str) -> None:
    """One instruction of a stage."""
    if keyword == "WORKDIR":
        stage.workdir = os.path.join(stage.workdir, _expand(rest, stage.env))
    elif keyword == "ENV":
        stage.env.update(_pairs(rest, stage.env))
    elif keyword == "LABEL":
        stage.labels.update(_pairs(rest, stage.env))
    elif keyword == "COPY":
        words = shlex.split(rest)
        flags = {w[2:].partition("=")[0]: w.partition("=")[2] for w in words if w.startswith("--")}
        paths = [w for w in words if not w.startswith("--")]
        stage.copies.append(Copy(flags.get("from"), paths[:-1], os.path.join(stage.workdir, paths[-1])))
        stage.steps.append(stage.copies[-1])
    elif keyword == "RUN":
        stage.runs.append(Run(stage.workdir, _exec_form(rest)))
        stage.steps.append(stage.runs[-1])
    elif keyword == "USER":
        stage.user = rest
    elif keyword == "VOLUME":
        stage.volumes.extend(json.loads(rest) if rest.startswith("[") else rest.split())
    elif keyword == "HEALTHCHECK":
        options, _, command = rest.partition("CMD")
        stage.healthcheck = {k.removeprefix("--"): v for k, _, v in (o.partition("=") for o in options.split())}
        stage.healthcheck_cmd = _exec_form(command.strip())
    elif keyword == "ENTRYPOINT":
        stage.entrypoint = _exec_form(rest)
    elif keyword == "CMD":
        stage.cmd = _exec_form(rest)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, f"unsupported duration {duration!r}"
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


# ---------------------------------------------------------------- replaying


class PathMap:
    """Image paths (/src, /opt/venv, /data, ...) rewritten to directories under a temp root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.map: dict[str, Path] = {}

    def add(self, image_path: str) -> Path:
        image_path = image_path.rstrip("/") or "/"
        assert image_path != "/", "cannot map the image's root directory"
        local = self.root / image_path.strip("/").replace("/", "_")
        self.map.setdefault(image_path, local)
        return self.map[image_path]

    def __call__(self, text: str) -> str:
        for image_path in sorted(self.map, key=len, reverse=True):
            text = re.sub(rf"(?<![\w./-]){re.escape(image_path)}(?=/|\b|$)", str(self.map[image_path]), text)
        return text


def _dockerignore() -> list[str]:
    path = REPO / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "exceptions (!) in .dockerignore are not replayed"
    return patterns


def _ignored(relative: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in relative.split("/")):
                return True
        elif fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def _copy_context(sources: list[str], image_dest: str, paths: PathMap) -> None:
    """COPY from the build context (the repo), honouring .dockerignore."""
    patterns = _dockerignore()
    into_dir = len(sources) > 1 or image_dest.endswith(("/", "/."))
    dest = Path(paths(image_dest))
    for source in sources:
        origin = REPO / source
        assert origin.exists(), f"COPY source {source} is not in the repository"
        target = dest / origin.name if into_dir and origin.is_file() else dest
        if origin.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
            continue
        for path in origin.rglob("*"):
            relative = path.relative_to(REPO).as_posix()
            if path.is_file() and not _ignored(relative, patterns):
                out = target / path.relative_to(origin)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)


@dataclass(frozen=True)
class Image:
    """The replayed image: its runtime stage and the environment its processes see."""

    runtime: Stage
    paths: PathMap
    env: dict[str, str]
    port: int

    def argv(self, command: list[str]) -> list[str]:
        port = re.compile(rf"(?<!\d){self.image_port}(?!\d)")
        return [port.sub(str(self.port), self.paths(arg)) for arg in command]

    @property
    def image_port(self) -> int:
        exposed = re.search(r"--port\D+(\d+)", " ".join(self.runtime.cmd))
        assert exposed, f"CMD names no --port: {self.runtime.cmd}"
        return int(exposed.group(1))


def _check_python_version(stage: Stage) -> None:
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?(?:-.*)?", stage.image)
    assert match, f"the build stage's base image {stage.image!r} is not a python:X.Y image"
    wanted, running = (int(match.group(1)), int(match.group(2))), sys.version_info[:2]
    if wanted != running:
        unavailable(
            f"the image builds on Python {wanted[0]}.{wanted[1]} (ARG PYTHON_VERSION) but these tests run on "
            f"{running[0]}.{running[1]}: run them with Python {wanted[0]}.{wanted[1]} to replay the build"
        )


@pytest.fixture(scope="session")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="session")
def image(stages: list[Stage], pypi: None, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Every build-stage RUN replayed with the image's paths moved under a temp root."""
    build, runtime = stages[0], stages[-1]
    _check_python_version(build)
    root = tmp_path_factory.mktemp("image")
    paths = PathMap(root)
    paths.add(build.workdir)
    for copy in runtime.copies:
        if copy.origin is not None:
            paths.add(*copy.sources)  # what the runtime takes from the build stage must be built there
    for volume in runtime.volumes:
        paths.add(volume).mkdir(parents=True, exist_ok=True)

    shims = root / "image-bin"  # `python` / `python3` as in the image: this interpreter, no virtualenv
    shims.mkdir()
    for name in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        (shims / name).symlink_to(base_python())
    home = root / "home"
    home.mkdir()

    build_env = {
        **{k: paths(v) for k, v in build.env.items()},
        "PATH": f"{shims}{os.pathsep}{paths(build.env['PATH'])}",
        "HOME": str(home),
        **network_env(),  # the machine's package-index set-up, as a docker build's network would have
    }
    for step in build.steps:  # in order: a RUN sees only what the COPY steps before it brought in
        if isinstance(step, Copy):
            assert step.origin is None, "COPY --from inside the build stage is not replayed"
            _copy_context(step.sources, step.dest, paths)
            continue
        cwd = Path(paths(step.workdir))
        cwd.mkdir(parents=True, exist_ok=True)
        run([paths(arg) for arg in step.argv], timeout=300, env=build_env, cwd=cwd)

    for copy in runtime.copies:
        if copy.origin is not None:
            assert Path(paths(copy.sources[0])).exists(), f"the build stage produced no {copy.sources[0]}"
    env = {k: paths(v) for k, v in runtime.env.items()}
    env["HOME"] = str(home)
    return Image(runtime, paths, env, free_port())


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def served(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """ENTRYPOINT + CMD with the image's ENV, a token and the sandbox, on a free port."""
    log = tmp_path_factory.mktemp("served") / "server.log"
    env = {**image.env, "EVOLINK_MCP_TOKEN": TOKEN, "EVOLINK_SANDBOX": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            image.argv(image.runtime.entrypoint + image.runtime.cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=image.env["HOME"],
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            assert proc.poll() is None, f"the server exited ({proc.returncode}):\n{log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", image.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing listens on :{image.port}:\n{log.read_text()}"
                time.sleep(0.2)
        yield Served(proc, log)
    finally:
        kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait(timeout=10)


# ---------------------------------------------------------------- tests


def _covers(copy: Copy, relative: str) -> bool:
    return any(
        source in (".", "./") or relative == source.rstrip("/") or relative.startswith(source.rstrip("/") + "/")
        for source in copy.sources
    )


def _installs_dependencies(step: Copy | Run) -> bool:
    command = " ".join(step.argv) if isinstance(step, Run) else ""
    return "pip install" in command and "--no-deps" not in command


def test_every_stage_starts_from_one_base_image_pinned_by_tag_and_digest(stages: list[Stage]) -> None:
    names = {stage.name for stage in stages}
    bases = {stage.image for stage in stages if stage.image not in names}

    assert len(bases) == 1, f"build and runtime stages must share one Python: {bases}"
    (base,) = bases
    assert PINNED.fullmatch(base), f"{base!r} is not pinned as name:tag@sha256:<digest>"


def test_a_code_change_rebuilds_only_the_package_layer_not_the_dependencies(stages: list[Stage]) -> None:
    """Docker reuses every layer up to the first one whose inputs changed: a changed source file must come in
    after the layer that installs the dependencies, which sees pyproject.toml alone."""
    build = stages[0]
    changed = "server/evolink_mcp/__init__.py"
    first = next(i for i, step in enumerate(build.steps) if isinstance(step, Copy) and _covers(step, changed))
    before, after = build.steps[:first], build.steps[first:]

    installs = [i for i, step in enumerate(before) if _installs_dependencies(step)]
    assert installs, "no dependency layer before the source"
    inputs = [source for step in before[: installs[0]] if isinstance(step, Copy) for source in step.sources]
    assert inputs == ["pyproject.toml"], "the dependency layer is rebuilt whenever one of these changes"
    rerun = [" ".join(step.argv) for step in after if _installs_dependencies(step)]
    assert not rerun, f"a code change would reinstall the dependencies: {rerun}"


def test_the_output_folder_is_inside_the_volume_and_owned_by_the_user_the_server_runs_as(
    stages: list[Stage],
) -> None:
    runtime = stages[-1]
    output, state = runtime.env["EVOLINK_OUTPUT_DIR"], runtime.env["EVOLINK_STATE_DIR"]
    setup = " && ".join(" ".join(step.argv) for step in runtime.runs)
    user = runtime.user.split(":")[0]

    (volume,) = [v for v in runtime.volumes if output.startswith(v.rstrip("/") + "/")]
    assert state.startswith(volume.rstrip("/") + "/")
    assert re.search(rf"mkdir -p .*{re.escape(output)}(\s|$)", setup), setup
    assert re.search(rf"chown -R {re.escape(user)}(:{re.escape(user)})? {re.escape(volume)}(\s|$)", setup), setup


def test_the_image_is_labelled_with_its_mcp_server_name_and_runs_as_a_non_root_user(
    stages: list[Stage],
) -> None:
    runtime = stages[-1]

    assert runtime.labels.get("io.modelcontextprotocol.server.name"), runtime.labels
    assert runtime.user.split(":")[0] not in ("", "root", "0")


def test_the_image_runs_streamable_http_on_all_interfaces_with_a_healthcheck(stages: list[Stage]) -> None:
    runtime = stages[-1]
    command = runtime.entrypoint + runtime.cmd

    assert "--transport" in command and command[command.index("--transport") + 1] == "streamable-http"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert runtime.healthcheck_cmd and "/healthz" in " ".join(runtime.healthcheck_cmd)


@pytest.mark.slow
def test_the_build_stage_installs_an_evolink_mcp_that_answers_its_version(image: Image) -> None:
    out = run(["evolink-mcp", "--version"], timeout=60, env=image.env).stdout

    assert out.strip() == f"evolink-mcp {evolink_mcp.__version__}"
    assert str(shutil.which("evolink-mcp", path=image.env["PATH"])).startswith(str(image.paths.root))


@pytest.mark.slow
def test_the_image_command_serves_http_and_its_own_healthcheck_passes(image: Image, served: Served) -> None:
    timeout = _seconds(image.runtime.healthcheck.get("timeout", "30s"))

    result = run(image.argv(image.runtime.healthcheck_cmd), timeout=timeout + 5, env=image.env, check=False)

    assert result.returncode == 0, f"{result.stderr}\nserver log:\n{served.log.read_text()}"


@pytest.mark.slow
def test_the_image_command_refuses_to_start_without_evolink_mcp_token(image: Image) -> None:
    env = {k: v for k, v in image.env.items() if k != "EVOLINK_MCP_TOKEN"}

    result = run(
        image.argv(image.runtime.entrypoint + image.runtime.cmd),
        timeout=60,
        env={**env, "EVOLINK_SANDBOX": "1"},
        check=False,
    )

    assert result.returncode != 0
    assert "EVOLINK_MCP_TOKEN" in result.stderr


@pytest.mark.slow
@pytest.mark.anyio
async def test_an_image_generated_over_http_is_saved_in_the_output_folder_inside_the_volume(
    image: Image, served: Served
) -> None:
    output = Path(image.env["EVOLINK_OUTPUT_DIR"])
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(30, read=60)) as http,
        CheckedClient(streamable_http_client(f"http://127.0.0.1:{image.port}/mcp", http_client=http)) as client,
    ):
        result = await client.call_tool(
            "generate_image", {"prompt": "a paper boat", "wait_seconds": GENERATION_WAIT_SECONDS}
        )

    assert not result.is_error, f"{result.content}\nserver log:\n{served.log.read_text()}"
    assert result.structured_content is not None
    saved = [Path(found["path"]) for found in result.structured_content["images"]]
    assert saved
    for path in saved:
        assert path.parent == output
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
