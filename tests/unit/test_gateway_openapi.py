"""Merging the services' OpenAPI documents into the gateway's (a pure function)."""

from __future__ import annotations

from typing import Any

from services.gateway.openapi import merge_openapi

PROBLEM = {"type": "object", "properties": {"type": {"type": "string"}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(schema_name: str) -> dict[str, Any]:
    return {
        "get": {
            "responses": {
                "200": {"content": {"application/json": {"schema": ref(schema_name)}}},
                "404": {"content": {"application/problem+json": {"schema": ref("Problem")}}},
            }
        }
    }


GATEWAY: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "riskdesk API", "version": "0.1.0"},
    "paths": {"/api/v1/keys": operation("KeyRead"), "/healthz": {"get": {"responses": {}}}},
    "components": {
        "schemas": {"KeyRead": {"type": "object"}, "Problem": PROBLEM, "Status": {"enum": ["a"]}},
        "securitySchemes": {"ApiKey": {"type": "http", "scheme": "bearer"}},
    },
    "tags": [{"name": "keys"}],
}


def service(
    paths: dict[str, Any], schemas: dict[str, Any], tags: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "paths": paths,
        "components": {"schemas": schemas},
        "tags": [{"name": tag} for tag in tags],
    }


def test_paths_and_identical_components_merge() -> None:
    intake = service(
        {
            "/api/v1/requests": operation("RequestRead"),
            "/api/v1/requests/{request_id}": operation("RequestRead"),
            "/healthz": {"get": {"summary": "intake liveness"}},
            "/api/v1/escalations": operation("RequestRead"),
        },
        {
            "RequestRead": {"type": "object", "properties": {"status": ref("Status")}},
            "Problem": PROBLEM,
            "Status": {"enum": ["a"]},
        },
        tags=("requests", "keys"),
    )
    merged = merge_openapi(GATEWAY, {"intake": intake})
    assert set(merged["paths"]) == {
        "/api/v1/keys",
        "/healthz",
        "/api/v1/requests",
        "/api/v1/requests/{request_id}",
    }
    # Health of the service is not public; a path of another service is not taken from intake.
    assert merged["paths"]["/healthz"] == {"get": {"responses": {}, "security": []}}
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"KeyRead", "Problem", "Status", "RequestRead"}
    assert merged["paths"]["/api/v1/requests"]["get"]["responses"]["404"]["content"][
        "application/problem+json"
    ]["schema"] == ref("Problem")
    assert [tag["name"] for tag in merged["tags"]] == ["keys", "requests"]
    assert merged["security"] == [{"ApiKey": []}]
    assert merged["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "x-riskdesk-unavailable" not in merged["info"]
    # The input is left alone.
    assert "/api/v1/requests" not in GATEWAY["paths"]


def test_conflicting_components_are_renamed_with_their_refs() -> None:
    sop = service(
        {"/api/v1/sops": operation("Holder")},
        {
            "Status": {"enum": ["draft", "approved"]},  # differs from the gateway's Status
            "Holder": {"properties": {"status": ref("Status")}},
            "Page": {"items": ref("Holder")},  # depends on a renamed one only through Holder
        },
    )
    merged = merge_openapi(
        {
            **GATEWAY,
            "components": {
                **GATEWAY["components"],
                "schemas": {
                    **GATEWAY["components"]["schemas"],
                    "Holder": {"properties": {"status": ref("Status")}},
                    "Page": {"items": ref("Holder")},
                },
            },
        },
        {"sop": sop},
    )
    schemas = merged["components"]["schemas"]
    assert schemas["Status"] == {"enum": ["a"]}
    assert schemas["sop_Status"] == {"enum": ["draft", "approved"]}
    # Holder looked identical but points at a renamed schema, so it is renamed too, and so is Page.
    assert schemas["sop_Holder"] == {"properties": {"status": ref("sop_Status")}}
    assert schemas["sop_Page"] == {"items": ref("sop_Holder")}
    assert schemas["Holder"] == {"properties": {"status": ref("Status")}}
    assert merged["paths"]["/api/v1/sops"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] == ref("sop_Holder")


def test_two_services_with_the_same_name_for_different_things() -> None:
    intake = service({"/api/v1/requests": operation("Item")}, {"Item": {"title": "request"}})
    escalation = service(
        {"/api/v1/escalations": operation("Item")}, {"Item": {"title": "escalation"}}
    )
    merged = merge_openapi(GATEWAY, {"intake": intake, "escalation": escalation})
    schemas = merged["components"]["schemas"]
    assert schemas["Item"] == {"title": "request"}
    assert schemas["escalation_Item"] == {"title": "escalation"}
    assert merged["paths"]["/api/v1/escalations"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"] == ref("escalation_Item")


def test_unavailable_services_are_listed() -> None:
    merged = merge_openapi(GATEWAY, {}, unavailable=["sop"])
    assert merged["info"]["x-riskdesk-unavailable"] == ["sop"]
    assert set(merged["paths"]) == {"/api/v1/keys", "/healthz"}
