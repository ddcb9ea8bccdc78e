"""What the pages show, computed from the alerts service's answers: SLA states, the
inbox's filters, highlighted text, and the dashboard's charts (as SVG geometry)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from markupsafe import Markup

# An SLA clock turns "at risk" (amber, then red in the browser) when this share of its
# window is left: with the demo's 20-second clocks that is 5 s, with a 4-hour clock 1 h.
AT_RISK_SHARE = 0.25

STATUSES = ("unresolved", "open", "acknowledged", "resolved", "all")
PRIORITIES = ("critical", "high", "medium", "low")
CHANNELS = ("hotline", "email", "social", "app")
SLA_STATES = ("ok", "at_risk", "breached")
JOURNEY_STAGES = (
    "awareness",
    "consideration",
    "purchase",
    "onboarding",
    "usage",
    "support",
    "renewal",
)
# "(none)" is how the KPIs name "no value" (no topic, no touchpoint); dashboard links
# carry it and the alerts list API takes it.
NONE_VALUE = "(none)"
OWNER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
# Topics, touchpoints: free-form values from the feedback; bounded so a link stays a link.
VALUE_PATTERN = re.compile(r"^[^\x00-\x1f]{1,128}$")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SlaView:
    state: str  # none, ok, at_risk, breached, met
    clock: str | None  # acknowledge or resolve: the clock that is running
    due_at: datetime | None
    started_at: datetime | None

    @property
    def remaining_s(self) -> float | None:
        if self.due_at is None:
            return None
        return (self.due_at - datetime.now(UTC)).total_seconds()


def sla_of(alert: Mapping[str, Any], now: datetime) -> SlaView:
    sla = alert.get("sla") or {}
    ack_breached = parse_time(sla.get("acknowledge_breached_at"))
    resolve_breached = parse_time(sla.get("resolve_breached_at"))
    created = parse_time(alert.get("created_at"))
    if alert.get("status") == "resolved":
        if not sla.get("acknowledge_due_at") and not sla.get("resolve_due_at"):
            return SlaView("none", None, None, created)
        breached = ack_breached or resolve_breached
        return SlaView("breached" if breached else "met", None, None, created)
    clock = "acknowledge" if alert.get("status") == "open" else "resolve"
    due = parse_time(sla.get(f"{clock}_due_at"))
    if due is None:
        return SlaView("breached" if ack_breached else "none", None, None, created)
    if ack_breached or resolve_breached or due <= now:
        return SlaView("breached", clock, due, created)
    window = (due - created).total_seconds() if created else 0.0
    left = (due - now).total_seconds()
    state = "at_risk" if window > 0 and left <= window * AT_RISK_SHARE else "ok"
    return SlaView(state, clock, due, created)


@dataclass(frozen=True, slots=True)
class InboxFilters:
    status: str = "unresolved"
    priority: str | None = None
    owner: str | None = None
    channel: str | None = None
    sla: str | None = None
    topic: str | None = None
    touchpoint: str | None = None
    journey_stage: str | None = None
    since: date | None = None
    until: date | None = None

    def upstream_query(self) -> dict[str, str | list[str] | None]:
        """These filters as the alerts list API takes them: all applied in its database,
        so a page is exact and the cursor pages through matching alerts only."""
        if self.status == "unresolved":
            status: str | list[str] | None = ["open", "acknowledged"]
        else:
            status = None if self.status == "all" else self.status
        return {
            "status": status,
            "priority": self.priority,
            "owner": self.owner,
            "channel": self.channel,
            "sla": self.sla,
            "topic": self.topic,
            "touchpoint": self.touchpoint,
            "journey_stage": self.journey_stage,
            # Whole UTC days: [from 00:00, the day after to 00:00).
            "from": _instant(self.since) if self.since else None,
            "to": _instant(self.until + timedelta(days=1)) if self.until else None,
        }

    def query(self) -> dict[str, str]:
        """These filters as a query string's fields (for links and the live refresh)."""
        values = {
            "status": self.status,
            "priority": self.priority,
            "owner": self.owner,
            "channel": self.channel,
            "sla": self.sla,
            "topic": self.topic,
            "touchpoint": self.touchpoint,
            "journey_stage": self.journey_stage,
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in values.items() if value}


