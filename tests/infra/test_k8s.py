"""infra/k8s renders (base, dev, prod), validates against the Kubernetes schemas, and agrees with the code.

The schemas come from the `kubernetes-validate` package (no cluster, no kubectl); the
kustomize build is tests/infra/kustomize.py.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest

from riskdesk.cli import build_parser, migrate
from services.common.settings import SERVICE_NAMES, Settings
from tests.infra import kustomize
from tests.infra.manifests import (
    IMAGE_UID,
    K8S_TREES,
    KNOWN_VARIABLES,
    ROOT,
    SECRET_KEYS,
    SECRET_NAME,
    compose,
    find,
    rendered,
    temporal_values,
)
from workflows.search_attributes import ALL_KEYWORDS

TREES = sorted(K8S_TREES)
# The oldest Kubernetes minor the manifests promise to work on, and the newest schemas shipped.
K8S_VERSIONS = ("1.29.0", f"{kubernetes_validate.latest_version()}.0")
DEPLOYMENTS = (*SERVICE_NAMES, "worker")
PRE_DEPLOY = {"riskdesk.dev/stage": "pre-deploy"}


def _all(tree: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in rendered(tree) if r["kind"] == kind]


def _is_riskdesk(container: dict[str, Any]) -> bool:
    return bool(container["image"].rpartition("/")[2].partition(":")[0] == "riskdesk")


def _riskdesk_containers(tree: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (resource, container)
        for resource in rendered(tree)
        for container in kustomize.pod_containers(resource)
        if _is_riskdesk(container)
    ]


def _container(tree: str, deployment: str) -> dict[str, Any]:
    containers = find(tree, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("tree", TREES)
def test_every_rendered_manifest_validates_against_the_kubernetes_schema(
    tree: str, version: str
) -> None:
    resources = rendered(tree)
    assert resources
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{tree}: {kind}/{name} is invalid on Kubernetes {version}: {error}")


def test_the_validator_catches_a_broken_manifest() -> None:
    """Strict validation is not vacuous: an unknown field and a wrong type are refused."""
    deployment = find("base", "Deployment", "intake")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    wrong_port = {**deployment, "spec": {**deployment["spec"], "minReadySeconds": "ten"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_port, K8S_VERSIONS[0], strict=True)


def test_the_renderer_refuses_features_it_does_not_model(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: []\nconfigMapGenerator: []\n"
    )
    with pytest.raises(kustomize.KustomizeError, match="configMapGenerator"):
        kustomize.build(tmp_path)


@pytest.mark.parametrize("tree", TREES)
def test_every_process_runs_a_cli_command(tree: str) -> None:
    commands = {}
    for resource, container in _riskdesk_containers(tree):
        args = container["args"]
        try:
            build_parser().parse_args(args)
        except SystemExit as exc:
            pytest.fail(f"{resource['metadata']['name']} runs `riskdesk {' '.join(args)}`: {exc}")
        commands[resource["metadata"]["name"]] = tuple(args)
        assert "command" not in container, "the image's ENTRYPOINT (riskdesk) must stay"
    assert commands == {
        **{service: ("serve", service) for service in SERVICE_NAMES},
        "worker": ("worker",),
        "riskdesk-migrate": ("migrate",),
    }


@pytest.mark.parametrize("tree", TREES)
def test_environment_variables_are_settings(tree: str) -> None:
    config = find(tree, "ConfigMap", "riskdesk-config")
    assert set(config["data"]) <= KNOWN_VARIABLES, set(config["data"]) - KNOWN_VARIABLES
    for resource, container in _riskdesk_containers(tree):
        names = {variable["name"] for variable in container.get("env", [])}
        unknown = names - KNOWN_VARIABLES
        assert not unknown, f"{resource['metadata']['name']} sets unknown {sorted(unknown)}"
        sources = [source["configMapRef"]["name"] for source in container["envFrom"]]
        assert sources == ["riskdesk-config"]


@pytest.mark.parametrize("tree", TREES)
def test_secrets_are_referenced_never_inlined(tree: str) -> None:
    assert not _all(tree, "Secret"), "the Secret is created out of band, never committed"
    for resource in rendered(tree):
        for container in kustomize.pod_containers(resource):
            for variable in container.get("env", []):
                secretish = re.search(r"SECRET|PASSWORD|DATABASE_URL|KEY$", variable["name"])
                if secretish:
                    assert "value" not in variable, f"{variable['name']} is inlined"
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    assert reference["name"] == SECRET_NAME
                    assert reference["key"] in SECRET_KEYS
    config = find(tree, "ConfigMap", "riskdesk-config")["data"]
    assert not any(re.search(r"SECRET|PASSWORD|DATABASE_URL", key) for key in config)


def test_readme_tells_how_to_create_the_secret_with_its_keys() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(rf"create secret generic {SECRET_NAME}(.*?)\n\s*\n", readme, re.S)
    assert command is not None, "README.md must show how to create the Secret"
    assert {f"--from-literal={key}=" for key in SECRET_KEYS} <= set(
        re.findall(r"--from-literal=[a-z-]+=", command.group(1))
    )


@pytest.mark.parametrize("tree", TREES)
def test_config_map_references_exist(tree: str) -> None:
    for resource in rendered(tree):
        for container in kustomize.pod_containers(resource):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("configMapKeyRef")
                if reference:
                    data = find(tree, "ConfigMap", reference["name"])["data"]
                    assert reference["key"] in data


def _settings_from(tree: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a riskdesk pod of `tree` gets (ConfigMap plus stand-ins for the Secret)."""
    for key, value in find(tree, "ConfigMap", "riskdesk-config")["data"].items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("RISKDESK_IDENTITY_SECRET", "s" * 64)
    monkeypatch.setenv("RISKDESK_DATABASE_URL", "postgresql+asyncpg://riskdesk@db:5432/riskdesk")
    return Settings()


