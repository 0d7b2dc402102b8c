"""One Settings object from EVOLINK_* environment variables and command-line overrides, validated once."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from .catalog import DEFAULT_MODEL
from .evolink.client import DEFAULT_BASE_URL, DEFAULT_FILES_BASE_URL

SANDBOX_TASK_SECONDS = 4.0  # how long a sandbox task takes, wherever the sandbox is started


TENANT_KEY_MODES = ("off", "header")
MIN_TENANT_SECRET = 32


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message says which variable to fix."""


def default_output_dir() -> Path:
    """A per-user pictures folder (never relative to the working directory): the platform's own, wherever the
    user moved it (XDG user dirs, Windows known folders)."""
    import platformdirs

    return Path(platformdirs.user_pictures_dir()) / "Evolink"


def default_state_dir() -> Path:
    """A per-user state folder for the task journal."""
    import platformdirs

    return Path(platformdirs.user_state_dir("evolink-mcp", appauthor=False))


@dataclass(frozen=True)
class EnvVar:
    name: str
    field: str
    default: str
    meaning: str


# The one list of environment variables: Settings reads it, the README table is generated from it.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "EVOLINK_API_KEY",
        "api_key",
        "(none)",
        "Your Evolink API key. Without it, tools are listed but calls "
        "that need the key say how to set it (or use --sandbox).",
    ),
    EnvVar("EVOLINK_BASE_URL", "base_url", DEFAULT_BASE_URL, "Generation and task API base URL."),
    EnvVar("EVOLINK_FILES_BASE_URL", "files_base_url", DEFAULT_FILES_BASE_URL, "Files API base URL."),
    EnvVar("EVOLINK_DEFAULT_MODEL", "default_model", DEFAULT_MODEL, "Model used when a call names none."),
    EnvVar("EVOLINK_CATALOG_FILE", "catalog_file", "(none)", "JSON file adding or overriding catalog models."),
    EnvVar(
        "EVOLINK_OUTPUT_DIR",
        "output_dir",
        "~/Pictures/Evolink",
        "Where generated images and their JSON sidecars are saved.",
    ),
    EnvVar(
        "EVOLINK_WAIT_SECONDS",
        "wait_seconds",
        "45",
        "Default time generate_image waits for a result (0 = return the task id at once).",
    ),
    EnvVar(
        "EVOLINK_DEDUPE_SECONDS",
        "dedupe_seconds",
        "120",
        "The same generation repeated this soon without a client_request_id returns the first task, not a "
        "second paid one (0 = off).",
    ),
    EnvVar(
        "EVOLINK_PREVIEW_MAX_BYTES",
        "preview_max_bytes",
        "600000",
        "Byte budget for inline previews per result (0 disables previews).",
    ),
    EnvVar("EVOLINK_SANDBOX", "sandbox", "false", "Run against the built-in sandbox (no key, no network)."),
    EnvVar(
        "EVOLINK_SANDBOX_TASK_SECONDS",
        "sandbox_task_seconds",
        f"{SANDBOX_TASK_SECONDS:g}",
        "How long a sandbox task takes.",
    ),
    EnvVar(
        "EVOLINK_MAX_CREDITS_PER_CALL",
        "max_credits_per_call",
        "(none)",
        "Refuse a generation whose estimated credits exceed this; warn when the reserved credits do.",
    ),
    EnvVar(
        "EVOLINK_MCP_TOKEN",
        "mcp_token",
        "(none)",
        "Bearer token required on the HTTP transports; several, comma-separated, are each accepted (to rotate "
        "tokens without downtime).",
    ),
    EnvVar(
        "EVOLINK_MCP_STATELESS",
        "mcp_stateless",
        "auto",
        "Streamable HTTP without sessions, so that any replica answers any request (`auto`: on when "
        "EVOLINK_JOURNAL_URL is set). SSE keeps its sessions.",
    ),
    EnvVar(
        "EVOLINK_MCP_ALLOWED_HOSTS",
        "mcp_allowed_hosts",
        "(none)",
        "Extra Host names (comma-separated) the HTTP transports accept, besides loopback and the bound host.",
    ),
    EnvVar(
        "EVOLINK_MCP_MAX_SESSIONS",
        "mcp_max_sessions",
        "1000",
        "Streamable HTTP sessions open at once; a client opening one more gets 503 until one ends or expires.",
    ),
    EnvVar(
        "EVOLINK_MCP_SESSION_IDLE_SECONDS",
        "mcp_session_idle_seconds",
        "300",
        "A streamable HTTP session with no request for this long is closed (its client starts a new one).",
    ),
    EnvVar(
        "EVOLINK_MCP_READ_SECONDS",
        "mcp_read_seconds",
        "30",
        "An HTTP request's headers and body must arrive within this long, or the connection is closed.",
    ),
    EnvVar(
        "EVOLINK_TENANT_KEYS",
        "tenant_keys",
        "off",
        "`header`: over HTTP every request carries its caller's own Evolink key in X-Evolink-Api-Key, and each "
        "key's tasks, files and images are kept apart (EVOLINK_MCP_TOKEN and EVOLINK_TENANT_SECRET required).",
    ),
    EnvVar(
        "EVOLINK_TENANT_SECRET",
        "tenant_secret",
        "(none)",
        "The server secret (32+ characters, the same on every replica) that keys the hash naming each caller's key.",
    ),
    EnvVar(
        "EVOLINK_TENANT_IDLE_SECONDS",
        "tenant_idle_seconds",
        "900",
        "A caller's key is kept in memory (and its tasks followed in the background) this long after its last request.",
    ),
    EnvVar(
        "EVOLINK_ALLOWED_DIRS",
        "allowed_dirs",
        "(none)",
        "Directories (separated by the OS path separator) whose files may be uploaded over HTTP transports.",
    ),
    EnvVar(
        "EVOLINK_DOWNLOAD_ALLOW_HOSTS",
        "download_allow_hosts",
        "(none)",
        "Hosts (comma-separated) result downloads may reach at loopback or private addresses, besides the API hosts.",
    ),
    EnvVar(
        "EVOLINK_RESOURCE_LINKS",
        "resource_links",
        "true",
        "Put a resource_link to each saved image in results (false for clients that mishandle them).",
    ),
    EnvVar(
        "EVOLINK_RESULT_CACHE_SIZE",
        "result_cache_size",
        "64",
        "Completed tasks whose results (and previews) stay in memory; older ones are read again from disk.",
    ),
    EnvVar("EVOLINK_STATE_DIR", "state_dir", "per-user state folder", "Where the task journal is kept."),
    EnvVar(
        "EVOLINK_JOURNAL_URL",
        "journal_url",
        "(none: SQLite in EVOLINK_STATE_DIR)",
        "The task journal in PostgreSQL instead, shared by replicas: postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        "(needs the `postgres` extra).",
    ),
    EnvVar(
        "EVOLINK_JOURNAL_LEASE_SECONDS",
        "journal_lease_seconds",
        "30",
        "With EVOLINK_JOURNAL_URL: a replica's hold on the tasks it follows, renewed every third of it; a stopped "
        "replica's tasks are adopted by another within this plus EVOLINK_JOURNAL_ADOPT_SECONDS.",
    ),
    EnvVar(
        "EVOLINK_JOURNAL_ADOPT_SECONDS",
        "journal_adopt_seconds",
        "10",
        "With EVOLINK_JOURNAL_URL: how often each replica looks for tasks whose follower stopped.",
    ),
    EnvVar("EVOLINK_LOG_LEVEL", "log_level", "INFO", "Log level of the stderr log."),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# Numeric settings' lower bounds: (field, bound, whether the bound itself is allowed).