class FilterError(ValueError):
    """A filter value the console does not accept (a 422)."""


def _choice(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise FilterError(f"{name} must be one of {', '.join(allowed)}.")
    return value


def _matching(value: str | None, pattern: re.Pattern[str], name: str) -> str | None:
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise FilterError(f"{name} is not a valid value.")
    return value


def parse_date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{name} must be a date (YYYY-MM-DD).") from None


def parse_filters(query: Mapping[str, str]) -> InboxFilters:
    return InboxFilters(
        status=_choice(query.get("status"), STATUSES, "status") or "unresolved",
        priority=_choice(query.get("priority"), PRIORITIES, "priority"),
        owner=_matching(query.get("owner"), OWNER_PATTERN, "owner"),
        channel=_choice(query.get("channel"), CHANNELS, "channel"),
        sla=_choice(query.get("sla"), SLA_STATES, "sla"),
        topic=_matching(query.get("topic"), VALUE_PATTERN, "topic"),
        touchpoint=_matching(query.get("touchpoint"), VALUE_PATTERN, "touchpoint"),
        journey_stage=_matching(query.get("journey_stage"), VALUE_PATTERN, "journey_stage"),
        since=parse_date(query.get("from"), "from"),
        until=parse_date(query.get("to"), "to"),
    )


# --- the feedback list -------------------------------------------------------------------------

SENTIMENTS = ("negative", "neutral", "positive")
# The rating types the KPIs aggregate, so the list can show the items behind NPS, CSAT, CES.
RATING_TYPES = ("nps", "csat", "ces")


@dataclass(frozen=True, slots=True)
class FeedbackFilters:
    """The feedback list's filters: the KPI groups' own (same range, same ``(none)``), so
    a dashboard number and the list it links to agree."""

    channel: str | None = None
    touchpoint: str | None = None
    journey_stage: str | None = None
    sentiments: tuple[str, ...] = ()
    rating_type: str | None = None
    topic: str | None = None
    since: date | None = None
    until: date | None = None

    def _values(self) -> dict[str, str | list[str] | None]:
        return {
            "channel": self.channel,
            "touchpoint": self.touchpoint,
            "journey_stage": self.journey_stage,
            "sentiment": list(self.sentiments),
            "rating_type": self.rating_type,
            "topic": self.topic,
        }

    def upstream_query(self) -> dict[str, str | list[str] | None]:
        """As ``GET /v1/feedback`` takes them; whole UTC days, as the dashboard's range."""
        return {
            **self._values(),
            "from": _instant(self.since) if self.since else None,
            "to": _instant(self.until + timedelta(days=1)) if self.until else None,
        }

    def query(self) -> dict[str, str | list[str]]:
        """As a query string's fields (for the next page's link)."""
        values = {
            **self._values(),
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in values.items() if value}


def parse_feedback_filters(query: Mapping[str, str], sentiments: Sequence[str]) -> FeedbackFilters:
    """``sentiments``: every ``sentiment`` value of the query (it repeats)."""
    chosen = tuple(
        dict.fromkeys(_choice(value, SENTIMENTS, "sentiment") or "" for value in sentiments)
    )
    since = parse_date(query.get("from"), "from")
    until = parse_date(query.get("to"), "to")
    if since and until and since > until:
        raise FilterError("from must not be after to.")
    return FeedbackFilters(
        channel=_choice(query.get("channel"), CHANNELS, "channel"),
        touchpoint=_matching(query.get("touchpoint"), VALUE_PATTERN, "touchpoint"),
        journey_stage=_choice(
            query.get("journey_stage"), (*JOURNEY_STAGES, NONE_VALUE), "journey_stage"
        ),
        sentiments=tuple(value for value in chosen if value),
        rating_type=_choice(query.get("rating_type"), RATING_TYPES, "rating_type"),
        topic=_matching(query.get("topic"), VALUE_PATTERN, "topic"),
        since=since,
        until=until,
    )


# --- the alert page ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cue:
    """Something the analysis found, as words to find in the text: a topic or an urgency cue."""

    kind: str  # "urgency" or "topic": the <mark>'s class, styled apart (not by colour alone)
    title: str  # what the mark says on hover and to screen readers, e.g. "Urgency: cancel"
    pattern: re.Pattern[str]


def _words_pattern(words: str) -> re.Pattern[str] | None:
    """The words case-insensitively, any whitespace between them, either apostrophe, and
    (for Latin words) not inside a longer word: "app" does not light up "happy"."""
    parts = [re.escape(part) for part in words.replace("\u2019", "'").split()]
    if not parts:
        return None
    body = r"\s+".join(parts).replace("'", "['\u2019]")
    if words.isascii():
        body = rf"(?<!\w){body}(?!\w)"
    return re.compile(body, re.IGNORECASE)


def topic_cues(topics: Iterable[str], title: Callable[[str], str]) -> list[Cue]:
    """Topic slugs as the words a text would use: "wait_time" → "wait time", "wait", "time"."""
    cues = []
    for topic in topics:
        for term in topic_terms([topic]):
            pattern = _words_pattern(term)
            if pattern is not None:
                cues.append(Cue("topic", title(topic), pattern))
    return cues


def urgency_cues(cues: Iterable[str], title: Callable[[str], str]) -> list[Cue]:
    """The sentiment service's urgency cues ("kind: matched text") as the words to find."""
    found = []
    for cue in cues:
        kind, _, matched = cue.partition(":")
        pattern = _words_pattern(matched.strip())
        if pattern is not None:
            found.append(Cue("urgency", title(kind.strip()), pattern))
    return found


def highlight(text: str, cues: Sequence[Cue]) -> Markup:
    """The text, escaped, with each cue's words in a labelled ``<mark>``.

    Overlaps: the earlier match wins, then the longer, then the cue listed first (urgency
    cues go first: they matter most)."""
    matches = sorted(
        (match.start(), -match.end(), rank, cue)
        for rank, cue in enumerate(cues)
        for match in cue.pattern.finditer(text)
        if match.end() > match.start()
    )
    out: list[str] = []
    position = 0
    for start, negative_end, _rank, cue in matches:
        if start < position:
            continue
        end = -negative_end
        label = html.escape(cue.title, quote=True)
        out.append(html.escape(text[position:start]))
        out.append(
            f'<mark class="cue {cue.kind}" title="{label}">{html.escape(text[start:end])}'
            f'<span class="visually-hidden"> ({label})</span></mark>'
        )
        position = end
    out.append(html.escape(text[position:]))
    return Markup("".join(out))


def topic_terms(topics: Iterable[str]) -> list[str]:
    """Topic slugs as the words a text would use: "wait_time" → "wait time", "wait"."""
    terms: list[str] = []
    for topic in topics:
        words = topic.replace("_", " ").replace("-", " ").strip()
        terms.append(words)
        # Short words ("to", "of") would light up half the text; "app", "bug" are fine.
        terms.extend(w for w in words.split() if len(w) >= 3)
    return terms


def emotions_of(sentiment: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The emotions found, strongest first."""
    found = sentiment.get("emotions") or {}
    return sorted(
        ((str(name), float(level)) for name, level in found.items()),
        key=lambda pair: (-pair[1], pair[0]),
    )


# --- the dashboard ----------------------------------------------------------------------------

MAX_DASHBOARD_DAYS = 92
TREND_BUCKETS = 14


@dataclass(frozen=True, slots=True)
class Range:
    start: date  # first day, inclusive
    end: date  # last day, inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def covers(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment.astimezone(UTC).date() <= self.end

    def bounds(self) -> tuple[str, str]:
        """[from, to) as the KPI API takes them (UTC days)."""
        return _instant(self.start), _instant(self.end + timedelta(days=1))

    def buckets(self) -> list[Range]:
        """At most TREND_BUCKETS consecutive slices of whole days covering the range."""
        size = -(-self.days // TREND_BUCKETS)
        slices, first = [], self.start
        while first <= self.end:
            last = min(first + timedelta(days=size - 1), self.end)
            slices.append(Range(first, last))
            first = last + timedelta(days=1)
        return slices


def _instant(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def parse_range(query: Mapping[str, str], today: date) -> Range:
    end = parse_date(query.get("to"), "to") or today
    start = parse_date(query.get("from"), "from") or end - timedelta(days=6)
    if start > end:
        raise FilterError("from must not be after to.")
    if (end - start).days + 1 > MAX_DASHBOARD_DAYS:
        raise FilterError(f"The range is at most {MAX_DASHBOARD_DAYS} days.")
    return Range(start, end)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    x: float
    width: float
    # (sentiment, y, height, count) from the bottom up
    segments: tuple[tuple[str, float, float, int], ...]
    total: int
    link_query: dict[str, str]


CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 960.0, 200.0, 10.0


def trend_bars(points: list[tuple[Range, Mapping[str, int]]]) -> list[Bar]:
    """Stacked bars of the sentiment mix per slice, scaled to the tallest."""
    tallest = max((sum(mix.values()) for _, mix in points), default=0) or 1
    slot = CHART_WIDTH / max(len(points), 1)
    bars = []
    for index, (span, mix) in enumerate(points):
        bottom = CHART_HEIGHT
        segments = []
        for sentiment in ("negative", "neutral", "positive"):
            count = int(mix.get(sentiment, 0))
            height = (CHART_HEIGHT - CHART_TOP) * count / tallest
            bottom -= height
            segments.append((sentiment, round(bottom, 1), round(height, 1), count))
        label = span.start.strftime("%m-%d")
        if span.end != span.start:
            label += "–" + span.end.strftime("%m-%d")
        bars.append(
            Bar(
                label,
                round(index * slot + slot * 0.15, 1),
                round(slot * 0.7, 1),
                tuple(segments),
                sum(int(v) for v in mix.values()),
                # The slice's feedback items (the bar counts items, not alerts).
                {"from": span.start.isoformat(), "to": span.end.isoformat()},
            )
        )
    return bars


def heat_colour(share: float | None) -> str:
    """White (no negatives) to a dark red (all negative); grey when there is no data."""
    if share is None:
        return "#eeeeee"
    lightness = 97 - round(min(max(share, 0.0), 1.0) * 55)
    return f"hsl(0 75% {lightness}%)"


def heat_text_colour(share: float | None) -> str:
    # Dark text on light cells, white on dark ones: contrast stays above 4.5:1.
    return "#ffffff" if share is not None and share > 0.55 else "#1a1a1a"


def rising_topics(
    this_week: list[Mapping[str, Any]], last_week: list[Mapping[str, Any]], limit: int = 5
) -> list[dict[str, Any]]:
    """Topics whose negative items grew most from last week to this week."""
    before = {group["key"]: group["sentiment"]["negative"] for group in last_week}
    rows = []
    for group in this_week:
        if group["key"] == NONE_VALUE:
            continue
        now_count = int(group["sentiment"]["negative"])
        was = int(before.get(group["key"], 0))
        if now_count > was:
            rows.append({"topic": group["key"], "now": now_count, "before": was})
    rows.sort(key=lambda row: (row["now"] - row["before"], row["now"]), reverse=True)
    return rows[:limit]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def milliseconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{float(seconds) * 1000:.0f} ms"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


def number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
