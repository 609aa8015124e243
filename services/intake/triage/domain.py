"""Pure rules of request types and of editing a request: field kinds, `details` validation, and who
may edit which field. No I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from services.common.errors import ValidationFailed
from services.common.identity import Role

MAX_DETAIL_STRING = 2000


class FieldKind(StrEnum):
    """What a `details` value must be."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One extra field of a request type."""

    name: str
    kind: FieldKind
    required: bool = False
    description: str = ""


# Fields of PATCH /requests/{id}: partners (own team) may edit what they described; staff
# everything, including triage (priority) and assignment.
PARTNER_EDITABLE = frozenset(
    {
        "title",
        "description",
        "marketplace",
        "impact",
        "external_refs",
        "tags",
        "urgency",
        "due_at",
        "details",
    }
)
STAFF_EDITABLE = PARTNER_EDITABLE | {"priority", "assignee", "queue"}
# Fields whose change re-scores the request.
SCORED_FIELDS = frozenset({"impact", "urgency", "due_at"})


def editable_fields(role: Role) -> frozenset[str]:
    """The fields this role may change with PATCH (own team only for a partner)."""
    if role is Role.PARTNER:
        return PARTNER_EDITABLE
    if role in (Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM):
        return STAFF_EDITABLE
    return frozenset()


def details_errors(
    specs: Sequence[FieldSpec], details: Mapping[str, Any], *, field: str = "body.details"
) -> list[dict[str, str]]:
    """Field errors of `details` against a type's specs (empty when valid).

    Unknown names are refused like any unknown body field: a typo must not be dropped silently.
    """
    known = {spec.name: spec for spec in specs}
    errors = [
        {
            "field": f"{field}.{name}",
            "message": "not a field of this request type",
            "code": "unexpected",
        }
        for name in details
        if name not in known
    ]
    for spec in specs:
        value = details.get(spec.name)
        if value is None:
            if spec.required:
                errors.append(
                    {"field": f"{field}.{spec.name}", "message": "is required", "code": "missing"}
                )
            continue
        problem = _kind_problem(spec.kind, value)
        if problem is not None:
            errors.append({"field": f"{field}.{spec.name}", "message": problem, "code": "invalid"})
    return errors


def check_details(specs: Sequence[FieldSpec], details: Mapping[str, Any]) -> None:
    """Raise a 422 naming every bad `details` field."""
    errors = details_errors(specs, details)
    if errors:
        names = ", ".join(e["field"].removeprefix("body.") for e in errors)
        raise ValidationFailed(f"Invalid details for this request type: {names}.", errors=errors)


def _kind_problem(kind: FieldKind, value: object) -> str | None:
    # bool is an int in Python: refuse it wherever a number is expected.
    if kind is FieldKind.STRING:
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if len(value) > MAX_DETAIL_STRING or "\x00" in value:
            return f"must be at most {MAX_DETAIL_STRING} characters, without NUL"
        return None
    if kind is FieldKind.INTEGER:
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
        return None if ok else "must be an integer"
    if kind is FieldKind.NUMBER:
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and abs(value) < 1e300
        )
        return None if ok else "must be a number"
    if kind is FieldKind.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, str):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if len(value) == 10:
                return None
    return "must be a date, YYYY-MM-DD"
