"""docker-compose.yml and the Dockerfile name only real `riskdesk` commands and real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from riskdesk.cli import build_parser
from services.common.settings import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RISKDESK_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "riskdesk:latest"}

# Settings fields, plus the per-service overrides that settings.py reads from the environment.
KNOWN_VARIABLES = {f"RISKDESK_{field.upper()}" for field in Settings.model_fields} | {
    f"RISKDESK_{service.upper()}_{suffix}"
    for service in SERVICE_NAMES
    for suffix in ("URL", "DATABASE_URL")
}


def test_every_process_of_the_stack_is_in_compose() -> None:
    commands = [tuple(s["command"]) for s in RISKDESK_SERVICES.values()]
    assert ("migrate",) in commands
    assert ("worker",) in commands
    for service in SERVICE_NAMES:
        assert ("serve", service) in commands


@pytest.mark.parametrize("name", sorted(RISKDESK_SERVICES))
def test_commands_are_riskdesk_subcommands(name: str) -> None:
    command = RISKDESK_SERVICES[name]["command"]
    try:
        build_parser().parse_args(command)
    except SystemExit as exc:  # argparse exits on an unknown subcommand or argument
        pytest.fail(f"compose service {name} runs `riskdesk {' '.join(command)}`: exit {exc.code}")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_environment_variables_are_settings(name: str) -> None:
    environment = SERVICES[name].get("environment") or {}
    unknown = {key for key in environment if key.startswith("RISKDESK_")} - KNOWN_VARIABLES
    assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_dockerfile_variables_are_settings() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    variables = set(re.findall(r"\b(RISKDESK_[A-Z_]+)=", dockerfile))
    assert variables
    assert variables <= KNOWN_VARIABLES


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_healthchecks_probe_the_services_own_readyz(service: str) -> None:
    probe = " ".join(SERVICES[service]["healthcheck"]["test"])
    assert f"127.0.0.1:{Settings().port_of(service)}/readyz" in probe


def test_depends_on_names_defined_services_with_conditions() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in SERVICES.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in conditions
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"
