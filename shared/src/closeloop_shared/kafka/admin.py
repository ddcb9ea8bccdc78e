"""Topic creation, idempotent: run by `make run`, the tests and the compose one-shot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from closeloop_shared.config import KafkaSettings
from closeloop_shared.events import Topic, dead_letter_topic

# Which consumer group reads which topic: each pair gets a dead-letter topic.
CONSUMER_GROUPS: dict[Topic, tuple[str, ...]] = {
    Topic.FEEDBACK_RECEIVED: ("closeloop-sentiment",),
    Topic.FEEDBACK_SCORED: ("closeloop-alerts",),
    Topic.ALERT_LIFECYCLE: (),
    Topic.CUSTOMER_REPLY_REQUESTED: (),
    # Re-scores by another model version: a group of their own, so a large re-score never
    # delays the live closeloop-alerts consumer.
    Topic.SENTIMENT_RESCORED: ("closeloop-alerts-rescores",),
}


def all_topics() -> list[str]:
    names: list[str] = []
    for topic, groups in CONSUMER_GROUPS.items():
        names.append(topic.value)
        names.extend(dead_letter_topic(topic, group) for group in groups)
    return names


async def ensure_topics(
    settings: KafkaSettings, names: Iterable[str] | None = None, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that are missing, with the configured retention; returns the names
    that were created. Existing topics keep their configuration (change it with the broker's
    tools: this never alters a topic an operator has tuned)."""
    wanted = list(names) if names is not None else all_topics()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in wanted if name not in existing]
            if missing:
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor,
                            topic_configs={"retention.ms": str(settings.topic_retention_ms)},
                        )
                        for name in missing
                    ]
                )
            return missing
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def main() -> None:
    """``python -m closeloop_shared.kafka.admin``: create the topics (the compose one-shot)."""
    import sys

    created = asyncio.run(ensure_topics(KafkaSettings(), timeout_s=120.0))
    sys.stdout.write(f"created {len(created)} topics: {', '.join(created) or '-'}\n")


if __name__ == "__main__":
    main()
