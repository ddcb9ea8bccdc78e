"""Topic creation on the real broker: idempotent, and with a bounded retention."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.admin import ensure_topics

pytestmark = pytest.mark.integration


async def _retention_ms(settings: KafkaSettings, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = {
        name: value
        for response in described
        for resource in response.resources
        for name, value, *_ in resource[4]
    }
    return str(entries["retention.ms"])


async def test_topics_are_created_once_with_the_configured_retention(
    kafka_settings: KafkaSettings,
) -> None:
    settings = kafka_settings.model_copy(update={"topic_retention_ms": 3_600_000})
    names = [f"closeloop.test.retention.{uuid.uuid4().hex[:8]}.v1"]

    assert await ensure_topics(settings, names) == names
    assert await ensure_topics(settings, names) == [], "an existing topic is left alone"
    assert await _retention_ms(settings, names[0]) == "3600000"


def test_the_default_retention_is_bounded() -> None:
    # Erased customers' events leave the broker only through retention.
    assert 0 < KafkaSettings().topic_retention_ms <= 30 * 24 * 3600 * 1000
