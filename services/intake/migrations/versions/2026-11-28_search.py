"""Search: full-text over title/description, external-reference lookup, the list indexes.

PostgreSQL: a generated `search_vector` tsvector column with a GIN index (queried with
`websearch_to_tsquery`). SQLite: an FTS5 external-content table `request_fts` kept in sync by
triggers. Both: `request_external_ref` (one row per normalised reference, maintained by triggers so
that every writer of `request.external_refs` keeps it current) and the indexes of the new filters
and sort orders.

Revision ID: intake_0004
Revises: intake_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0004"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_request_updated_at_id", ["updated_at", "id"]),
    ("ix_request_team_updated_at_id", ["team", "updated_at", "id"]),
    ("ix_request_team_created_at_id", ["team", "created_at", "id"]),
    ("ix_request_team_priority_id", ["team", "priority", "id"]),
    ("ix_request_team_sla_due_at_id", ["team", "sla_due_at", "id"]),
    ("ix_request_duplicate_of_id", ["duplicate_of", "id"]),
)

PG_SEARCH_VECTOR = (
    "ALTER TABLE request ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(description, '')), 'B')) STORED"
)

PG_REF_FUNCTION = """
CREATE FUNCTION request_external_ref_sync() RETURNS trigger LANGUAGE plpgsql
-- The migration's search_path (the intake schema), whoever's session fires the trigger.
SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM request_external_ref WHERE request_id = NEW.id;
    INSERT INTO request_external_ref (request_id, ref)
    SELECT DISTINCT NEW.id, left(lower(btrim(value)), 500)
    FROM json_array_elements_text(coalesce(NEW.external_refs, '[]'::json)) AS value
    WHERE btrim(value) <> '';
    RETURN NULL;
END
$$
"""

SQLITE_TRIGGERS = (
    """CREATE TRIGGER request_fts_ai AFTER INSERT ON request BEGIN
        INSERT INTO request_fts (rowid, title, description)
        VALUES (new.id, new.title, new.description);
    END""",
    """CREATE TRIGGER request_fts_ad AFTER DELETE ON request BEGIN
        INSERT INTO request_fts (request_fts, rowid, title, description)
        VALUES ('delete', old.id, old.title, old.description);
    END""",
    """CREATE TRIGGER request_fts_au AFTER UPDATE OF title, description ON request BEGIN
        INSERT INTO request_fts (request_fts, rowid, title, description)
        VALUES ('delete', old.id, old.title, old.description);
        INSERT INTO request_fts (rowid, title, description)
        VALUES (new.id, new.title, new.description);
    END""",
    """CREATE TRIGGER request_external_ref_ai AFTER INSERT ON request BEGIN
        INSERT OR IGNORE INTO request_external_ref (request_id, ref)
        SELECT new.id, substr(lower(trim(value)), 1, 500) FROM json_each(new.external_refs)
        WHERE trim(value) <> '';
    END""",
    """CREATE TRIGGER request_external_ref_au AFTER UPDATE OF external_refs ON request BEGIN
        DELETE FROM request_external_ref WHERE request_id = new.id;
        INSERT OR IGNORE INTO request_external_ref (request_id, ref)
        SELECT new.id, substr(lower(trim(value)), 1, 500) FROM json_each(new.external_refs)
        WHERE trim(value) <> '';
    END""",
)
SQLITE_TRIGGER_NAMES = (
    "request_fts_ai",
    "request_fts_ad",
    "request_fts_au",
    "request_external_ref_ai",
    "request_external_ref_au",
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, columns in INDEXES:
        op.create_index(name, "request", columns)
    op.create_table(
        "request_external_ref",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
            name="fk_request_external_ref_request_id_request",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "ref", name="pk_request_external_ref"),
    )
    op.create_index(
        "ix_request_external_ref_ref_request_id", "request_external_ref", ["ref", "request_id"]
    )
    if postgres:
        op.execute(PG_SEARCH_VECTOR)
        op.execute("CREATE INDEX ix_request_search_vector ON request USING gin (search_vector)")
        op.execute(PG_REF_FUNCTION)
        op.execute(
            "CREATE TRIGGER request_external_ref_sync AFTER INSERT OR UPDATE OF external_refs "
            "ON request FOR EACH ROW EXECUTE FUNCTION request_external_ref_sync()"
        )
        # Backfill: rewriting the column to itself fires the trigger for every existing row.
        op.execute("UPDATE request SET external_refs = external_refs")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE request_fts USING fts5(title, description, "
            "content='request', content_rowid='id', tokenize='porter unicode61')"
        )
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO request_fts (request_fts) VALUES ('rebuild')")
        op.execute(
            "INSERT OR IGNORE INTO request_external_ref (request_id, ref) "
            "SELECT request.id, substr(lower(trim(value)), 1, 500) "
            "FROM request, json_each(request.external_refs) WHERE trim(value) <> ''"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP TRIGGER IF EXISTS request_external_ref_sync ON request")
        op.execute("DROP FUNCTION IF EXISTS request_external_ref_sync()")
        op.execute("DROP INDEX IF EXISTS ix_request_search_vector")
        op.execute("ALTER TABLE request DROP COLUMN IF EXISTS search_vector")
    else:
        for name in reversed(SQLITE_TRIGGER_NAMES):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS request_fts")
    op.drop_index("ix_request_external_ref_ref_request_id", table_name="request_external_ref")
    op.drop_table("request_external_ref")
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="request")
