"""deploy/compose.yaml and its Caddyfile, read as Compose and Caddy would (no container engine runs here): one
PostgreSQL, two replicas on one journal and one shared image volume, health checks on /readyz, every variable
one the server knows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from evolink_mcp.journal.url import parse_journal_url
from evolink_mcp.settings import ENV_VARS, Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")
GIVEN = {"POSTGRES_PASSWORD": "pw-from-the-env", "EVOLINK_API_KEY": "sk-team", "EVOLINK_MCP_TOKEN": "new,old"}


def interpolated(value: str) -> str:
    """`value` with Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} filled from GIVEN."""

    def fill(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)
        if name in GIVEN:
            return GIVEN[name]
        assert ":-" in rest, f"{name} is required by the compose file but not given here"
        return match.group(2) or ""

    return INTERPOLATION.sub(fill, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name.startswith("replica-")}


def replica_env(service: dict[str, Any]) -> dict[str, str]:
    return {name: interpolated(str(value)) for name, value in service["environment"].items()}


def test_the_compose_file_runs_postgres_two_replicas_and_a_load_balancer(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "replica-1", "replica-2", "load-balancer"}
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["load-balancer"]["ports"] == ["8000:8000"]


def test_every_replica_uses_the_one_journal_and_the_one_shared_image_volume(compose: dict[str, Any]) -> None:
    envs = [replica_env(service) for service in replicas(compose).values()]
    mounts = [service["volumes"] for service in replicas(compose).values()]

    assert len(envs) == 2 and all(env == envs[0] for env in envs)
    journal = parse_journal_url(envs[0]["EVOLINK_JOURNAL_URL"])
    assert journal.shown == "postgresql://evolink@postgres:5432/evolink"
    postgres = compose["services"]["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("evolink", "evolink")
    volume, _, target = mounts[0][0].partition(":")
    assert all(m == mounts[0] for m in mounts)
    assert volume in compose["volumes"] and target == envs[0]["EVOLINK_OUTPUT_DIR"]


def test_the_replicas_settings_are_valid_and_serve_streamable_http_without_sessions(compose: dict[str, Any]) -> None:
    known = {var.name for var in ENV_VARS}
    for name, service in replicas(compose).items():
        env = replica_env(service)
        assert set(env) <= known, f"{name}: unknown variables {set(env) - known}"

        settings = Settings.from_env(env)

        assert settings.stateless_http
        assert settings.mcp_tokens == ("new", "old")
        assert name in settings.mcp_allowed_hosts  # the load balancer's health checks name the replica


def test_replicas_wait_for_a_healthy_postgres_and_report_readiness_on_readyz(compose: dict[str, Any]) -> None:
    for service in replicas(compose).values():
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])


def test_the_load_balancer_sends_to_every_replica_that_is_ready(compose: dict[str, Any]) -> None:
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    mounted = compose["services"]["load-balancer"]["volumes"]

    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in mounted
    proxies = re.findall(r"^\s*reverse_proxy\s+(?:@\w+\s+)?([^{]+)\{", caddyfile, re.MULTILINE)
    assert proxies, caddyfile
    for upstreams in proxies:
        assert set(upstreams.split()) == {f"{name}:8000" for name in replicas(compose)}
    assert caddyfile.count("health_uri /readyz") == len(proxies)
