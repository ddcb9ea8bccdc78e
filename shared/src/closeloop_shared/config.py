"""Settings every service shares, read from the environment (prefix ``CLOSELOOP_``).

Each service extends :class:`ServiceSettings` with its own fields; nested groups
are flat environment variables (``CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS``) because
operators set them one at a time in compose files and Kubernetes manifests.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings common to all four services."""

    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_", extra="ignore", env_ignore_empty=True
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000


class KafkaSettings(BaseSettings):
    """How to reach the broker; tuned for latency rather than maximum batch size."""

    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_KAFKA_", extra="ignore", env_ignore_empty=True
    )

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id_prefix: str = "closeloop"
    # Idempotent producers need InitProducerId v3+, which aiokafka lacks against
    # some brokers (Tansu); Apache Kafka deployments should turn it on.
    enable_idempotence: bool = False
    linger_ms: int = 5
    max_batch_size: int = 262_144
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = "lz4"
    request_timeout_ms: int = 10_000
    # The broker answers fetches only when this wait expires (Tansu) or data
    # arrives (Kafka): small values keep end-to-end latency low.
    fetch_max_wait_ms: int = 50
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    consumer_batch_size: int = 500
    topic_partitions: int = 6
    topic_replication_factor: int = 1
    # Events carry customer data, and an erasure cannot rewrite a Kafka log: a bounded
    # retention is what makes erased data leave the broker. Set on topics that
    # `ensure_topics` creates (7 days by default; -1 keeps events forever).
    topic_retention_ms: int = Field(default=604_800_000, ge=-1)


class DatabaseSettings(BaseSettings):
    """The PostgreSQL server; each service keeps its tables in its own schema."""

    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_DATABASE_",
        extra="ignore",
        env_ignore_empty=True,
        # `url` is read from CLOSELOOP_DATABASE_URL but may be passed as `url=` in code.
        validate_by_name=True,
    )

    url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/closeloop",
        validation_alias="CLOSELOOP_DATABASE_URL",
    )
    pool_size: int = 10
    max_overflow: int = 10
    echo: bool = False
