"""The `riskdesk` command: start the stack, serve one service, run the worker, migrate, manage keys.

Every subcommand reads its configuration from `RISKDESK_*` environment variables
(services.common.settings); the launcher (`riskdesk up`) passes its resolved settings to its
children the same way, so every process of a stack agrees.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.identity import Role
from services.common.settings import SERVICE_NAMES, ServiceName, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# SYSTEM is the worker's own role; no API key may carry it.
KEY_ROLES = [str(role) for role in Role if role is not Role.SYSTEM]


def _aware_datetime(value: str) -> datetime:
    """argparse type: an ISO-8601 instant with a time zone (a bare date-time is ambiguous)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} has no time zone; add one, e.g. {value}+00:00 or {value}Z"
        )
    return parsed


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `riskdesk` (exposed for tests and `--help`)."""
    parser = argparse.ArgumentParser(
        prog="riskdesk",
        description="riskdesk: workflow and ticketing backbone of a risk-mining program office.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "up",
        help="start the whole stack locally (Temporal, migrations, services, worker)",
        description="Start Temporal, migrate, start the four services and the worker; "
        "Ctrl-C stops everything.",
    )

    serve = commands.add_parser("serve", help="run one service with uvicorn")
    serve.add_argument("service", choices=SERVICE_NAMES)

    commands.add_parser("worker", help="run the Temporal worker")

    migrate = commands.add_parser("migrate", help="upgrade every service's schema (or one)")
    migrate.add_argument("--service", choices=SERVICE_NAMES, help="only this service")

    keys = commands.add_parser("keys", help="create or revoke API keys (gateway database)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--team", required=True)
    create.add_argument("--role", required=True, choices=KEY_ROLES)
    create.add_argument("--name", help="a label for the key (default: '<role> key for <team>')")
    create.add_argument(
        "--expires-at", type=_aware_datetime, help="ISO-8601 instant with a time zone"
    )
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="ID")

    from riskdesk.client_cli import add_request_parser

    add_request_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `riskdesk` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    command: str = args.command
    if command == "up":
        from riskdesk.stack import run_stack

        return run_stack(get_settings())
    if command == "serve":
        return serve(args.service, get_settings())
    if command == "worker":
        return run_worker_command()
    if command == "migrate":
        services: tuple[ServiceName, ...] = (args.service,) if args.service else SERVICE_NAMES
        migrate(get_settings(), services)
        return 0
    if command == "request":
        from riskdesk.client_cli import run_request_command

        # A partner's command: talks to the gateway over HTTP, needs no local settings.
        return run_request_command(args)
    missing = _missing_gateway_database(get_settings())
    if missing:
        return _fail(missing)
    if args.keys_command == "create":
        return asyncio.run(
            _create_key(
                get_settings(),
                team=args.team,
                role=Role(args.role),
                name=args.name or f"{args.role} key for {args.team}",
                expires_at=args.expires_at,
            )
        )
    return asyncio.run(_revoke_key(get_settings(), key_id=args.key_id))


def serve(service: ServiceName, settings: Settings) -> int:
    """Run one service under uvicorn on its configured host and port until stopped."""
    import uvicorn

    from services.common.logging import configure_logging

    # uvicorn's own logging config is skipped (log_config=None) so its lines go through ours.
    configure_logging(service=service, level=settings.log_level, json=settings.log_json)
    uvicorn.run(
        f"services.{service}.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port_of(service),
        # Only the gateway talks to clients, and it is meant to sit behind a load balancer that
        # we configure, not trust blindly: forwarded headers are not honoured.
        proxy_headers=False,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return 0


def run_worker_command() -> int:
    """Run the Temporal worker until SIGINT/SIGTERM (workflows.worker.run_worker with logging)."""
    from workflows.worker import main as worker_main

    # The worker's own entry point configures logging and exits without interpreter teardown
    # (see workflows/worker.py), so `riskdesk worker` and `python -m workflows.worker` are one.
    worker_main()
    return 0


def migrate(settings: Settings, services: Sequence[ServiceName] = SERVICE_NAMES) -> None:
    """Upgrade the given services' schemas to head (idempotent)."""
    from services.common.migrations import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for service in services:
        upgrade(service=service, database_url=settings.database_url_of(service))
        print(f"migrated {service}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"riskdesk: error: {message}", file=sys.stderr)
    return 1


def _missing_gateway_database(settings: Settings) -> str | None:
    """Why the gateway's SQLite file cannot hold keys yet (connecting would create an empty one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(settings.database_url_of("gateway"))
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        return f"the gateway database {parsed.database} does not exist; run `riskdesk migrate`"
    return None


async def _in_gateway_session(
    settings: Settings, action: Callable[[AsyncSession], Awaitable[None]]
) -> int:
    """Run `action` in one committed session on the gateway's database; errors become exit 1."""
    from sqlalchemy.exc import DBAPIError

    from services.common.db import make_engine, make_sessionmaker
    from services.common.errors import DomainError

    engine = make_engine(settings.database_url_of("gateway"), schema="gateway", pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            await action(session)
            await session.commit()
    except DomainError as error:
        return _fail(error.detail)
    except DBAPIError as error:
        return _fail(f"the gateway database is not ready ({error.orig!r}); run `riskdesk migrate`")
    finally:
        await engine.dispose()
    return 0


async def _create_key(
    settings: Settings, *, team: str, role: Role, name: str, expires_at: datetime | None
) -> int:
    from services.gateway.keys.service import create_key

    async def action(session: AsyncSession) -> None:
        key, plaintext = await create_key(
            session, team=team, role=role, name=name, expires_at=expires_at
        )
        created.append((key.id, plaintext))

    created: list[tuple[str, str]] = []
    code = await _in_gateway_session(settings, action)
    if code == 0:
        key_id, plaintext = created[0]
        print(
            f"created key {key_id} ({role}, team {team}); it is shown only once:", file=sys.stderr
        )
        # The plaintext goes to stdout alone, so `KEY=$(riskdesk keys create ...)` works.
        print(plaintext)
    return code


async def _revoke_key(settings: Settings, *, key_id: str) -> int:
    from services.gateway.keys.service import revoke_key

    async def action(session: AsyncSession) -> None:
        key = await revoke_key(session, key_id=key_id)
        print(f"revoked key {key.id} ({key.name})", file=sys.stderr)

    return await _in_gateway_session(settings, action)


if __name__ == "__main__":
    sys.exit(main())
