"""Ingest metrics. Labels are bounded: adapters, channels and reasons come from fixed sets;
touchpoints and languages from the client go through ``closeloop_shared.metric_labels``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from closeloop_shared.contracts.feedback import Feedback
from closeloop_shared.metric_labels import LANGUAGES, NONE, TOUCHPOINTS, language_label

FEEDBACK_RECEIVED = Counter(
    "closeloop_ingest_feedback_received_total",
    "Feedback items published and acknowledged by the broker, by channel and adapter.",
    ["channel", "adapter"],
)
FEEDBACK_BY_TOUCHPOINT = Counter(
    "closeloop_ingest_feedback_by_touchpoint_total",
    "Feedback items acknowledged by the broker, by channel, touchpoint and journey stage "
    "(touchpoints beyond the first 50, or outside CLOSELOOP_METRICS_TOUCHPOINTS, are `other`; "
    "unset fields are `none`).",
    ["channel", "touchpoint", "journey_stage"],
)
FEEDBACK_BY_LANGUAGE = Counter(
    "closeloop_ingest_feedback_by_language_total",
    "Feedback items acknowledged by the broker, by channel and declared language "
    "(primary subtag; `und` when none was declared).",
    ["channel", "language"],
)
WEBHOOKS_REJECTED = Counter(
    "closeloop_ingest_webhooks_rejected_total",
    "Requests refused, by adapter and reason (signature_invalid, body_too_large, ...).",
    ["adapter", "reason"],
)
ITEMS_IGNORED = Counter(
    "closeloop_ingest_items_ignored_total",
    "Accepted webhook content that carried no customer text (reactions, failed "
    "transcriptions, the page's own replies), by adapter and reason.",
    ["adapter", "reason"],
)
PUBLISH_DURATION = Histogram(
    "closeloop_ingest_publish_duration_seconds",
    "Time from handing a request's events to the producer until the broker acknowledged "
    "all of them (outcome=ok) or we gave up (outcome=error).",
    ["adapter", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def record_accepted(item: Feedback, adapter: str) -> None:
    """Count one item the broker acknowledged, by every customer-signal dimension."""
    channel = item.channel.value
    FEEDBACK_RECEIVED.labels(channel, adapter).inc()
    stage = item.journey_stage.value if item.journey_stage is not None else NONE
    FEEDBACK_BY_TOUCHPOINT.labels(channel, TOUCHPOINTS(item.touchpoint), stage).inc()
    FEEDBACK_BY_LANGUAGE.labels(channel, LANGUAGES(language_label(item.language))).inc()
