"""Tables of comments on requests and their edit history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.intake.models import Base


class RequestComment(Base):
    """A comment; `visibility` is `public` (the partner sees it) or `internal` (staff only)."""

    __tablename__ = "request_comment"
    __table_args__ = (
        # A partner's page reads public comments only: one index range either way.
        Index("ix_request_comment_request_id_visibility_id", "request_id", "visibility", "id"),
        Index("ix_request_comment_request_id_id", "request_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("request.id", ondelete="CASCADE"))
    visibility: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    author_role: Mapped[str] = mapped_column(String(32))
    asks_requester: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RequestCommentRevision(Base):
    """A comment's body before an edit (revision n is the body of version n)."""

    __tablename__ = "request_comment_revision"

    comment_id: Mapped[int] = mapped_column(
        ForeignKey("request_comment.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    written_by: Mapped[str] = mapped_column(String(200))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
