"""Sentiment metrics (bounded labels only: language codes and labels, never ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ITEMS_SCORED = Counter(
    "closeloop_sentiment_items_scored_total",
    "Feedback items scored from the stream, by detected language and label.",
    ["language", "label"],
)
FEEDBACK_SCORED = Counter(
    "closeloop_sentiment_feedback_scored_total",
    "Feedback items scored, by channel, touchpoint, journey stage and label: the sentiment "
    "mix across the customer journey (touchpoints bounded, see closeloop_shared.metric_labels).",
    ["channel", "touchpoint", "journey_stage", "label"],
)
SCORING_DURATION = Histogram(
    "closeloop_sentiment_scoring_seconds",
    "Time to score one consumed batch (language detection and sentiment), per batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MODEL_INFO = Gauge(
    "closeloop_sentiment_model_info",
    "Always 1 once the model is loaded; labels name the model and its version.",
    ["model", "version"],
)
