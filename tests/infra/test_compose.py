"""docker-compose.yml is a valid Compose file whose commands, variables, ports and probes are the code's."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from riskdesk.cli import build_parser
from services.common.settings import SERVICE_NAMES, Settings
from tests.infra.manifests import INFRA, KNOWN_VARIABLES, ROOT, compose, temporal_values
from workflows.search_attributes import ALL_KEYWORDS

COMPOSE = compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RISKDESK = {name: s for name, s in SERVICES.items() if s.get("image") == "riskdesk:latest"}
# The Compose specification's JSON schema, vendored from check-jsonschema (see schemas/README.md).
COMPOSE_SCHEMA = json.loads((ROOT / "tests/infra/schemas/compose-spec.json").read_text())


def _interpolated(value: str) -> str:
    """A value with `${VAR:-default}` / `${VAR:?error}` as compose would fill it for a test run."""

    def fill(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":-")
        if name.startswith("RISKDESK_IDENTITY_SECRET"):
            return "x" * 48
        if name.startswith("RISKDESK_SECRETS_KEY"):
            return "A" * 43 + "="  # a well-formed Fernet key
        return default if "?" not in name else "set"

    return re.sub(r"\$\{([^}]+)\}", fill, value)


def test_compose_file_validates_against_the_compose_specification() -> None:
    jsonschema.Draft202012Validator.check_schema(COMPOSE_SCHEMA)
    errors = sorted(jsonschema.Draft202012Validator(COMPOSE_SCHEMA).iter_errors(COMPOSE), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_validator_catches_a_broken_file() -> None:
    """The schema check is not vacuous: a misspelt key and a wrong type are refused."""
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"].pop("healthcheck")
    broken["services"]["intake"]["ports"] = "8001:8001"
    assert len(list(jsonschema.Draft202012Validator(COMPOSE_SCHEMA).iter_errors(broken))) >= 2


def test_every_process_of_the_stack_runs_from_the_one_image() -> None:
    commands = sorted(tuple(s["command"]) for s in RISKDESK.values())
    assert commands == sorted(
        [("migrate",), ("worker",), *(("serve", service) for service in SERVICE_NAMES)]
    )
    assert all(s["build"] == "." for s in RISKDESK.values())


@pytest.mark.parametrize("name", sorted(RISKDESK))
def test_commands_are_riskdesk_subcommands(name: str) -> None:
    command = RISKDESK[name]["command"]
    try:
        build_parser().parse_args(command)
    except SystemExit as exc:  # argparse exits on an unknown subcommand or argument
        pytest.fail(f"compose service {name} runs `riskdesk {' '.join(command)}`: exit {exc.code}")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_environment_variables_are_settings(name: str) -> None:
    environment = SERVICES[name].get("environment") or {}
    unknown = {key for key in environment if key.startswith("RISKDESK_")} - KNOWN_VARIABLES
    assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(RISKDESK))
def test_environment_makes_valid_production_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in RISKDESK[name]["environment"].items():
        monkeypatch.setenv(key, _interpolated(str(value)))
    settings = Settings()
    assert settings.environment == "production"
    for service in SERVICE_NAMES:
        # Every service is reached at its compose name and on the port it listens on.
        assert settings.url_of(service) == f"http://{service}:{settings.port_of(service)}"
        assert settings.database_url_of(service).startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in settings.database_url_of(service)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_healthchecks_probe_the_services_own_readyz(service: str) -> None:
    probe = " ".join(SERVICES[service]["healthcheck"]["test"])
    assert f"127.0.0.1:{Settings().port_of(service)}/readyz" in probe


def test_only_the_gateway_and_temporal_ui_publish_ports() -> None:
    published = {name for name, s in SERVICES.items() if s.get("ports")}
    assert published == {"gateway", "temporal-ui"}
    assert SERVICES["gateway"]["ports"] == [f"{Settings().gateway_port}:{Settings().gateway_port}"]


def test_depends_on_names_defined_services_with_conditions() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in SERVICES.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in conditions
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"
            if rule["condition"] == "service_completed_successfully":
                assert SERVICES[dependency].get("restart", "no") == "no", dependency


def test_start_order_migrates_first_and_registers_search_attributes_before_the_worker() -> None:
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in RISKDESK.keys() - {"migrate"}:
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    gateway_needs = SERVICES["gateway"]["depends_on"]
    for service in set(SERVICE_NAMES) - {"gateway"}:
        assert gateway_needs[service]["condition"] == "service_healthy"
    worker_needs = SERVICES["worker"]["depends_on"]
    assert worker_needs["temporal-setup"]["condition"] == "service_completed_successfully"


def test_temporal_runs_on_the_compose_postgresql() -> None:
    temporal = SERVICES["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgres"
    assert temporal["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert RISKDESK["worker"]["environment"]["RISKDESK_TEMPORAL_ADDRESS"] == "temporal:7233"


def test_search_attribute_script_registers_what_the_workflows_set() -> None:
    script = (INFRA / "temporal" / "register-search-attributes.sh").read_text()
    loop = re.search(r"for name in ([^;]+);", script)
    assert loop is not None
    assert set(loop.group(1).split()) == {key.name for key in ALL_KEYWORDS}
    assert "--type Keyword" in script
    setup = SERVICES["temporal-setup"]
    assert (
        setup["environment"]["TEMPORAL_NAMESPACE"]
        == (RISKDESK["worker"]["environment"]["RISKDESK_TEMPORAL_NAMESPACE"])
    )
    assert "register-search-attributes.sh" in " ".join(setup["entrypoint"])


def test_temporal_versions_match_the_helm_values() -> None:
    """compose and the Kubernetes cluster run the same Temporal server, UI and admin tools."""
    values = temporal_values()
    tag = lambda image: image.rpartition(":")[2]  # noqa: E731
    assert tag(SERVICES["temporal"]["image"]) == values["server"]["image"]["tag"]
    assert tag(SERVICES["temporal-ui"]["image"]) == values["web"]["image"]["tag"]
    assert tag(SERVICES["temporal-setup"]["image"]) == values["admintools"]["image"]["tag"]


def test_dynamic_config_mounted_in_compose_matches_the_helm_values() -> None:
    mounted = yaml.safe_load((INFRA / "temporal/dynamicconfig/riskdesk.yaml").read_text())
    assert mounted == temporal_values()["server"]["dynamicConfig"]
    path = SERVICES["temporal"]["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert path == "config/dynamicconfig/riskdesk.yaml"
