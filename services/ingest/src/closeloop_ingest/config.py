"""Ingest settings, read from ``CLOSELOOP_INGEST_*`` environment variables.

Provider secrets are optional: a channel whose secret is unset is switched off
and its webhook answers 404 ``channel_not_configured`` (see the README).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from closeloop_shared.config import ServiceSettings

MIB = 1024 * 1024


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_INGEST_", extra="ignore", env_ignore_empty=True
    )

    port: int = 8001

    twilio_auth_token: SecretStr | None = None
    mailgun_signing_key: SecretStr | None = None
    postmark_basic_auth_user: SecretStr | None = None
    postmark_basic_auth_password: SecretStr | None = None
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None

    # JSON and form bodies; email routes carry attachments and get the larger cap.
    max_body_bytes: int = Field(default=1 * MIB, gt=0)
    max_email_body_bytes: int = Field(default=10 * MIB, gt=0)
    # Mailgun signs a timestamp: older or newer than this and the webhook is refused.
    signature_tolerance_s: int = Field(default=300, gt=0)
    # Upper bound on remembered Mailgun tokens (replay defence); the oldest are
    # forgotten first when a flood fills it.
    replay_cache_size: int = Field(default=100_000, gt=0)
    # How long a publish may wait for the broker's acknowledgement before we
    # answer 503. The strictest providers (Meta, Slack) give up after 3 s.
    publish_ack_timeout_s: float = Field(default=2.5, gt=0)
    # Told to clients with every 503 so that providers retry instead of dropping.
    retry_after_s: int = Field(default=5, gt=0)
