"""Key endpoints: admins make, list and revoke keys; any key can ask who it is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from services.common.errors import PROBLEM_RESPONSES, Problem
from services.common.identity import Role
from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT
from services.gateway.auth import AdminKey, CurrentKey
from services.gateway.keys import service
from services.gateway.keys.schemas import KeyCreate, KeyCreated, KeyPage, KeyRead, MeRead
from services.gateway.runtime import RuntimeDep, SessionDep

RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    429: {"model": Problem, "description": "Too many calls with this key; see `Retry-After`"},
}

router = APIRouter(prefix="/api/v1", responses=RESPONSES)

KeyIdPath = Annotated[str, Path(description="The key's public id.", max_length=64)]


@router.post(
    "/keys",
    status_code=201,
    tags=["keys"],
    summary="Create an API key (admin)",
)
async def create_key(
    body: KeyCreate, admin: AdminKey, session: SessionDep, response: Response
) -> KeyCreated:
    """Make a key for a team and role. The plaintext key is in this response only: store it now.

    `Idempotency-Key` is deliberately not honoured here: replaying the response would mean
    storing the plaintext key; a retry makes a second key, and the spare one can be revoked.
    """
    key, plaintext = await service.create_key(
        session,
        team=body.team,
        role=Role(body.role),
        name=body.name,
        expires_at=body.expires_at,
        created_by=admin.id,
    )
    await session.commit()
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated(**KeyRead.from_key(key).model_dump(), key=plaintext)


@router.get("/keys", tags=["keys"], summary="List API keys (admin)")
async def list_keys(
    _admin: AdminKey,
    session: SessionDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    team: Annotated[str | None, Query(description="Only this team's keys.")] = None,
) -> KeyPage:
    """Keys newest first, revoked and expired ones included; secrets are never returned."""
    keys, next_cursor = await service.list_keys(session, cursor=cursor, limit=limit, team=team)
    return KeyPage(items=[KeyRead.from_key(key) for key in keys], next_cursor=next_cursor)


@router.post("/keys/{key_id}/revoke", tags=["keys"], summary="Revoke an API key (admin)")
async def revoke_key(
    key_id: KeyIdPath, _admin: AdminKey, session: SessionDep, runtime: RuntimeDep
) -> KeyRead:
    """Stop a key from working, for good. Revoking a revoked key changes nothing.

    The last active admin key cannot be revoked (409): create another admin key first.
    """
    key = await service.revoke_key(session, key_id=key_id)
    await session.commit()
    runtime.authenticator.forget(key.id)
    return KeyRead.from_key(key)


@router.get("/me", tags=["keys"], summary="The key making this call")
async def me(key: CurrentKey) -> MeRead:
    """The calling key's id, name, team and role (any valid key may ask)."""
    return MeRead(
        id=key.id, name=key.name, team=key.team, role=key.role.value, expires_at=key.expires_at
    )
