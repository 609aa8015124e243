"""One OpenAPI document for the whole public API: the gateway's routes plus every service's.

Each service's `/openapi.json` is fetched with a system identity token and kept after the first
success; a service that was down is asked again on the next request, and until then the document
simply lacks its paths (it lists the service under `x-riskdesk-unavailable`). Only paths the
gateway forwards to a service are taken from it. Components with the same name and the same
definition are shared; a same-named component with another definition is renamed
`<service>_<name>` in that service's part of the document.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import structlog

from services.common.errors import PROBLEM_MEDIA_TYPE, Problem
from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.settings import ServiceName, Settings
from services.gateway.auth import SECURITY_SCHEME, SECURITY_SCHEME_NAME
from services.gateway.routing import resolve

log = structlog.get_logger(__name__)

GATEWAY_IDENTITY = Identity(subject="gateway", team="riskdesk", role=Role.SYSTEM)
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs"})
_REF_PREFIX = "#/components/"
Spec = dict[str, Any]
GATEWAY_PROBLEMS: dict[int, str] = {
    502: "The service behind this operation cannot be reached",
    503: "Not available now (the key store, or the workflow engine a service asks); retry",
    504: "The service behind this operation did not answer in time",
}


class OpenApiAggregator:
    """Fetches, caches and merges the services' OpenAPI documents with the gateway's own."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        upstreams: Mapping[ServiceName, str],
        settings: Settings,
        own_spec: Callable[[], Spec],
    ) -> None:
        self._http = http
        self._upstreams = upstreams
        self._settings = settings
        self._own_spec = own_spec
        self._fetched: dict[ServiceName, Spec] = {}
        self._merged: Spec | None = None
        self._lock = asyncio.Lock()

    async def document(self) -> Spec:
        """The aggregated document (a service that cannot be reached is left out, not an error)."""
        async with self._lock:
            missing = [service for service in self._upstreams if service not in self._fetched]
            if missing or self._merged is None:
                fetched = await asyncio.gather(*(self._fetch(service) for service in missing))
                for service, spec in zip(missing, fetched, strict=True):
                    if spec is not None:
                        self._fetched[service] = spec
                still_missing = [s for s in self._upstreams if s not in self._fetched]
                if self._merged is None or len(still_missing) < len(missing):
                    ordered = {s: self._fetched[s] for s in self._upstreams if s in self._fetched}
                    self._merged = merge_openapi(
                        self._own_spec(), ordered, unavailable=still_missing
                    )
            return self._merged

    async def _fetch(self, service: ServiceName) -> Spec | None:
        token = sign_identity(
            GATEWAY_IDENTITY,
            secret=self._settings.identity_secret,
            ttl_seconds=self._settings.identity_ttl_seconds,
        )
        url = f"{self._upstreams[service]}/openapi.json"
        try:
            response = await self._http.get(
                url,
                headers={IDENTITY_HEADER: token},
                timeout=min(5.0, self._settings.service_timeout_seconds),
            )
            response.raise_for_status()
            spec = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("openapi_fetch_failed", service=service, error=repr(exc))
            return None
        if not isinstance(spec, dict):
            log.warning("openapi_fetch_failed", service=service, error="not an object")
            return None
        return spec


def merge_openapi(
    gateway: Spec, services: Mapping[ServiceName, Spec], *, unavailable: Sequence[str] = ()
) -> Spec:
    """The gateway's document with the forwarded paths and the components of each service added."""
    merged = copy.deepcopy(gateway)
    paths: dict[str, Any] = merged.setdefault("paths", {})
    components: dict[str, dict[str, Any]] = merged.setdefault("components", {})
    tags: list[dict[str, Any]] = merged.get("tags", [])
    for service, spec in services.items():
        own_paths = {
            path: item for path, item in spec.get("paths", {}).items() if resolve(path) == service
        }
        incoming: dict[str, dict[str, Any]] = {
            section: entries
            for section, entries in spec.get("components", {}).items()
            if isinstance(entries, dict) and section != "securitySchemes"
        }
        renames = _plan_renames(components, incoming, service)
        for section, entries in incoming.items():
            target = components.setdefault(section, {})
            for name, definition in entries.items():
                target.setdefault(
                    renames.get(section, {}).get(name, name), _rewrite(definition, renames)
                )
        for path, item in own_paths.items():
            if path in paths:
                log.warning("openapi_path_conflict", path=path, service=service)
                continue
            paths[path] = _rewrite(item, renames)
        known = {tag.get("name") for tag in tags}
        tags.extend(tag for tag in spec.get("tags", []) if tag.get("name") not in known)
    if tags:
        merged["tags"] = tags
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME_NAME] = dict(SECURITY_SCHEME)
    # Every operation needs a key unless it says otherwise; health and docs are open.
    merged["security"] = [{SECURITY_SCHEME_NAME: []}]
    for path in PUBLIC_PATHS & paths.keys():
        for operation in paths[path].values():
            if isinstance(operation, dict):
                operation["security"] = []
    _document_gateway_problems(paths, components)
    if unavailable:
        merged.setdefault("info", {})["x-riskdesk-unavailable"] = list(unavailable)
    return merged


def _document_gateway_problems(
    paths: Mapping[str, Any], components: dict[str, dict[str, Any]]
) -> None:
    """Add the problems the gateway itself answers with to the operations it can answer them on.

    Every keyed operation may get 503 (the key store is unavailable); every forwarded one 502
    (the service cannot be reached) and 504 (it did not answer in time). A service's own 503
    (Temporal unreachable) reaches the caller through the same forwarded operation.
    """
    schemas = components.setdefault("schemas", {})
    schemas.setdefault(
        "Problem", Problem.model_json_schema(ref_template=_REF_PREFIX + "schemas/{model}")
    )
    for path, item in paths.items():
        if path in PUBLIC_PATHS or not isinstance(item, dict):
            continue
        statuses = GATEWAY_PROBLEMS if resolve(path) is not None else {503: GATEWAY_PROBLEMS[503]}
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, description in statuses.items():
                operation["responses"].setdefault(
                    str(status),
                    {
                        "description": description,
                        "content": {
                            PROBLEM_MEDIA_TYPE: {
                                "schema": {"$ref": _REF_PREFIX + "schemas/Problem"}
                            }
                        },
                    },
                )


def _plan_renames(
    existing: Mapping[str, Mapping[str, Any]],
    incoming: Mapping[str, Mapping[str, Any]],
    service: str,
) -> dict[str, dict[str, str]]:
    # Renaming one component changes the refs inside others, which may then differ too: repeat
    # until nothing new needs a rename (names only ever get added, so this ends).
    renames: dict[str, dict[str, str]] = {}
    changed = True
    while changed:
        changed = False
        for section, entries in incoming.items():
            for name, definition in entries.items():
                if name in renames.get(section, {}):
                    continue
                current = existing.get(section, {}).get(name)
                if current is not None and current != _rewrite(definition, renames):
                    renames.setdefault(section, {})[name] = f"{service}_{name}"
                    changed = True
    return renames


def _rewrite(node: Any, renames: Mapping[str, Mapping[str, str]]) -> Any:
    """A copy of `node` whose `$ref`s point at renamed components."""
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
                section, _, name = value[len(_REF_PREFIX) :].partition("/")
                value = _REF_PREFIX + section + "/" + renames.get(section, {}).get(name, name)
                result[key] = value
            else:
                result[key] = _rewrite(value, renames)
        return result
    if isinstance(node, list):
        return [_rewrite(item, renames) for item in node]
    return node
