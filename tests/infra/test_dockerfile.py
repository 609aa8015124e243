"""The Dockerfile builds one non-root image whose entry point is the `riskdesk` CLI."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib

from riskdesk.cli import build_parser
from services.common.settings import SERVICE_NAMES, Settings
from tests.infra.manifests import IMAGE_UID, KNOWN_VARIABLES, ROOT, dockerfile_stages

STAGES = dockerfile_stages()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILD_TOOLS = re.compile(r"apt-get install|build-essential|\bgcc\b|\bmake\b|pip install")


def _final() -> list[str]:
    return list(STAGES.values())[-1]


def _instruction(stage: list[str], name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in stage if line.split(None, 1)[0].upper() == name]


def test_multi_stage_with_build_tools_only_in_the_build_stage() -> None:
    names = [name for name in STAGES if name]
    assert names == ["build", "runtime"]
    assert any(BUILD_TOOLS.search(line) for line in STAGES["build"])
    offending = [line for line in _final() if BUILD_TOOLS.search(line)]
    assert not offending, offending
    # The runtime stage takes only the virtualenv from the build stage, and drops pip itself.
    assert _instruction(_final(), "COPY") == ["--from=build /opt/riskdesk /opt/riskdesk"]
    assert any("pip uninstall -y pip" in line for line in _final())


def test_runs_as_a_numeric_non_root_user() -> None:
    (user,) = _instruction(_final(), "USER")
    uid, _, gid = user.partition(":")
    assert int(uid) == IMAGE_UID != 0
    assert int(gid) != 0


def test_entrypoint_is_the_riskdesk_console_script() -> None:
    (entrypoint,) = _instruction(_final(), "ENTRYPOINT")
    assert json.loads(entrypoint) == ["riskdesk"]
    assert PYPROJECT["project"]["scripts"]["riskdesk"] == "riskdesk.cli:main"
    (default,) = _instruction(_final(), "CMD")
    assert json.loads(default) == ["--help"]


def test_the_commands_in_the_header_are_the_clis() -> None:
    (header,) = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("#   serve gateway |")
    ]
    commands = [part.strip() for part in header.lstrip("# ").split("|")]
    assert len(commands) == len(SERVICE_NAMES) + 3
    for command in commands:
        words = command.split()
        if words == ["keys", "..."]:
            words = ["keys", "revoke", "some-id"]
        build_parser().parse_args(words)


def test_exposed_ports_are_the_services() -> None:
    (exposed,) = _instruction(_final(), "EXPOSE")
    settings = Settings()
    assert sorted(int(port) for port in exposed.split()) == sorted(
        settings.port_of(service) for service in SERVICE_NAMES
    )


def test_variables_set_in_the_image_are_settings() -> None:
    text = "\n".join(_final())
    variables = set(re.findall(r"\b(RISKDESK_[A-Z_]+)=", text))
    assert variables
    assert variables <= KNOWN_VARIABLES


def test_the_image_holds_every_package_and_only_runtime_dependencies() -> None:
    copied = {
        source for line in _instruction(STAGES["build"], "COPY") for source in line.split()[:-1]
    }
    packages = {
        pattern.rstrip("*")
        for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied
    assert {"requirements.lock", "pyproject.toml"} <= copied
    install = " ".join(STAGES["build"])
    assert "['project']['dependencies']" in install, "dev tools stay out of the image"
    assert "-c requirements.lock" in install


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = {
        source
        for line in _instruction(STAGES["build"], "COPY")
        for source in line.split()[:-1]
        if not source.startswith("--")
    }
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), source
    for secret_or_state in (".git", ".venv", ".riskdesk", ".env", "tests"):
        assert secret_or_state in patterns


def test_the_image_installs_the_ai_extra_with_cpu_torch() -> None:
    install = " ".join(STAGES["build"])
    assert "requirements-ai.lock" in {
        source for line in _instruction(STAGES["build"], "COPY") for source in line.split()[:-1]
    }
    assert "-r requirements-ai.lock" in install
    assert "download.pytorch.org/whl/cpu" in install, "PyPI's torch is a multi-GB CUDA build"
    ai_pins = [
        line.lower()
        for line in (ROOT / "requirements-ai.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert "torch==2.13.0+cpu" in ai_pins
    assert not [pin for pin in ai_pins if pin.startswith("nvidia")]
