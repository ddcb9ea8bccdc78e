"""Kafka metrics, shared by every producer and consumer (bounded labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_PRODUCED = Counter(
    "closeloop_kafka_messages_produced_total",
    "Messages the broker acknowledged (outcome=ok) or refused (outcome=error), per topic.",
    ["topic", "outcome"],
)
MESSAGES_CONSUMED = Counter(
    "closeloop_kafka_messages_consumed_total",
    "Messages consumed per topic and outcome (ok, dead_lettered).",
    ["topic", "group", "outcome"],
)
DEAD_LETTERED = Counter(
    "closeloop_kafka_dead_lettered_total",
    "Messages sent to a dead-letter topic, per source topic and reason.",
    ["topic", "group", "reason"],
)
CONSUMER_LAG = Gauge(
    "closeloop_kafka_consumer_lag_messages",
    "Messages between the consumer's position and the partition's high watermark.",
    ["topic", "group", "partition"],
)
BATCH_DURATION = Histogram(
    "closeloop_kafka_batch_processing_seconds",
    "Time to process one consumed batch, from fetch to commit.",
    ["group"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_RETRIES = Counter(
    "closeloop_kafka_batch_retries_total",
    "Batches retried after a transient failure (the database or broker away).",
    ["group"],
)
COMMIT_FAILURES = Counter(
    "closeloop_kafka_commit_failures_total",
    "Offset commits that failed (usually a rebalance); the batch will be redelivered.",
    ["group"],
)
MESSAGE_AGE = Histogram(
    "closeloop_kafka_message_age_seconds",
    "Time from a message's produce timestamp until its consumer finished processing it: "
    "the latency of one pipeline stage, queueing included, per topic and group.",
    ["topic", "group"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


def observe_message_age(topic: str, group: str, timestamp_ms: int, now_s: float) -> None:
    """Record one processed message's age (clock skew between hosts clamps to 0)."""
    MESSAGE_AGE.labels(topic, group).observe(max(now_s - timestamp_ms / 1000.0, 0.0))
