"""Use cases of the person directory: read, list, create or replace an entry.

Keyword-only functions taking the request's AsyncSession; they raise DomainErrors and commit.
Program managers and admins write; staff read (partners and approvers see no one).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from services.common.identity import Identity, Role
from services.common.pagination import decode_cursor, encode_cursor
from services.escalation.domain import field_error
from services.escalation.people.models import Person
from services.escalation.people.schemas import PersonPage, PersonPut, PersonRead

PEOPLE_PATH = "/api/v1/people"
DIRECTORY_WRITERS = frozenset({Role.PROGRAM_MANAGER, Role.ADMIN})


def person_path(handle: str) -> str:
    """The URL path of one directory entry."""
    return f"{PEOPLE_PATH}/{handle}"


def to_read(person: Person) -> PersonRead:
    """The API view of a person row."""
    return PersonRead.model_validate(person)


def require_reader(caller: Identity) -> None:
    """403 unless the caller is staff: the directory names people and their e-mail addresses."""
    if not caller.is_staff:
        raise Forbidden(f"The role {caller.role.value} may not read the person directory.")


async def get(session: AsyncSession, *, handle: str) -> Person | None:
    """The entry of `handle`, if any (no access check: for the service's own rules)."""
    return await session.get(Person, handle)


async def get_or_raise(session: AsyncSession, *, caller: Identity, handle: str) -> Person:
    """The entry of `handle` for a staff caller; 404 when there is none."""
    require_reader(caller)
    person = await get(session, handle=handle)
    if person is None:
        raise NotFound(f"There is no person {handle!r} in the directory.")
    return person


async def get_all(
    session: AsyncSession,
    *,
    caller: Identity,
    manager: str | None,
    cursor: str | None,
    limit: int,
) -> PersonPage:
    """Entries by handle (optionally one manager's reports), one page at a time."""
    require_reader(caller)
    query = select(Person)
    if manager is not None:
        query = query.where(Person.manager_handle == manager)
    if cursor is not None:
        after = decode_cursor(cursor, required=("h",))["h"]
        if not isinstance(after, str):
            raise field_error("cursor", "The cursor is not one this list returned.", code="invalid")
        query = query.where(Person.handle > after)
    rows = list((await session.execute(query.order_by(Person.handle).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"h": rows[limit - 1].handle}) if len(rows) > limit else None
    return PersonPage(items=[to_read(row) for row in rows[:limit]], next_cursor=next_cursor)


async def put(
    session: AsyncSession,
    *,
    caller: Identity,
    handle: str,
    data: PersonPut,
    expected_version: int | None,
) -> tuple[Person, bool]:
    """Create or replace the entry of `handle`; returns it and whether it was created.

    `expected_version` (from `If-Match`) refuses, with 412, a write over a version not read.
    """
    if caller.role not in DIRECTORY_WRITERS:
        raise Forbidden("Only a program manager or an admin may change the person directory.")
    if data.manager_handle == handle:
        raise field_error("manager_handle", "A person cannot be their own manager.", code="invalid")
    values: dict[str, Any] = data.model_dump()
    now = utcnow()
    person = await get(session, handle=handle)
    if person is None:
        if expected_version is not None:
            raise PreconditionFailed(f"There is no person {handle!r}: If-Match cannot hold.")
        person = Person(handle=handle, **values, version=1, created_at=now, updated_at=now)
        session.add(person)
        try:
            await session.commit()
        except IntegrityError as exc:  # a concurrent PUT created it first
            await session.rollback()
            raise Conflict(f"The person {handle!r} was created meanwhile; retry.") from exc
        return person, True
    if expected_version is not None and expected_version != person.version:
        raise PreconditionFailed(
            f"The person {handle!r} is at version {person.version}, not {expected_version}.",
            current_version=person.version,
        )
    # Compare-and-set: of two concurrent replacements one is a 412 instead of a lost update.
    result = await session.execute(
        update(Person)
        .where(Person.handle == handle, Person.version == person.version)
        .values(**values, version=person.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        await session.rollback()
        raise PreconditionFailed(f"The person {handle!r} was changed meanwhile; read it again.")
    await session.commit()
    await session.refresh(person)
    return person, False
