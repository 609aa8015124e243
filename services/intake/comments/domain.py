"""Pure rules of comments: who writes and sees which visibility, and what a comment sets off."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.common.errors import Forbidden
from services.common.identity import Identity, Role
from services.intake.domain import Action, RequestStatus, field_error


class Visibility(StrEnum):
    """`public`: the requesting team sees it; `internal`: staff only (never shown to partners)."""

    PUBLIC = "public"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class CommentEffects:
    """What a new comment does besides being stored."""

    first_response: bool = False
    action: Action | None = None


def sees_internal(caller: Identity) -> bool:
    """Only staff see internal comments (partners and approvers do not, not even their count)."""
    return caller.is_staff


def plan_comment(
    *,
    caller: Identity,
    visibility: Visibility,
    asks_requester: bool,
    status: RequestStatus,
    first_response_at_known: bool,
) -> CommentEffects:
    """Check a caller may write this comment and work out its effects.

    A staff public comment is the first response (once). With `asks_requester` it also performs
    `request_info` (waiting_on_requester). A partner's public comment while the request waits on
    them performs `provide_info`.
    """
    if not (caller.is_staff or caller.role is Role.PARTNER):
        raise Forbidden(f"The role {caller.role.value} may not comment on requests.")
    if visibility is Visibility.INTERNAL and not caller.is_staff:
        raise Forbidden("Only staff write internal comments.")
    if asks_requester and visibility is not Visibility.PUBLIC:
        raise field_error(
            "asks_requester",
            "A question to the requester must be a public comment.",
            code="invalid",
        )
    if asks_requester and not caller.is_staff:
        raise Forbidden("Only staff ask the requester a question.")
    public = visibility is Visibility.PUBLIC
    action = None
    if asks_requester:
        action = Action.REQUEST_INFO
    elif public and caller.role is Role.PARTNER and status is RequestStatus.WAITING_ON_REQUESTER:
        action = Action.PROVIDE_INFO
    return CommentEffects(
        first_response=public and caller.is_staff and not first_response_at_known, action=action
    )
