"""What the infra tests read: the compose file, the Dockerfile, the rendered k8s trees, the
Temporal Helm values, and what the code says a setting is."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from services.common.settings import SERVICE_NAMES, Settings
from tests.infra import kustomize

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S_TREES = {
    "base": INFRA / "k8s" / "base",
    "dev": INFRA / "k8s" / "overlays" / "dev",
    "prod": INFRA / "k8s" / "overlays" / "prod",
}
# The one Secret the manifests reference (created out of band, see README.md) and its keys.
SECRET_NAME = "riskdesk-secrets"
SECRET_KEYS = {"identity-secret", "database-url", "secrets-key"}
# What the container image runs as (Dockerfile USER) and what Kubernetes enforces.
IMAGE_UID = 10001

# Settings fields, plus the per-service overrides that settings.py reads from the environment.
KNOWN_VARIABLES = frozenset(
    {f"RISKDESK_{field.upper()}" for field in Settings.model_fields}
    | {
        f"RISKDESK_{service.upper()}_{suffix}"
        for service in SERVICE_NAMES
        for suffix in ("URL", "DATABASE_URL")
    }
)


def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed (YAML merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@cache
def rendered(tree: str) -> tuple[dict[str, Any], ...]:
    """The resources of one kustomize tree (base, dev or prod), as `kustomize build` gives them."""
    return tuple(kustomize.build(K8S_TREES[tree]))


def find(tree: str, kind: str, name: str) -> dict[str, Any]:
    """One rendered resource by kind and name."""
    for resource in rendered(tree):
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise LookupError(f"{tree}: no {kind}/{name}")


def temporal_values() -> dict[str, Any]:
    """infra/temporal/values.yaml (the Temporal Helm chart's values)."""
    loaded: dict[str, Any] = yaml.safe_load((INFRA / "temporal" / "values.yaml").read_text())
    return loaded


def dockerfile_stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions per stage name (continuation lines joined)."""
    lines: list[str] = []
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if lines and lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1].rstrip() + " " + line
        else:
            lines.append(line)
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in lines:
        if line.upper().startswith("FROM "):
            words = line.split()
            current = words[3] if len(words) >= 4 and words[2].upper() == "AS" else str(len(stages))
            stages[current] = []
        stages[current].append(line)
    return stages