@pytest.mark.parametrize("tree", TREES)
def test_ports_services_and_urls_agree_with_the_settings(
    tree: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from(tree, monkeypatch)
    assert settings.environment == "production"
    assert settings.host == "0.0.0.0"  # reachable from the Service, not only from the pod
    for service in SERVICE_NAMES:
        port = settings.port_of(service)
        (container_port,) = _container(tree, service)["ports"]
        assert container_port == {"name": "http", "containerPort": port, "protocol": "TCP"}
        (service_port,) = find(tree, "Service", service)["spec"]["ports"]
        assert service_port["port"] == port
        assert service_port["targetPort"] == "http"
        assert settings.url_of(service) == f"http://{service}:{port}"
    assert "ports" not in _container(tree, "worker")


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_probes_are_readyz_and_healthz_on_the_http_port(tree: str, service: str) -> None:
    container = _container(tree, service)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


async def test_probe_paths_answer_in_every_service(tmp_path: Path) -> None:
    """GET /healthz is 200 and GET /readyz answers (200, or 503 with its reason) in each app."""
    settings = Settings(
        environment="test", data_dir=tmp_path, temporal_address="127.0.0.1:1", log_json=True
    )
    await _in_thread(migrate, settings)
    for service in SERVICE_NAMES:
        app = importlib.import_module(f"services.{service}.app").create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://probe"
            ) as client,
        ):
            live = await client.get("/healthz")
            ready = await client.get("/readyz")
        assert live.status_code == 200, service
        assert live.json()["status"] == "ok"
        # The services' databases are migrated: ready. The gateway's upstreams are not running
        # here, so it says which are unavailable instead (503), as a probe expects.
        expected = 503 if service == "gateway" else 200
        assert ready.status_code == expected, (service, ready.text)
        assert ready.json()["status"] in {"ok", "unavailable"}


async def _in_thread(function: Any, *args: Any) -> None:
    import asyncio

    await asyncio.to_thread(function, *args)


