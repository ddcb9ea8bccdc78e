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
    "Alerts in status open (not yet acknowledged), by priority and owner team; refreshed "
    "periodically. Owners are configured teams, a bounded set.",
    ["priority", "owner"],
)
TIME_TO_ACKNOWLEDGE = Histogram(
    "closeloop_alerts_time_to_acknowledge_seconds",
    "From an alert being raised to its first acknowledgement, by priority.",
    ["priority"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200),
)
TIME_TO_RESOLVE = Histogram(
    "closeloop_alerts_time_to_resolve_seconds",
    "From an alert being raised to its resolution, by priority.",
    ["priority"],
    buckets=(300, 900, 3600, 7200, 14400, 28800, 86400, 172800, 259200, 604800),
)
END_TO_END = Histogram(
    "closeloop_alerts_end_to_end_seconds",
    "From ingest accepting a feedback item to its owner's first successful notification.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
OUTBOX_PENDING = Gauge(
    "closeloop_alerts_outbox_pending",
    "Lifecycle events written to the outbox and not yet acknowledged by the broker.",
)
SLA_BREACHES = Counter(
    "closeloop_alerts_sla_breaches_total",
    "SLA clocks that ran out (kind: acknowledge or resolve), by alert priority.",
    ["kind", "priority"],
)
ALERTS_BREACHED = Gauge(
    "closeloop_alerts_sla_breached",
    "Unresolved alerts whose acknowledge or resolve SLA is breached, by priority.",
    ["priority"],
)
ESCALATIONS = Counter(
    "closeloop_alerts_escalations_total",
    "Escalations by reason (sla, manual, target_unhealthy).",
    ["reason"],
)
ALERTS_MERGED = Counter(
    "closeloop_alerts_items_merged_total",
    "Negative items that joined an open alert instead of raising one (reason: merge, spike).",
    ["reason"],
)
SPIKES = Counter(
    "closeloop_alerts_spikes_total",
    "Incident alerts raised for a spike of negative feedback, by dimension.",
    ["dimension"],
)
TARGETS_UNHEALTHY = Gauge(
    "closeloop_alerts_targets_unhealthy",
    "Notify targets marked unhealthy after repeated failures.",
)

# KPIs of the last 24 hours by channel (four channels: bounded), refreshed periodically.
KPI_WINDOW_S = 86_400
KPI_GAUGES = {
    name: Gauge(f"closeloop_alerts_kpi_{name}", help_text, ["channel"])
    for name, help_text in (
        ("volume", "Feedback items of the last 24 h."),
        ("negative_share", "Share of negative items of the last 24 h (0-1)."),
        ("nps", "NPS of the last 24 h (-100..100)."),
        ("csat", "CSAT of the last 24 h: % of ratings 4 or 5."),
        ("ces", "Mean CES rating of the last 24 h (1-7)."),
        ("alerts", "Alerts raised in the last 24 h."),
        ("mtta_seconds", "Mean time to acknowledge of alerts raised in the last 24 h."),
        ("mttr_seconds", "Mean time to resolve of alerts raised in the last 24 h."),
        ("sla_compliance", "Share of alerts of the last 24 h that breached no SLA (0-1)."),
    )
}
