"""Run one service's own alembic history against its own schema (PostgreSQL) or file (SQLite).

Each service keeps `services/<name>/migrations/` with its own version table; nothing here knows any
service's tables. `upgrade` is synchronous (alembic is); async callers run it in a thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from services.common.db import is_postgres, make_engine

VERSION_TABLE = "alembic_version"


def alembic_config(*, service: str, database_url: str) -> Config:
    """An alembic Config for a service's migrations folder and database."""
    import services

    location = Path(services.__file__).parent / service / "migrations"
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    config.attributes["service"] = service
    config.attributes["database_url"] = database_url
    return config


def upgrade(*, service: str, database_url: str, revision: str = "heads") -> None:
    """Bring a service's schema up to `revision` (every head by default).

    "heads" rather than "head": two aggregates of one service may add migrations on parallel
    branches from the same parent; both apply, and a later merge revision can join them.
    """
    command.upgrade(alembic_config(service=service, database_url=database_url), revision)


def downgrade(*, service: str, database_url: str, revision: str) -> None:
    """Take a service's schema down to `revision` (`base` removes everything)."""
    command.downgrade(alembic_config(service=service, database_url=database_url), revision)


def run_env(context: EnvironmentContext, target_metadata: MetaData) -> None:
    """The body of every service's `env.py`: online migrations on the service's schema."""
    config = context.config
    service: str = config.attributes["service"]
    url: str = config.attributes["database_url"]
    asyncio.run(_run_online(context, target_metadata, service=service, url=url))


async def _run_online(
    context: EnvironmentContext, target_metadata: MetaData, *, service: str, url: str
) -> None:
    engine = make_engine(url, schema=service, pool_size=1)
    try:
        async with engine.connect() as connection:
            if is_postgres(url):
                await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{service}"'))
                await connection.commit()
            await connection.run_sync(_configure_and_run, context, target_metadata, service, url)
    finally:
        await engine.dispose()


def _configure_and_run(
    connection: Connection,
    context: EnvironmentContext,
    target_metadata: MetaData,
    service: str,
    url: str,
) -> None:
    postgres = is_postgres(url)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        version_table_schema=service if postgres else None,
        # Autogenerate must never see (or propose dropping) another service's schema.
        include_schemas=False,
        render_as_batch=not postgres,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
