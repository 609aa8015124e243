"""Who may see and change what: loading an escalation with the caller's visibility applied."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import Forbidden, InvalidTransition, NotFound
from services.common.identity import Identity
from services.escalation.domain import EscalationStatus
from services.escalation.models import Escalation


async def get_escalation(
    session: AsyncSession, *, caller: Identity, escalation_id: int, for_update: bool = False
) -> Escalation:
    """An escalation the caller may see; 404 if missing or another team's (for a partner).

    `for_update` re-reads the row, so a change committed since the session's last read is seen.
    """
    escalation = await session.get(Escalation, escalation_id, populate_existing=for_update)
    if escalation is None or not caller.can_see_team(escalation.team):
        raise NotFound(f"Escalation {escalation_id} was not found.")
    return escalation


def require_staff(caller: Identity, what: str) -> None:
    """403 unless the caller is staff (partners and approvers only read)."""
    if not caller.is_staff:
        raise Forbidden(f"The role {caller.role.value} may not {what}.")


def require_not_closed(escalation: Escalation, what: str) -> None:
    """409 once the escalation is closed (terminal)."""
    if escalation.status == EscalationStatus.CLOSED.value:
        raise InvalidTransition(
            f"Escalation {escalation.id} is closed; {what}.",
            current=escalation.status,
            allowed=[],
        )
