"""Settings for every riskdesk process, read from `RISKDESK_*` environment variables.

One settings class serves every service: a process knows which service it is and picks its own
database URL (`RISKDESK_<SERVICE>_DATABASE_URL`, else the shared `RISKDESK_DATABASE_URL`, else a
SQLite file of its own under the data directory).
"""

from __future__ import annotations

import base64
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["gateway", "intake", "escalation", "sop"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("gateway", "intake", "escalation", "sop")

# The development secret is public on purpose: it only works where `environment` is development.
DEV_IDENTITY_SECRET = "riskdesk-development-only-identity-secret"  # noqa: S105


class Settings(BaseSettings):
    """Process-wide configuration; every field is overridable with `RISKDESK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="RISKDESK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".riskdesk")
    database_url: str | None = Field(
        default=None,
        description="Shared database URL; on PostgreSQL each service uses its own schema.",
    )
    identity_secret: str = DEV_IDENTITY_SECRET
    identity_ttl_seconds: int = Field(default=300, ge=5)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "riskdesk"

    host: str = "127.0.0.1"
    gateway_port: int = 8000
    intake_port: int = 8001
    escalation_port: int = 8002
    sop_port: int = 8003
    temporal_ui_port: int = 8233
    # The worker's Prometheus endpoints: the Temporal SDK's on this port, riskdesk's counters on
    # the next one (workflows/metrics.py); 0 disables both.
    worker_metrics_port: int = Field(default=9464, ge=0, le=65534)
    worker_metrics_host: str = "127.0.0.1"

    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=100, ge=1)
    outbox_max_backoff_seconds: float = Field(default=30.0, gt=0)

    service_timeout_seconds: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    rate_limit: str = Field(
        default="600/minute",
        description="Requests allowed per API key and gateway replica (the `limits` notation).",
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a gateway replica trusts a verified key before re-reading it "
        "(bounds how late another replica sees a revocation; 0 disables the cache).",
    )
    # Notifications (webhook and e-mail delivery by the worker).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "riskdesk@localhost"
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private, link-local and reserved addresses, "
        "and plain http to localhost (the dev stack and tests, whose receivers listen there).",
    )
    secrets_key: str | None = Field(
        default=None,
        description="Fernet key(s) encrypting webhook secrets at rest, comma-separated: the "
        "first encrypts, every one decrypts (rotation). The gateway requires it in production.",
    )
    delivery_initial_interval_seconds: float = Field(default=5.0, gt=0)
    delivery_backoff_coefficient: float = Field(default=2.0, ge=1.0)
    delivery_max_interval_seconds: float = Field(default=600.0, gt=0)
    delivery_max_attempts: int = Field(
        default=30,
        ge=0,
        description="Attempts before a delivery is dead (0: bounded by time only).",
    )
    delivery_give_up_seconds: float = Field(
        default=86_400.0, gt=0, description="How long a delivery is retried before it is dead."
    )
    delivery_idle_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A subscription's delivery workflow ends after this long with nothing to send.",
    )
    # Escalation follow-up (EscalationWorkflow): reminders and the overdue ladder.
    escalation_reminder_lead_seconds: float = Field(
        default=86_400.0, ge=0, description="How long before an action item's due a reminder goes."
    )
    escalation_ladder_delay_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="Delay between overdue ladder levels (owner, manager, program manager).",
    )
    escalation_ladder_repeats: int = Field(
        default=0,
        ge=0,
        le=20,
        description="Extra program-manager reminders after the ladder's top.",
    )
    escalation_calendar_refresh_seconds: float = Field(
        default=3_600.0,
        gt=0,
        description="How long EscalationWorkflow trusts an owner's calendar fetched from the gateway.",
    )
    escalation_history_limit: int = Field(
        default=0,
        ge=0,
        description="EscalationWorkflow continues as new past this many history events (0: when "
        "Temporal suggests it).",
    )
    rule_monitoring_seconds: int = Field(
        default=28 * 86_400,
        ge=1,
        description="Default monitoring period of a rule deprecation (a proposal may set its own).",
    )
    aging_stale_business_days: int = Field(
        default=5,
        ge=1,
        le=365,
        description="A request with no update for this many business days is stale (aging alerts).",
    )
    # MO suggestions (issue 10): `auto` embeds with the local model when the `ai` extra is
    # installed, `off` always uses the lexical (rapidfuzz) similarity.
    semantic_matching: Literal["auto", "off"] = "auto"
    mo_suggestion_limit: int = Field(
        default=5, ge=1, le=20, description="How many MO suggestions a request keeps."
    )
    log_level: str = "INFO"
    log_json: bool = True
    # Tracing (services/common/tracing.py): off by default; off costs a flag check, nothing more.
    otel_enabled: bool = False
    otel_exporter: Literal["otlp", "console", "none"] = Field(
        default="otlp",
        description="Where spans go: OTLP over HTTP/protobuf, stdout, or nowhere (propagation only).",
    )
    otel_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="The OTLP/HTTP traces endpoint (a collector, Jaeger, Tempo...).",
    )
    otel_service_name: str | None = Field(
        default=None, description="The resource's service.name; riskdesk-<process> when unset."
    )

    @model_validator(mode="after")
    def _refuse_dev_secret_in_production(self) -> Self:
        if self.environment == "production" and self.identity_secret == DEV_IDENTITY_SECRET:
            raise ValueError("RISKDESK_IDENTITY_SECRET must be set to a real secret in production")
        if self.environment == "production" and len(self.identity_secret) < 32:
            raise ValueError(
                "RISKDESK_IDENTITY_SECRET must be at least 32 characters in production"
            )
        # Only the gateway needs RISKDESK_SECRETS_KEY, so the gateway refuses to start in
        # production without it (services/common/secret_box.py); here, its form is checked.
        for key in (self.secrets_key or "").split(","):
            if self.secrets_key is not None and not _is_fernet_key(key.strip()):
                raise ValueError(
                    "RISKDESK_SECRETS_KEY must be Fernet keys (url-safe base64 of 32 bytes), "
                    "comma-separated"
                )
        return self

    def port_of(self, service: ServiceName) -> int:
        """The port a service listens on."""
        port: int = getattr(self, f"{service}_port")
        return port

    def url_of(self, service: ServiceName) -> str:
        """The base URL another process uses to reach a service."""
        override = os.environ.get(f"RISKDESK_{service.upper()}_URL")
        return override or f"http://{self.host}:{self.port_of(service)}"

    def database_url_of(self, service: ServiceName) -> str:
        """The database URL of one service (its own override, the shared URL, or its own SQLite file)."""
        override = os.environ.get(f"RISKDESK_{service.upper()}_DATABASE_URL")
        if override:
            return override
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32 and len(value) == 44
    except (ValueError, UnicodeEncodeError):
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
