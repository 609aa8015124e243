"""A small, strict `kustomize build` for infra/k8s, so the tests need no kustomize binary.

It renders exactly the subset of kustomize the manifests use — `resources` (files and
directories), `namespace`, `images` and `patches` given as JSON 6902 operations with a target of
`kind` and an optional `name` regular expression — and refuses any other kustomization field, so
a manifest that starts using another feature fails the tests until this renderer models it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
SUPPORTED_OPS = {"add", "replace", "remove"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}

Resource = dict[str, Any]


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not model, or is inconsistent."""


def build(directory: Path) -> list[Resource]:
    """The resources of the kustomization in `directory`, transformed as kustomize would."""
    kustomization = load_kustomization(directory)
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources += build(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, resources)
    for image in kustomization.get("images", []):
        _set_image(image, resources)
    namespace = kustomization.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource.setdefault("metadata", {})["namespace"] = namespace
    _refuse_duplicates(resources)
    return resources


def load_kustomization(directory: Path) -> dict[str, Any]:
    """The kustomization.yaml of `directory`, checked against the supported subset."""
    kustomization: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    if kustomization.get("kind") != "Kustomization":
        raise KustomizeError(f"{directory}: not a Kustomization")
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: fields this renderer does not model: {sorted(unknown)}")
    return kustomization


def pod_containers(resource: Resource) -> list[dict[str, Any]]:
    """Containers and init containers of a Deployment's or Job's pod template (else none)."""
    if resource["kind"] not in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return []
    spec = resource["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = spec.get("containers", []) + spec.get("initContainers", [])
    return containers


def _apply_patch(directory: Path, patch: dict[str, Any], resources: list[Resource]) -> None:
    if set(patch) != {"path", "target"}:
        raise KustomizeError(f"only file patches with a target are modelled: {patch}")
    target = patch["target"]
    if set(target) - {"kind", "name"}:
        raise KustomizeError(f"targets select by kind and name only: {target}")
    operations = yaml.safe_load((directory / patch["path"]).read_text())
    matched = [
        resource
        for resource in resources
        if resource["kind"] == target["kind"]
        and ("name" not in target or re.fullmatch(target["name"], resource["metadata"]["name"]))
    ]
    if not matched:
        raise KustomizeError(f"patch {patch['path']} matches no resource")
    for resource in matched:
        for operation in operations:
            _apply_operation(resource, operation, patch["path"])


def _apply_operation(resource: Resource, operation: dict[str, Any], source: str) -> None:
    op = operation["op"]
    if op not in SUPPORTED_OPS:
        raise KustomizeError(f"{source}: JSON patch op {op!r} is not modelled")
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"][1:].split("/")
    ]
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    where = f"{source}: {operation['path']} in {resource['kind']}/{resource['metadata']['name']}"
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        else:
            del node[index]
        return
    if op in {"replace", "remove"} and last not in node:
        # JSON 6902: replacing or removing a missing member is an error (kustomize fails too).
        raise KustomizeError(f"{where}: no such member to {op}")
    if op == "remove":
        del node[last]
    else:
        node[last] = copy.deepcopy(operation["value"])


def _set_image(image: dict[str, Any], resources: list[Resource]) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise KustomizeError(f"images support name, newName and newTag only: {image}")
    for resource in resources:
        for container in pod_containers(resource):
            name, _, tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            new_tag = image.get("newTag", tag)
            container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")


def _refuse_duplicates(resources: list[Resource]) -> None:
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        key = (resource["kind"], resource["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{key[0]}/{key[1]} is defined twice")
        seen.add(key)
