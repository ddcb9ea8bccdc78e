"""Console settings, read from ``CLOSELOOP_CONSOLE_*``."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_CONSOLE_", extra="ignore", env_ignore_empty=True
    )

    # Signs the session cookie. Without it each gateway process makes its own, so sessions
    # end at a restart and do not carry between replicas: set it when running more than one.
    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)), min_length=32
    )
    # A session lasts this long after signing in (a revoked key ends it sooner).
    session_max_age_s: int = Field(default=12 * 3600, ge=60)
    # Alerts fetched per inbox view; the console-side filters (channel, SLA, topic) work
    # on these.
    inbox_page_size: int = Field(default=200, ge=1, le=200)
    # How often an open inbox asks for new alerts.
    poll_interval_s: float = Field(default=5.0, gt=0)
