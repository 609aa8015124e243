"""infra/temporal/values.yaml (Temporal's Helm chart) runs on external PostgreSQL with no inlined secret."""

from __future__ import annotations

from typing import Any

import yaml

from tests.infra.manifests import INFRA, temporal_values

VALUES = temporal_values()


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _walk(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [
            item for index, value in enumerate(node) for item in _walk(value, f"{path}[{index}]")
        ]
    return [(path, node)]


def test_persistence_is_external_postgresql_with_a_referenced_password() -> None:
    persistence = VALUES["server"]["config"]["persistence"]
    databases = set()
    for store in ("default", "visibility"):
        assert persistence[store]["driver"] == "sql"
        sql = persistence[store]["sql"]
        assert sql["driver"] == "postgres12"
        assert sql["existingSecret"], f"{store}: the password comes from a Secret"
        assert "password" not in sql
        databases.add(sql["database"])
    assert databases == {"temporal", "temporal_visibility"}
    for bundled in ("cassandra", "mysql", "postgresql", "elasticsearch", "prometheus", "grafana"):
        assert VALUES[bundled]["enabled"] is False, bundled


def test_no_secret_is_inlined_anywhere() -> None:
    for path, value in _walk(VALUES):
        if path.rsplit(".", 1)[-1].lower() in {"password", "secret", "token"}:
            raise AssertionError(f"{path} is inlined ({value!r})")


def test_history_shards_are_set_once_for_the_scale_notes() -> None:
    shards = VALUES["server"]["config"]["numHistoryShards"]
    # A power of two, and enough that 100k open requests stay a few hundred workflows a shard.
    assert shards >= 512
    assert shards & (shards - 1) == 0


def test_every_server_role_is_redundant_where_it_matters() -> None:
    server = VALUES["server"]
    for role in ("frontend", "history", "matching"):
        assert server[role]["replicaCount"] >= 2, role
        assert server[role]["resources"]["requests"], role
        assert server[role]["podDisruptionBudget"]["maxUnavailable"] == 1


def test_dynamic_config_matches_the_compose_server() -> None:
    mounted = yaml.safe_load((INFRA / "temporal/dynamicconfig/riskdesk.yaml").read_text())
    assert VALUES["server"]["dynamicConfig"] == mounted
