"""Full-text conditions on `request`: PostgreSQL tsvector + GIN, SQLite FTS5 (both from intake_0004).

The `q` parameter follows PostgreSQL's `websearch_to_tsquery` syntax on both backends: words are
ANDed, `"quoted phrases"`, `or` between terms, `-word` excludes. On SQLite the same query is
translated to FTS5 syntax here, every word quoted, so no input can be an FTS5 syntax error.
"""

from __future__ import annotations

import re

from sqlalchemy import (
    ColumnElement,
    Integer,
    false,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Request

TS_CONFIG = "'english'::regconfig"
MAX_QUERY_WORDS = 32
MAX_SIMILARITY_WORDS = 12
_TERM = re.compile(r'(-?)"([^"]*)"?|(-?)(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)
# Words too common to narrow the candidates of a similarity search.
_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "in", "into", "is"}
    | {"it", "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with"}
)


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session talks to PostgreSQL (else SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def to_fts5(query: str) -> str | None:
    """A websearch-style query as an FTS5 expression (None when it has no searchable word)."""
    positives: list[tuple[str, bool]] = []  # (phrase, joined to the previous one with OR)
    negatives: list[str] = []
    pending_or = False
    words_seen = 0
    for match in _TERM.finditer(query):
        quoted = match.group(2) is not None
        negative = bool(match.group(1) if quoted else match.group(3))
        raw = match.group(2) if quoted else match.group(4)
        if not quoted and raw.lower() == "or":
            pending_or = bool(positives)
            continue
        words = _WORD.findall(raw)[: MAX_QUERY_WORDS - words_seen]
        if not words:
            continue
        words_seen += len(words)
        phrase = '"' + " ".join(words) + '"'
        if negative:
            negatives.append(phrase)
        else:
            positives.append((phrase, pending_or))
        pending_or = False
        if words_seen >= MAX_QUERY_WORDS:
            break
    if not positives:
        return None
    expression = positives[0][0]
    for phrase, is_or in positives[1:]:
        expression += (" OR " if is_or else " AND ") + phrase
    expression = f"({expression})"
    for phrase in negatives:
        expression += f" NOT {phrase}"
    return expression


def significant_words(text: str) -> list[str]:
    """The distinct words of `text` worth matching on (lower-case, no stopwords, in order)."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if len(w) >= 3 and w not in _STOPWORDS]
    return list(dict.fromkeys(kept))[:MAX_SIMILARITY_WORDS]


def matches(session: AsyncSession, query: str) -> ColumnElement[bool]:
    """Requests whose title or description matches `query` (served by the full-text index)."""
    if is_postgres(session):
        return _pg_match(func.websearch_to_tsquery(literal_column(TS_CONFIG), literal(query)))
    expression = to_fts5(query)
    if expression is None:
        return false()
    return _sqlite_match(expression)


def any_word_condition(session: AsyncSession, text: str) -> ColumnElement[bool] | None:
    """Requests sharing at least one significant word with `text` (None if it has none)."""
    words = significant_words(text)
    if not words:
        return None
    if is_postgres(session):
        return _pg_match(
            func.websearch_to_tsquery(literal_column(TS_CONFIG), literal(" or ".join(words)))
        )
    return _sqlite_match(" OR ".join(f'"{w}"' for w in words))


def rank_key(session: AsyncSession, query: str) -> ColumnElement[float] | None:
    """A relevance score to sort by (PostgreSQL only; None on SQLite)."""
    if not is_postgres(session):
        return None
    return func.ts_rank(
        literal_column("request.search_vector"),
        func.websearch_to_tsquery(literal_column(TS_CONFIG), literal(query)),
    )


def _pg_match(tsquery: ColumnElement[object]) -> ColumnElement[bool]:
    return literal_column("request.search_vector").bool_op("@@")(tsquery)


def _sqlite_match(expression: str) -> ColumnElement[bool]:
    fts_ids = (
        select(literal_column("rowid", Integer))
        .select_from(table("request_fts"))
        .where(literal_column("request_fts").bool_op("MATCH")(literal(expression)))
    )
    return Request.id.in_(fts_ids)
