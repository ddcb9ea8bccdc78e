"""A fake alerts service for the console's tests: answers by method, path and query."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson

from tests.gateway.support import FakeUpstream, Received, Reply


def an_alert(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    alert: dict[str, Any] = {
        "id": "6f1c1c9e-3d0a-4a4e-9d47-0c8f7d7d2a11",
        "feedback_id": "0b7f5a57-8d4e-5a8c-9d5f-3c3b2f4d9e11",
        "status": "open",
        "priority": "high",
        "owner": "hotline-team",
        "rule_id": "hotline-negative",
        "channel": "hotline",
        "created_at": (now - timedelta(minutes=10)).isoformat(),
        "updated_at": now.isoformat(),
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "resolved_by": None,
        "resolution_note": None,
        "kind": "item",
        "assignee": None,
        "root_cause": None,
        "escalation_level": 0,
        "escalated_at": None,
        "escalated_to": None,
        "reopened_count": 0,
        "item_count": 1,
        "last_item_at": None,
        "incident_key": None,
        "sla": {
            "acknowledge_due_at": (now + timedelta(minutes=50)).isoformat(),
            "resolve_due_at": (now + timedelta(hours=4)).isoformat(),
            "acknowledge_breached_at": None,
            "resolve_breached_at": None,
        },
        "customer_reply": None,
    }
    alert.update(overrides)
    return alert


def a_detail(alert: dict[str, Any], text: str, topics: list[str]) -> dict[str, Any]:
    detail = copy.deepcopy(alert)
    detail.update(
        feedback={
            "id": alert["feedback_id"],
            "channel": alert["channel"],
            "external_id": "call-1",
            "text": text,
            "subject": None,
            "customer": {"name": "Li Wei", "email": "li@example.com"},
            "rating": {"type": "nps", "value": 2},
            "touchpoint": "checkout",
            "journey_stage": "purchase",
            "language": "en",
            "attributes": {},
            "occurred_at": alert["created_at"],
            "received_at": alert["created_at"],
        },
        sentiment={
            "label": "negative",
            "score": -0.8,
            "confidence": 0.9,
            "language": "en",
            "model": "lexicon",
            "model_version": "1",
            "scored_at": alert["created_at"],
            "topics": topics,
            "urgency": "high",
            "emotions": {"frustration": 0.5, "anger": 0.75},
            "urgency_cues": ["cancel: close my account"],
        },
        deliveries=[],
        history=[
            {
                "type": "raised",
                "from_status": None,
                "to_status": "open",
                "actor": None,
                "note": None,
                "occurred_at": alert["created_at"],
                "details": None,
            }
        ],
        items=[],
    )
    return detail


def a_feedback_item(
    number: int, channel: str, label: str | None, rating: dict[str, Any] | None
) -> dict[str, Any]:
    """An entry of ``GET /v1/feedback``; items with a negative label have an open alert."""
    occurred = (datetime(2026, 11, 7, 12, 0, tzinfo=UTC) - timedelta(hours=number)).isoformat()
    return {
        "feedback": {
            "id": f"00000000-0000-4000-8000-{number:012d}",
            "channel": channel,
            "external_id": f"item-{number}",
            "text": f"Item {number} <says> something",
            "subject": None,
            "customer": {"name": "Li Wei"},
            "rating": rating,
            "touchpoint": "checkout",
            "journey_stage": None,
            "language": "en",
            "attributes": {},
            "occurred_at": occurred,
            "received_at": occurred,
        },
        "sentiment": None
        if label is None
        else {
            "label": label,
            "score": -0.8 if label == "negative" else 0.5,
            "confidence": 0.9,
            "language": "en",
            "model": "lexicon",
            "model_version": "1",
            "scored_at": occurred,
        },
        "alert_id": f"10000000-0000-4000-8000-{number:012d}" if label == "negative" else None,
        "alert_status": "open" if label == "negative" else None,
    }


def a_kpi_group(key: str, volume: int, negative: int, alerts: int) -> dict[str, Any]:
    return {
        "key": key,
        "volume": volume,
        "sentiment": {"negative": negative, "neutral": volume - negative, "positive": 0},
        "negative_share": negative / volume if volume else None,
        "nps": -40.0,
        "nps_responses": 5,
        "csat": None,
        "csat_responses": 0,
        "ces": None,
        "ces_responses": 0,
        "alerts": alerts,
        "mtta_s": 120.0,
        "mttr_s": 3600.0,
        "sla_compliance": 0.5,
    }


@dataclass
class FakeAlerts(FakeUpstream):
    """Alerts, details and KPI reports held in dicts; actions answer from ``action_replies``."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    kpis: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    action_replies: list[Reply] = field(default_factory=list)
    # Related feedback by feedback id (an id missing here answers 404).
    related: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Stored feedback items (``GET /v1/feedback``), newest first.
    feedback: list[dict[str, Any]] = field(default_factory=list)
    # When set, feedback pages hold at most this many items whatever the limit asked.
    feedback_page_size: int | None = None

    def _feedback_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """Some of the real list's filters, and its paging (here the cursor is an offset)."""
        items = [
            item
            for item in self.feedback
            if ("channel" not in query or item["feedback"]["channel"] == query["channel"][0])
            and (
                "sentiment" not in query
                or (item["sentiment"] or {}).get("label") in query["sentiment"]
            )
            and (
                "rating_type" not in query
                or (item["feedback"]["rating"] or {}).get("type") == query["rating_type"][0]
            )
        ]
        start = int(query.get("cursor", ["0"])[0])
        limit = min(int(query.get("limit", ["50"])[0]), self.feedback_page_size or 200)
        more = start + limit < len(items)
        return {
            "items": items[start : start + limit],
            "next_cursor": str(start + limit) if more else None,
        }

    def _listed(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        """The list filters the real service applies in SQL, on these few alerts."""
        items = []
        for alert in self.alerts:
            detail = self.details.get(alert["id"]) or {}
            topics = (detail.get("sentiment") or {}).get("topics") or ["(none)"]
            if "status" in query and alert["status"] not in query["status"]:
                continue
            if any(
                name in query and alert[name] != query[name][0]
                for name in ("owner", "priority", "channel")
            ):
                continue
            if "topic" in query and query["topic"][0] not in topics:
                continue
            items.append(alert)
        return items

    def reply_to(self, request: Received) -> Reply:
        path, query = request.path, parse_qs(request.query.decode())
        if request.method == "GET" and path == "/v1/alerts":
            return _json({"items": self._listed(query), "next_cursor": None})
        if request.method == "GET" and path == "/v1/feedback":
            return _json(self._feedback_page(query))
        if request.method == "GET" and path.endswith("/related"):
            feedback_id = path.split("/")[3]
            if feedback_id not in self.related:
                return _json({"error": {"code": "feedback_not_found", "detail": "No."}}, 404)
            items = self.related[feedback_id]
            return _json({"feedback_id": feedback_id, "items": items, "more": False})
        if request.method == "GET" and path.startswith("/v1/alerts/"):
            detail = self.details.get(path.rsplit("/", 1)[1])
            if detail is None:
                return _json({"error": {"code": "alert_not_found", "detail": "No."}}, 404)
            return _json(detail)
        if request.method == "GET" and path == "/v1/kpis":
            group_by = query.get("group_by", ["channel"])[0]
            if group_by not in self.kpis:
                return _json({"error": {"code": "invalid_request", "detail": "group_by"}}, 422)
            groups = self.kpis[group_by]
            total = a_kpi_group(
                "all",
                sum(g["volume"] for g in groups),
                sum(g["sentiment"]["negative"] for g in groups),
                sum(g["alerts"] for g in groups),
            )
            return _json(
                {
                    "start": query["from"][0],
                    "end": query["to"][0],
                    "group_by": group_by,
                    "groups": groups,
                    "total": total,
                }
            )
        if request.method == "POST" and self.action_replies:
            return self.action_replies.pop(0)
        return _json(self.alerts[0] if self.alerts else {})


def _json(body: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(body))