@pytest.mark.parametrize("tree", TREES)
def test_every_deployment_has_an_hpa_and_a_pdb_that_select_it(tree: str) -> None:
    deployments = {d["metadata"]["name"]: d for d in _all(tree, "Deployment")}
    assert set(deployments) == set(DEPLOYMENTS)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in _all(tree, "HorizontalPodAutoscaler")}
    pdbs = {p["metadata"]["name"]: p for p in _all(tree, "PodDisruptionBudget")}
    for name, deployment in deployments.items():
        # The HPA owns the replica count; a fixed one would fight it on every apply.
        assert "replicas" not in deployment["spec"]
        hpa = hpas[name]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        if name in SERVICE_NAMES:
            service_selector = find(tree, "Service", name)["spec"]["selector"]
            assert service_selector.items() <= pod_labels.items()


def test_production_keeps_every_process_redundant() -> None:
    for hpa in _all("prod", "HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 2, hpa["metadata"]["name"]
    assert find("prod", "HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] >= 3
    assert find("prod", "HorizontalPodAutoscaler", "worker")["spec"]["minReplicas"] >= 3


@pytest.mark.parametrize("tree", TREES)
def test_containers_have_requests_limits_and_run_as_the_image_user(tree: str) -> None:
    for resource in rendered(tree):
        pod = resource["spec"]["template"]["spec"] if kustomize.pod_containers(resource) else None
        if pod is None:
            continue
        for container in kustomize.pod_containers(resource):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert {"cpu", "memory"} <= set(resources["limits"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
        if any(_is_riskdesk(container) for container in pod["containers"]):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == IMAGE_UID
            assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("tree", ["dev", "prod"])
def test_overlays_pin_one_riskdesk_image_and_a_namespace(tree: str) -> None:
    images = {container["image"] for _, container in _riskdesk_containers(tree)}
    assert len(images) == 1
    (image,) = images
    assert ":" in image.rpartition("/")[2], "an overlay pins a tag"
    namespaces = {
        r["metadata"].get("namespace") for r in rendered(tree) if r["kind"] != "Namespace"
    }
    (namespace,) = namespaces
    assert find(tree, "Namespace", namespace)


def test_search_attribute_job_registers_what_the_workflows_set() -> None:
    job = find("base", "Job", "temporal-search-attributes")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    loop = re.search(r"for name in ([^;]+);", container["args"][0])
    assert loop is not None
    assert set(loop.group(1).split()) == {key.name for key in ALL_KEYWORDS}
    image = container["image"]
    values = temporal_values()["admintools"]["image"]
    assert image == f"{values['repository']}:{values['tag']}"
    assert image == compose()["services"]["temporal-setup"]["image"]


def test_temporal_namespace_is_created_by_the_helm_values() -> None:
    namespace = find("base", "ConfigMap", "riskdesk-config")["data"]["RISKDESK_TEMPORAL_NAMESPACE"]
    created = temporal_values()["server"]["config"]["namespaces"]
    assert created["create"] is True
    assert namespace in {entry["name"] for entry in created["namespace"]}
    address = find("base", "ConfigMap", "riskdesk-config")["data"]["RISKDESK_TEMPORAL_ADDRESS"]
    assert address.startswith("temporal-frontend.")  # the chart's frontend Service


@pytest.mark.parametrize("tree", TREES)
def test_the_pre_deploy_stage_holds_everything_the_jobs_need(tree: str) -> None:
    """`kubectl apply -k ... -l riskdesk.dev/stage=pre-deploy` must apply a runnable Job."""
    staged = {
        (r["kind"], r["metadata"]["name"])
        for r in rendered(tree)
        if PRE_DEPLOY.items() <= r["metadata"].get("labels", {}).items()
    }
    for job in _all(tree, "Job"):
        assert ("Job", job["metadata"]["name"]) in staged
        pod = job["spec"]["template"]["spec"]
        assert ("ServiceAccount", pod["serviceAccountName"]) in staged
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in staged
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("configMapKeyRef")
                if reference:
                    assert ("ConfigMap", reference["name"]) in staged
    if tree != "base":
        assert any(kind == "Namespace" for kind, _ in staged)
