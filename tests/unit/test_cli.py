"""The `riskdesk` command: bad arguments, migrate, keys create and revoke, the pre-flight checks."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskdesk.cli import build_parser, main
from riskdesk.stack import StackError, StackLauncher, child_environment, write_secret
from riskdesk.temporal_server import free_port, port_is_free
from services.common.db import make_engine, make_sessionmaker
from services.common.errors import Unauthorized
from services.common.settings import SERVICE_NAMES, Settings, get_settings

RISKDESK = str(Path(sys.executable).parent / "riskdesk")


def free_ports_env() -> dict[str, str]:
    """Every port of a stack on a free port, so only the port a test takes is in use."""
    return {
        "RISKDESK_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "RISKDESK_TEMPORAL_UI_PORT": str(free_port()),
        **{f"RISKDESK_{s.upper()}_PORT": str(free_port()) for s in SERVICE_NAMES},
    }


@pytest.fixture
def cli_env(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """RISKDESK_* variables for a CLI run on this backend; the settings `main()` will read."""
    for name in list(os.environ):
        if name.startswith("RISKDESK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RISKDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RISKDESK_ENVIRONMENT", "test")
    if backend == "postgresql":
        monkeypatch.setenv("RISKDESK_DATABASE_URL", request.getfixturevalue("postgres_url"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["launch"],
        ["serve"],
        ["serve", "billing"],
        ["migrate", "--service", "billing"],
        ["keys"],
        ["keys", "create", "--role", "admin"],
        ["keys", "create", "--team", "t", "--role", "system"],
        ["keys", "create", "--team", "t", "--role", "superuser"],
        ["keys", "create", "--team", "t", "--role", "admin", "--expires-at", "tomorrow"],
        ["keys", "create", "--team", "t", "--role", "admin", "--expires-at", "2030-01-01T00:00"],
        ["keys", "revoke"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "riskdesk" in capsys.readouterr().err


def test_expires_at_takes_an_aware_instant() -> None:
    args = build_parser().parse_args(
        ["keys", "create", "--team", "t", "--role", "analyst", "--expires-at", "2030-01-01T00:00Z"]
    )
    assert args.expires_at.utcoffset() is not None


def test_migrate_one_service(cli_env: Settings) -> None:
    assert main(["migrate", "--service", "escalation"]) == 0
    if cli_env.database_url is None:
        assert (cli_env.data_dir / "escalation.db").exists()
        assert not (cli_env.data_dir / "sop.db").exists()


def test_keys_create_and_revoke(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from services.gateway.keys.service import authenticate

    assert main(["migrate", "--service", "gateway"]) == 0
    capsys.readouterr()
    team = f"team-{uuid.uuid4().hex[:8]}"
    assert main(["keys", "create", "--team", team, "--role", "analyst", "--name", "ci"]) == 0
    out = capsys.readouterr()
    plaintext = out.out.strip()
    assert plaintext.startswith("rk_")
    assert "shown only once" in out.err

    async def check(expect_valid: bool) -> str:
        engine = make_engine(cli_env.database_url_of("gateway"), schema="gateway", pool_size=1)
        try:
            async with make_sessionmaker(engine)() as session:
                if expect_valid:
                    key = await authenticate(session, plaintext)
                    assert (key.team, str(key.role), key.name) == (team, "analyst", "ci")
                    return key.id
                with pytest.raises(Unauthorized):
                    await authenticate(session, plaintext)
                return ""
        finally:
            await engine.dispose()

    key_id = asyncio.run(check(True))
    assert main(["keys", "revoke", key_id]) == 0
    assert key_id in capsys.readouterr().err
    asyncio.run(check(False))

    assert main(["keys", "revoke", "nosuchid"]) == 1
    assert "error" in capsys.readouterr().err


def test_keys_create_before_migrating_says_what_to_do(
    cli_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    if cli_env.database_url is not None:
        pytest.skip("the scratch PostgreSQL database is shared and may already be migrated")
    assert main(["keys", "create", "--team", "t", "--role", "admin"]) == 1
    assert "riskdesk migrate" in capsys.readouterr().err


def test_children_read_back_the_launchers_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        gateway_port=18000,
        task_queue="q-1",
        log_json=False,
        outbox_poll_seconds=0.5,
    )
    env = child_environment(settings)
    riskdesk_env = {k: v for k, v in env.items() if k.startswith("RISKDESK_")}
    assert env["PYTHONUNBUFFERED"] == "1"
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(riskdesk_env)
        assert Settings() == settings
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_key_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "admin.key"
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path, "rk_abc_secret")
    assert path.read_text() == "rk_abc_secret\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_port_check_names_the_taken_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in free_ports_env().items():
        monkeypatch.setenv(name, value)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        launcher = StackLauncher(Settings(data_dir=tmp_path, sop_port=port))
        with pytest.raises(StackError, match=rf"port {port} \(sop\).*RISKDESK_SOP_PORT"):
            launcher.check_ports()
    clash = StackLauncher(Settings(data_dir=tmp_path, sop_port=9100, intake_port=9100))
    with pytest.raises(StackError, match="9100 is configured for both intake and sop"):
        clash.check_ports()


def test_up_exits_non_zero_naming_a_taken_port(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKDESK_")}
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # As if another stack ran on this data dir: its stack.json must survive our refusal.
    (data_dir / "stack.json").write_text("{}")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env.update(free_ports_env())
        env.update(RISKDESK_DATA_DIR=str(data_dir), RISKDESK_GATEWAY_PORT=str(port))
        result = subprocess.run(
            [RISKDESK, "up"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 1
    assert f"port {port} (gateway)" in result.stdout + result.stderr
    # Nothing was started or touched.
    assert not (data_dir / "temporal.db").exists()
    assert (data_dir / "stack.json").read_text() == "{}"


def test_up_stops_everything_when_a_migration_fails(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKDESK_")}
    env.update(free_ports_env())
    env.update(RISKDESK_DATA_DIR=str(tmp_path / "data"), RISKDESK_SOP_DATABASE_URL="mysql://db/x")
    result = subprocess.run(
        [RISKDESK, "up"], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert result.returncode == 1
    assert "migrating sop failed" in result.stdout
    # Temporal had been started before the migrations; it is stopped again.
    host, _, port = env["RISKDESK_TEMPORAL_ADDRESS"].rpartition(":")
    assert port_is_free(host, int(port))
    assert not (tmp_path / "data" / "stack.json").exists()
