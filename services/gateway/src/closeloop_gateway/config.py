"""Gateway settings, read from ``CLOSELOOP_GATEWAY_*`` (plus the operator's bootstrap admin key)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from closeloop_shared.config import ServiceSettings

MIB = 1024 * 1024

# An unsalted SHA-256 is only a safe key hash for high-entropy keys (see auth.py), so
# the operator-chosen bootstrap key must be long enough to be one.
MIN_BOOTSTRAP_KEY_CHARS = 32


class GatewaySettings(ServiceSettings):
    """The public edge: where the services behind it live and how hard it protects them."""

    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_GATEWAY_",
        extra="ignore",
        env_ignore_empty=True,
        # Tests and devstack pass fields by name; operators set the env aliases.
        validate_by_name=True,
        validate_by_alias=True,
    )

    port: int = 8000

    # --- upstreams ------------------------------------------------------------------------
    ingest_url: str = "http://127.0.0.1:8001"
    alerts_url: str = "http://127.0.0.1:8003"
    upstream_connect_timeout_s: float = 2.0
    # A 1,000-item batch is validated and produced by ingest before it answers.
    upstream_timeout_s: float = 10.0
    # Waiting for a free pooled connection; a full pool under load should shed, not queue.
    upstream_pool_timeout_s: float = 2.0
    # Connections per upstream (all kept alive while idle). 32 carry thousands of requests
    # per second to a service answering in a few milliseconds, more than one gateway
    # process forwards; a bigger pool costs CPU on every request (see proxy.Upstream).
    upstream_max_connections: int = 32
    # Below uvicorn's default keep-alive timeout (5 s): the gateway drops an idle
    # connection before the upstream may close it under a request being sent.
    upstream_keepalive_expiry_s: float = 4.0
    # Retry-After on a 503 when an upstream is unreachable or too slow.
    upstream_retry_after_s: int = 5
    readiness_timeout_s: float = 2.0

    # --- the public request -----------------------------------------------------------------
    # The URL providers are configured with (e.g. https://feedback.example.com). When set,
    # it is what X-Forwarded-Proto/-Host tell ingest (Twilio signs that URL); when unset,
    # the scheme and Host header of the request as the gateway received it are used.
    public_url: str | None = None
    # Proxies whose X-Forwarded-For/-Proto uvicorn trusts (comma-separated, "*" for any).
    forwarded_allow_ips: str = "127.0.0.1"

    # --- authentication ---------------------------------------------------------------------
    bootstrap_admin_key: SecretStr | None = Field(
        default=None, validation_alias="CLOSELOOP_BOOTSTRAP_ADMIN_KEY"
    )
    # How long a key lookup (hit or miss) is reused; a revocation takes effect on every
    # replica within this time. 0 disables the cache (one database query per request).
    key_cache_ttl_s: float = 5.0
    key_cache_max_entries: int = 10_000

    # --- limits -----------------------------------------------------------------------------
    # Single feedback items, webhooks, alert actions.
    max_body_bytes: int = 1 * MIB
    # Batches (up to 1,000 items) and email webhooks (bodies with attachments).
    max_large_body_bytes: int = 10 * MIB
    # Per-API-key token bucket: sustained requests per second and burst size; 0 disables.
    rate_limit_per_s: float = 100.0
    rate_limit_burst: int = 200
    # Webhook routes carry no API key: they are limited per client address instead (the
    # first trusted X-Forwarded-For, see forwarded_allow_ips). 0 turns it off.
    source_rate_limit_per_s: float = 100.0
    source_rate_limit_burst: int = 200
    source_rate_limit_max_sources: int = 100_000

    @field_validator("bootstrap_admin_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_BOOTSTRAP_KEY_CHARS:
            raise ValueError(
                f"CLOSELOOP_BOOTSTRAP_ADMIN_KEY must be at least {MIN_BOOTSTRAP_KEY_CHARS} "
                'random characters (e.g. "clk_" + secrets.token_urlsafe(32))'
            )
        return value

    @field_validator("ingest_url", "alerts_url", "public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return None if value is None else value.rstrip("/")