_BOUNDS: tuple[tuple[str, float, bool], ...] = (
    ("wait_seconds", 0, True),
    ("dedupe_seconds", 0, True),
    ("preview_max_bytes", 0, True),
    ("max_credits_per_call", 0, False),
    ("result_cache_size", 1, True),
    ("sandbox_task_seconds", 0, True),
    ("mcp_max_sessions", 0, False),
    ("mcp_session_idle_seconds", 0, False),
    ("mcp_read_seconds", 0, False),
    ("tenant_idle_seconds", 0, False),
    ("journal_lease_seconds", 0, False),
    ("journal_adopt_seconds", 0, False),
)


# Read by hand rather than with pydantic-settings: ENV_VARS is one list that also writes the README's table; a
# bundle host's unfilled "${user_config.x}" must read as unset; lists are comma- or os.pathsep-separated, not
# JSON; every message names the variable to fix; and the stdio server's cold start (bench/cold_start.py, 1.10x
# the bare SDK at most) would pay for pydantic-settings' and python-dotenv's imports on every spawn.
@dataclass(frozen=True)
class Settings:
    api_key: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    files_base_url: str = DEFAULT_FILES_BASE_URL
    default_model: str = DEFAULT_MODEL
    catalog_file: Path | None = None
    output_dir: Path = field(default_factory=default_output_dir)
    wait_seconds: float = 45.0
    dedupe_seconds: float = 120.0
    preview_max_bytes: int = 600_000
    sandbox: bool = False
    sandbox_task_seconds: float = SANDBOX_TASK_SECONDS
    max_credits_per_call: float | None = None
    mcp_token: SecretStr | None = None
    mcp_stateless: bool | None = None  # None: auto
    mcp_allowed_hosts: tuple[str, ...] = ()
    mcp_max_sessions: int = 1000
    mcp_session_idle_seconds: float = 300.0
    mcp_read_seconds: float = 30.0
    tenant_keys: str = "off"
    tenant_secret: SecretStr | None = None
    tenant_idle_seconds: float = 900.0
    allowed_dirs: tuple[Path, ...] = ()
    state_dir: Path = field(default_factory=default_state_dir)
    journal_url: SecretStr | None = None  # a password inside: shown only as journal_location
    journal_lease_seconds: float = 30.0
    journal_adopt_seconds: float = 10.0
    log_level: str = "INFO"
    max_download_bytes: int = 200 * 1024 * 1024
    download_allow_hosts: tuple[str, ...] = ()
    resource_links: bool = True
    result_cache_size: int = 64
    # A call's result downloads may run until its wait_seconds end, and for at least this long.
    min_save_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in ("base_url", "files_base_url"):
            value = getattr(self, name)
            if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
                raise SettingsError(f"{_env_name(name)} must be an http(s) URL; got {value!r}.")
        for name, bound, allowed in _BOUNDS:
            value = getattr(self, name)
            if value is not None and not (value >= bound if allowed else value > bound):
                wanted = f"{bound:g} or more" if allowed else f"more than {bound:g}"
                raise SettingsError(f"{_env_name(name)} must be {wanted}.")
        for name in ("mcp_max_sessions", "mcp_session_idle_seconds", "mcp_read_seconds"):
            if not getattr(self, name) < float("inf"):
                raise SettingsError(f"{_env_name(name)} must be more than 0.")
        if not self.output_dir.is_absolute():
            object.__setattr__(self, "output_dir", self.output_dir.expanduser().resolve())
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError("EVOLINK_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR.")
        for name in ("api_key", "mcp_token"):
            _check_sendable(name, getattr(self, name))
        self._check_tenancy()
        if self.journal_url is not None:
            from .journal.url import JournalURLError, parse_journal_url

            try:
                parse_journal_url(self.journal_url.get_secret_value())
            except JournalURLError as exc:
                raise SettingsError(str(exc)) from None

    def _check_tenancy(self) -> None:
        if self.tenant_keys not in TENANT_KEY_MODES:
            raise SettingsError(f"EVOLINK_TENANT_KEYS must be one of {', '.join(TENANT_KEY_MODES)}.")
        secret = self.tenant_secret.get_secret_value() if self.tenant_secret else ""
        if self.multi_tenant and len(secret) < MIN_TENANT_SECRET:
            raise SettingsError(
                f"EVOLINK_TENANT_KEYS=header needs EVOLINK_TENANT_SECRET: {MIN_TENANT_SECRET} characters or more, the "
                "same on every replica (e.g. `openssl rand -hex 32`)."
            )

    @property
    def multi_tenant(self) -> bool:
        """Over HTTP, each request carries its caller's own Evolink key (EVOLINK_TENANT_KEYS=header)."""
        return self.tenant_keys == "header"

    def __repr__(self) -> str:
        hidden = ("api_key", "mcp_token", "tenant_secret", "journal_url")
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        return f"Settings(api_key={'set' if self.has_api_key else 'unset'}, journal={self.journal_location}, {shown})"

    @property
    def journal_location(self) -> str:
        """Where the journal is, for people: its database without the password, or the state folder."""
        if self.journal_url is None:
            return str(self.state_dir)
        from .journal.url import parse_journal_url

        return parse_journal_url(self.journal_url.get_secret_value()).shown

    @property
    def stateless_http(self) -> bool:
        """Streamable HTTP without sessions: EVOLINK_MCP_STATELESS, or `auto`, with a journal replicas share."""
        return self.mcp_stateless if self.mcp_stateless is not None else self.journal_url is not None

    @property
    def mcp_tokens(self) -> tuple[str, ...]:
        """The bearer tokens accepted (EVOLINK_MCP_TOKEN, comma-separated: the new and the old while rotating)."""
        raw = self.mcp_token.get_secret_value() if self.mcp_token else ""
        return tuple(t for t in raw.split(",") if t)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key and self.api_key.get_secret_value())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from EVOLINK_* variables, then non-None `overrides` (CLI flags) on top."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var in ENV_VARS:
            raw = env_text(env, var.name)
            if raw is not None:
                values[var.field] = _convert(var, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for secret in ("api_key", "mcp_token", "tenant_secret", "journal_url"):
            if isinstance(values.get(secret), str):
                values[secret] = SecretStr(values[secret])
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def env_text(env: Mapping[str, str], name: str) -> str | None:
    """The variable's text, or None when it is not set."""
    raw = (env.get(name) or "").strip()
    # A bundle host leaves "${user_config.x}" in place when the user set nothing: treat it as unset.
    return raw if raw and not (raw.startswith("${") and raw.endswith("}")) else None


def _check_sendable(name: str, secret: SecretStr | None) -> None:
    """A key or token travels in an HTTP header: refuse one that cannot (the message never shows the value)."""
    value = secret.get_secret_value() if secret else ""
    bad = next((i for i, c in enumerate(value) if not "!" <= c <= "~"), None)
    if bad is not None:
        char = value[bad]
        what = "a line break" if char in "\r\n" else "a space" if char == " " else "a control or non-ASCII character"
        raise SettingsError(
            f"{_env_name(name)} contains {what} that cannot be sent in an HTTP header (position {bad + 1} of "
            f"{len(value)}; only printable ASCII is allowed): copy it again, without line breaks or spaces."
        )


def _env_name(field_name: str) -> str:
    return next(v.name for v in ENV_VARS if v.field == field_name)


def _flag(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(raw)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(h.strip() for h in raw.split(",") if h.strip())


def _dirs(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())


def _flag_or_auto(raw: str) -> bool | None:
    return None if raw.lower() == "auto" else _flag(raw)


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


# How each variable's text becomes its setting (a variable not listed is taken as it is).
_CONVERTERS: dict[str, Callable[[str], Any]] = {
    **dict.fromkeys(
        (
            "wait_seconds",
            "dedupe_seconds",
            "sandbox_task_seconds",
            "max_credits_per_call",
            "mcp_session_idle_seconds",
            "mcp_read_seconds",
            "tenant_idle_seconds",
            "journal_lease_seconds",
            "journal_adopt_seconds",
        ),
        float,
    ),
    **dict.fromkeys(("preview_max_bytes", "mcp_max_sessions", "result_cache_size"), int),
    **dict.fromkeys(("sandbox", "resource_links"), _flag),
    **dict.fromkeys(("output_dir", "state_dir", "catalog_file"), _path),
    **dict.fromkeys(("mcp_allowed_hosts", "download_allow_hosts"), _names),
    "allowed_dirs": _dirs,
    "mcp_stateless": _flag_or_auto,
    "log_level": str.upper,
    "tenant_keys": str.lower,
}


def _convert(var: EnvVar, raw: str) -> Any:
    convert = _CONVERTERS.get(var.field)
    if convert is None:
        return raw
    try:
        return convert(raw)
    except ValueError:
        kind = Settings.__dataclass_fields__[var.field].type
        raise SettingsError(f"{var.name}={raw!r} is not a valid value ({kind}).") from None
