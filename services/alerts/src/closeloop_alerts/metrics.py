"""Alerts metrics (bounded labels only: never an alert, feedback or customer id)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_RAISED = Counter(
    "closeloop_alerts_raised_total",
    "Alerts raised, by priority and feedback channel.",
    ["priority", "channel"],
)
NOTIFICATIONS = Counter(
    "closeloop_alerts_notifications_total",
    "Notification attempts by target type and outcome (delivered, retrying, failed, disabled).",
    ["target_type", "outcome"],
)
NOTIFICATION_DURATION = Histogram(
    "closeloop_alerts_notification_duration_seconds",
    "Time of one notification attempt, from request start to response headers or error.",
    ["target_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
FEEDBACK_STORED = Counter(
    "closeloop_alerts_feedback_stored_total",
    "Feedback items stored for the first time, by channel (redeliveries are not counted).",
    ["channel"],
)
ALERTS_OPEN = Gauge(
    "closeloop_alerts_open",
    "Alerts in status open (not yet acknowledged), by priority; refreshed periodically.",
    ["priority"],
)
OUTBOX_PENDING = Gauge(
    "closeloop_alerts_outbox_pending",
    "Lifecycle events written to the outbox and not yet acknowledged by the broker.",
)
