"""Gateway metrics (module-level: one registration per process, however many apps are built)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPSTREAM_REQUESTS = Counter(
    "closeloop_gateway_upstream_requests_total",
    "Requests forwarded to a service behind the gateway, by upstream and status code "
    "(`unavailable` when it could not be reached or did not answer in time).",
    ["upstream", "status"],
)
UPSTREAM_DURATION = Histogram(
    "closeloop_gateway_upstream_duration_seconds",
    "Time from sending a request upstream to having its whole response, by upstream.",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUTH_FAILURES = Counter(
    "closeloop_gateway_auth_failures_total",
    "Requests refused by authentication or authorisation, by reason "
    "(missing, malformed, invalid, insufficient_scope).",
    ["reason"],
)
RATE_LIMITED = Counter(
    "closeloop_gateway_rate_limited_total",
    "Requests refused with 429 because their API key's token bucket was empty.",
)
