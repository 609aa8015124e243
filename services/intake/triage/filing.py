"""Triage at filing time: `details` checked against the type, the request scored, priority
proposed. Imported by services/intake/service.py (create_request), so it imports no service module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Request
from services.intake.schemas import RequestCreate
from services.intake.triage.domain import FieldKind, FieldSpec, check_details
from services.intake.triage.models import RequestTypeConfig
from services.intake.triage.scoring import Score, ScoreInput, Urgency, score_request


async def field_specs(session: AsyncSession, *, request_type: str) -> list[FieldSpec]:
    """The extra fields a type takes (none if it has no configuration)."""
    row = await session.get(RequestTypeConfig, request_type)
    if row is None:
        return []
    return [
        FieldSpec(
            name=spec["name"],
            kind=FieldKind(spec["kind"]),
            required=bool(spec.get("required", False)),
            description=str(spec.get("description", "")),
        )
        for spec in row.fields
    ]


def score_of(request: Request, *, now: datetime) -> Score:
    """The matrix's score of a request as it stands."""
    return score_request(
        ScoreInput(
            accounts_affected=request.impact_accounts_affected,
            money_at_risk_per_week=request.impact_money_at_risk_per_week,
            urgency=Urgency(request.urgency) if request.urgency else None,
            due_at=request.due_at,
        ),
        now=now,
    )


async def triage_on_filing(
    session: AsyncSession, *, request: Request, data: RequestCreate
) -> dict[str, Any]:
    """Check `details` against the type, score the new request, and propose its priority.

    The proposed priority becomes the priority unless the filer gave one. Returns what the
    `created` event records about it.
    """
    check_details(await field_specs(session, request_type=request.request_type), data.details)
    request.details = dict(data.details)
    request.urgency = data.urgency.value if data.urgency else None
    score = score_of(request, now=request.created_at)
    request.priority_score = score.score
    request.proposed_priority = score.proposed_priority.value
    if "priority" not in data.model_fields_set:
        request.priority = score.proposed_priority.value
    return score.as_event_data()
