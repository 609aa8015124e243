"""Tables of the search aggregate (registered on the intake Base by services/intake/models.py).

The full-text structures (`request.search_vector` on PostgreSQL, the `request_fts` FTS5 table on
SQLite) are not mapped: they are written by the database itself (generated column, triggers) and
only ever read through `services.intake.search.fulltext`.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.models import Base


class RequestExternalRef(Base):
    """One normalised (trimmed, lower-case) external reference of a request.

    Maintained by database triggers from `request.external_refs`, so every writer of that column
    (filing, PATCH, bulk loads) keeps it current; it makes "who else cites JIRA-123" an index
    lookup.
    """

    __tablename__ = "request_external_ref"
    __table_args__ = (Index("ix_request_external_ref_ref_request_id", "ref", "request_id"),)

    request_id: Mapped[int] = mapped_column(
        ForeignKey("request.id", ondelete="CASCADE"), primary_key=True
    )
    ref: Mapped[str] = mapped_column(String(500), primary_key=True)
