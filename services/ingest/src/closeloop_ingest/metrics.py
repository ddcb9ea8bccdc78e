"""Ingest metrics. Labels are bounded: adapters, channels and reasons come from fixed sets."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FEEDBACK_RECEIVED = Counter(
    "closeloop_ingest_feedback_received_total",
    "Feedback items published and acknowledged by the broker, by channel and adapter.",
    ["channel", "adapter"],
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
