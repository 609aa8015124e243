"""`riskdesk up` makes its own webhook-secrets key (0600, kept across runs) and lets webhooks reach
local receivers, unless the environment says otherwise."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from riskdesk.stack import StackLauncher, child_environment
from services.common.secret_box import SecretBox
from services.common.settings import Settings


def launcher(data_dir: Path, **settings: object) -> StackLauncher:
    data_dir.mkdir(parents=True, exist_ok=True)
    made = StackLauncher(Settings(data_dir=data_dir, **settings))  # type: ignore[arg-type]
    made._dev_secrets_and_targets()
    return made


def test_up_makes_a_private_secrets_key_once_and_allows_local_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS", raising=False)
    monkeypatch.delenv("RISKDESK_SECRETS_KEY", raising=False)
    first = launcher(tmp_path / "data")
    key_file = tmp_path / "data" / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.settings.secrets_key == key_file.read_text().strip()
    assert first.settings.webhook_allow_private_targets is True
    # The children get both through their environment.
    env = child_environment(first.settings)
    assert env["RISKDESK_SECRETS_KEY"] == first.settings.secrets_key
    assert env["RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS"] == "true"
    token = SecretBox.from_settings(first.settings).encrypt("whsec_kept")
    # A second run reuses the key: secrets stored by the first stay readable.
    second = launcher(tmp_path / "data")
    assert second.settings.secrets_key == first.settings.secrets_key
    assert SecretBox.from_settings(second.settings).decrypt(token) == "whsec_kept"


def test_a_configured_key_and_an_explicit_target_rule_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = Fernet.generate_key().decode()
    monkeypatch.setenv("RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS", "false")
    made = launcher(tmp_path / "data", secrets_key=configured, webhook_allow_private_targets=False)
    assert made.settings.secrets_key == configured
    assert made.settings.webhook_allow_private_targets is False
    assert not (tmp_path / "data" / "secrets.key").exists()
