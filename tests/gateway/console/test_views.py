"""The console's pure parts: SLA states, filters, highlighting, ranges, languages, sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from closeloop_gateway.console import views
from closeloop_gateway.console.config import ConsoleSettings
from closeloop_gateway.console.i18n import EN, ZH, Translator, negotiate
from closeloop_gateway.console.session import SessionCodec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _alert(
    status: str, created_min_ago: float, due_in_min: float | None, **sla: Any
) -> dict[str, Any]:
    clock = "acknowledge" if status == "open" else "resolve"
    due = None if due_in_min is None else (NOW + timedelta(minutes=due_in_min)).isoformat()
    return {
        "status": status,
        "created_at": (NOW - timedelta(minutes=created_min_ago)).isoformat(),
        "sla": {
            "acknowledge_due_at": None,
            "resolve_due_at": None,
            "acknowledge_breached_at": None,
            "resolve_breached_at": None,
            f"{clock}_due_at": due,
            **sla,
        },
    }


@pytest.mark.parametrize(
    ("alert", "state", "clock"),
    [
        # 30-minute window, 20 left: fine; 5 left (under a quarter): at risk; past due: breached.
        (_alert("open", 10, 20), "ok", "acknowledge"),
        (_alert("open", 25, 5), "at_risk", "acknowledge"),
        (_alert("open", 31, -1), "breached", "acknowledge"),
        (_alert("acknowledged", 60, 180), "ok", "resolve"),
        (
            _alert("acknowledged", 60, 180, acknowledge_breached_at=NOW.isoformat()),
            "breached",
            "resolve",
        ),
        (_alert("open", 5, None), "none", None),
        (_alert("resolved", 5, 10), "met", None),
        (_alert("resolved", 5, 10, resolve_breached_at=NOW.isoformat()), "breached", None),
    ],
)
def test_sla_state(alert: dict[str, Any], state: str, clock: str | None) -> None:
    view = views.sla_of(alert, NOW)
    assert (view.state, view.clock) == (state, clock)


def test_filters_parse_and_refuse() -> None:
    filters = views.parse_filters(
        {"status": "open", "channel": "email", "from": "2026-11-01", "to": "2026-11-07"}
    )
    assert filters.upstream_query() == {
        "status": "open",
        "priority": None,
        "owner": None,
        "channel": "email",
        "sla": None,
        "topic": None,
        "touchpoint": None,
        "journey_stage": None,
        # Whole UTC days: the end is the start of the day after "to".
        "from": "2026-11-01T00:00:00+00:00",
        "to": "2026-11-08T00:00:00+00:00",
    }
    assert filters.query() == {
        "status": "open",
        "channel": "email",
        "from": "2026-11-01",
        "to": "2026-11-07",
    }
    assert views.parse_filters({}).status == "unresolved"
    unresolved = views.parse_filters({"status": "unresolved"}).upstream_query()
    assert unresolved["status"] == ["open", "acknowledged"]
    assert views.parse_filters({"status": "all"}).upstream_query()["status"] is None
    for bad in ({"channel": "fax"}, {"owner": "-x"}, {"from": "2026-13-01"}, {"topic": "a\x00"}):
        with pytest.raises(views.FilterError):
            views.parse_filters(bad)


def test_feedback_filters_are_the_kpi_groups() -> None:
    filters = views.parse_feedback_filters(
        {"channel": "app", "journey_stage": "(none)", "rating_type": "nps", "to": "2026-11-07"},
        ["negative", "neutral", "negative"],
    )
    assert filters.upstream_query() == {
        "channel": "app",
        "touchpoint": None,
        "journey_stage": "(none)",
        "sentiment": ["negative", "neutral"],
        "rating_type": "nps",
        "topic": None,
        "from": None,
        # Whole UTC days, as the dashboard's KPI range: [from 00:00, the day after to).
        "to": "2026-11-08T00:00:00+00:00",
    }
    assert filters.query() == {
        "channel": "app",
        "journey_stage": "(none)",
        "sentiment": ["negative", "neutral"],
        "rating_type": "nps",
        "to": "2026-11-07",
    }
    assert views.parse_feedback_filters({}, []).upstream_query()["sentiment"] == []
    for bad, sentiments in (
        ({"channel": "fax"}, []),
        ({}, ["furious"]),
        ({"rating_type": "stars"}, []),
        ({"journey_stage": "shopping"}, []),
        ({"topic": "a\x00"}, []),
        ({"from": "2026-11-08", "to": "2026-11-01"}, []),
    ):
        with pytest.raises(views.FilterError):
            views.parse_feedback_filters(bad, sentiments)


def _title(kind: str) -> Callable[[str], str]:
    return lambda value: f"{kind}: {value}"


def test_highlight_escapes_then_marks_with_labels() -> None:
    cues = views.topic_cues(["billing", "wait_time"], _title("topic"))
    marked = str(views.highlight("<script>x</script> Billing & WAIT time", cues))
    assert marked == (
        "&lt;script&gt;x&lt;/script&gt; "
        '<mark class="cue topic" title="topic: billing">Billing'
        '<span class="visually-hidden"> (topic: billing)</span></mark> &amp; '
        '<mark class="cue topic" title="topic: wait_time">WAIT time'
        '<span class="visually-hidden"> (topic: wait_time)</span></mark>'
    )
    assert views.topic_terms(["wait_time", "app_bug"]) == [
        "wait time",
        "wait",
        "time",
        "app bug",
        "app",
        "bug",
    ]
    assert str(views.highlight("a & b", [])) == "a &amp; b"
    # Whole words only: "app" is not marked inside "happy".
    app = views.topic_cues(["app"], _title("topic"))
    assert "<mark" not in str(views.highlight("happy", app))


def test_urgency_cues_are_found_in_the_text_and_win_overlaps() -> None:
    cues = views.urgency_cues(
        ["cancel: i'm cancelling my account", "regulator: 12315", "legal: "], _title("urgency")
    ) + views.topic_cues(["account"], _title("topic"))
    text = "I\u2019m   CANCELLING my account and calling 12315."
    marked = str(views.highlight(text, cues))
    # The cue's words across other spacing, case and apostrophe; the topic word inside
    # it is not marked again; a cue with no words ("legal: ") marks nothing.
    assert marked.count("<mark") == 2
    assert (
        '<mark class="cue urgency" title="urgency: cancel">I\u2019m   CANCELLING my account'
        in marked
    )
    assert '<mark class="cue urgency" title="urgency: regulator">12315' in marked
    chinese = views.urgency_cues(["cancel: 销户"], _title("urgency"))
    assert "销户<span" in str(views.highlight("我要销户！", chinese))


def test_emotions_strongest_first() -> None:
    sentiment = {"emotions": {"joy": 0.5, "anger": 0.875, "anxiety": 0.5}}
    assert views.emotions_of(sentiment) == [("anger", 0.875), ("anxiety", 0.5), ("joy", 0.5)]
    assert views.emotions_of({}) == []


def test_range_buckets_cover_every_day_once() -> None:
    week = views.Range(date(2026, 11, 16), date(2026, 11, 22))
    assert [(b.start.day, b.end.day) for b in week.buckets()] == [(d, d) for d in range(16, 23)]
    quarter = views.Range(date(2026, 8, 25), date(2026, 11, 22))
    buckets = quarter.buckets()
    assert len(buckets) <= views.TREND_BUCKETS
    assert sum(b.days for b in buckets) == quarter.days
    assert buckets[0].start == quarter.start
    assert buckets[-1].end == quarter.end
    assert week.bounds() == ("2026-11-16T00:00:00+00:00", "2026-11-23T00:00:00+00:00")
    with pytest.raises(views.FilterError):
        views.parse_range({"from": "2026-01-01", "to": "2026-11-22"}, date(2026, 11, 22))


def test_trend_bars_scale_to_the_tallest() -> None:
    day = views.Range(date(2026, 11, 22), date(2026, 11, 22))
    bars = views.trend_bars(
        [(day, {"negative": 2, "neutral": 0, "positive": 2}), (day, {"negative": 1})]
    )
    tall, short = bars
    assert tall.total == 4
    assert short.total == 1
    full = views.CHART_HEIGHT - views.CHART_TOP
    assert sum(segment[2] for segment in tall.segments) == pytest.approx(full)
    assert sum(segment[2] for segment in short.segments) == pytest.approx(full / 4)
    # A bar counts feedback items: it links to them by its days, not to alerts.
    assert tall.link_query == {"from": "2026-11-22", "to": "2026-11-22"}


def test_rising_topics() -> None:
    def group(key: str, negative: int) -> dict[str, Any]:
        return {"key": key, "sentiment": {"negative": negative}}

    rows = views.rising_topics(
        [group("billing", 5), group("wait", 2), group("ui", 1), group("(none)", 9)],
        [group("billing", 1), group("wait", 2)],
    )
    assert rows == [
        {"topic": "billing", "now": 5, "before": 1},
        {"topic": "ui", "now": 1, "before": 0},
    ]


def test_languages() -> None:
    assert set(EN) == set(ZH)
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert negotiate("en-GB,zh;q=0.5") == "en"
    assert negotiate("fr-FR, zh-TW;q=0.7, en;q=0.6") == "zh"
    assert negotiate("zh;q=0, de") == "en"
    assert negotiate(None) == "en"
    assert Translator("zh")("last_days", days=7) == "最近 7 天"
    assert Translator("en")("missing_key", default="fallback") == "fallback"


def test_session_cookie_round_trip_and_tamper() -> None:
    codec = SessionCodec("s" * 32, max_age_s=60)
    session = codec.new("ab" * 32, "Alice")
    assert codec.loads(codec.dumps(session)) == session
    other = SessionCodec("t" * 32, max_age_s=60)
    assert other.loads(codec.dumps(session)) is None
    assert codec.loads(codec.dumps(session)[:-2] + "xx") is None
    assert codec.loads(None) is None


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ValidationError):
        ConsoleSettings(session_secret=SecretStr("too short"))
    assert len(ConsoleSettings().session_secret.get_secret_value()) >= 32
