"""Settings of the alerts service (``CLOSELOOP_ALERTS_*``, plus ``CLOSELOOP_ROUTING_FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from closeloop_alerts.pii import Keyring, PiiKeyError
from closeloop_shared.config import ServiceSettings

# Svix's schedule: the delay before each attempt, measured from the previous failure.
# Eight attempts spread over about 27.6 hours.
SVIX_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def _split_csv(value: Any) -> Any:
    """Environment lists are comma-separated (``0,5,300``): easier to set than JSON."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class AlertsSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_ALERTS_",
        extra="ignore",
        env_ignore_empty=True,
        # Lets tests and callers pass ``routing_file=...`` as well as the env alias.
        validate_by_name=True,
    )

    port: int = 8003
    consumer_group: str = "closeloop-alerts"
    # Re-scores (closeloop.sentiment.rescored.v1): a group of their own, never the live one.
    rescore_consumer_group: str = "closeloop-alerts-rescores"

    # Shared with the devstack and the compose file, hence no service prefix.
    routing_file: Path | None = Field(default=None, validation_alias="CLOSELOOP_ROUTING_FILE")

    # Webhook delivery.
    delivery_schedule_s: Annotated[tuple[float, ...], NoDecode] = SVIX_SCHEDULE_S
    delivery_jitter: float = Field(default=0.1, ge=0.0, lt=1.0)
    delivery_timeout_s: float = Field(default=15.0, gt=0)
    delivery_poll_interval_s: float = Field(default=1.0, gt=0)
    delivery_concurrency: int = Field(default=32, ge=1)
    # A receiver may ask for a pause with Retry-After, but never for longer than this.
    delivery_max_retry_after_s: float = Field(default=86_400.0, ge=0)
    # How long a claimed delivery stays invisible to other replicas; a crash mid-request
    # makes it due again after this, so it must exceed the request timeout.
    delivery_lease_s: float = Field(default=60.0, gt=0)

    # Outbox relay and gauges.
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_retention_s: float = Field(default=7 * 86_400.0, gt=0)
    gauge_refresh_interval_s: float = Field(default=15.0, gt=0)

    # Internal targets that may be reached despite the SSRF guard: host names, ``*.suffix``,
    # IP addresses or CIDRs. Everything else must resolve to public addresses only.
    outbound_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="CLOSELOOP_OUTBOUND_ALLOWLIST"
    )
    # Consecutive failed attempts after which a target is unhealthy (its alerts then also
    # go to the owner's escalation owner) until it succeeds again.
    target_unhealthy_after: int = Field(default=5, ge=1)

    # Email targets: the SMTP server (STARTTLS on 587 by default).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "closeloop@localhost"
    smtp_starttls: bool = True
    smtp_use_tls: bool = False

    # Customer contact data at rest (see closeloop_alerts.pii): the keys by id (JSON
    # {"id": "base64"} or "id:base64,id2:base64"), the one new data is sealed with, and the
    # separate key of the blind indexes. Required to serve; the devstack generates them.
    pii_keys: SecretStr | None = None
    pii_active_key: str | None = None
    pii_index_key: SecretStr | None = None
    pii_rotation_batch_size: int = Field(default=500, ge=1)

    # SLA clocks, owner reloads and spike detection.
    sla_poll_interval_s: float = Field(default=5.0, gt=0)
    routing_reload_interval_s: float = Field(default=5.0, gt=0)
    spike_interval_s: float = Field(default=60.0, gt=0)
    kpi_refresh_interval_s: float = Field(default=60.0, gt=0)

    def pii_keyring(self) -> Keyring:
        """The keyring of the settings; PiiKeyError names what is missing or malformed."""
        if self.pii_keys is None or self.pii_index_key is None:
            raise PiiKeyError(
                "CLOSELOOP_ALERTS_PII_KEYS and CLOSELOOP_ALERTS_PII_INDEX_KEY must be set "
                "(customer contact data is stored encrypted)"
            )
        return Keyring.parse(
            self.pii_keys.get_secret_value(),
            self.pii_active_key,
            self.pii_index_key.get_secret_value(),
        )

    @field_validator("delivery_schedule_s", mode="before")
    @classmethod
    def _parse_schedule(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("delivery_schedule_s")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("the delivery schedule needs at least one attempt")
        if any(delay < 0 for delay in value):
            raise ValueError("delivery delays must not be negative")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_requests(self) -> AlertsSettings:
        if self.delivery_lease_s <= self.delivery_timeout_s:
            raise ValueError("delivery_lease_s must exceed delivery_timeout_s")
        return self

    @field_validator("outbound_allowlist", mode="before")
    @classmethod
    def _parse_allowlist(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("outbound_allowlist")
    @classmethod
    def _lower_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.lower() for host in value)
