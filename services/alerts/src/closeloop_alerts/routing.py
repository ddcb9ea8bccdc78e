"""Routing: which owner a negative feedback item goes to, and how urgently.

The routing file (``CLOSELOOP_ROUTING_FILE``, YAML) names the owners, how to notify each
of them, and an ordered list of rules. Evaluation order:

1. Only **negative** items are routed in this version; neutral and positive items are
   stored but raise no alert (a rule may still say ``sentiment: negative`` explicitly).
2. Rules are tried **in file order**; the **first** rule whose conditions all hold wins
   and gives the owner and priority.
3. A negative item that no rule matched goes to ``default_owner`` with
   ``default_priority`` (``medium`` unless set), so no negative item is ever dropped.

Each condition is a small pure function over a flattened :class:`Subject`, so new
conditions (topics, keywords, urgency) are a field on :class:`When` plus one function
in :data:`CONDITIONS`. The parsed configuration is immutable and held by
:class:`RoutingState`, so a later hot reload only has to swap one reference.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from closeloop_shared.contracts.alerts import AlertPriority
from closeloop_shared.contracts.feedback import Channel, JourneyStage, RatingType
from closeloop_shared.contracts.sentiment import ScoredFeedback, SentimentLabel, Urgency

T = TypeVar("T")


class RoutingError(ValueError):
    """The routing file is missing, not YAML, or not a valid routing configuration."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid routing file {source}:\n{listing}")


def _as_list(value: Any) -> Any:
    """A condition may name one value or a list of values (any of them matches)."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


OneOrMany = Annotated[list[T], BeforeValidator(_as_list), Field(min_length=1)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]
Score = Annotated[float, Field(ge=-1.0, le=1.0)]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_s(value: Any) -> Any:
    """``90``, ``"90s"``, ``"15m"``, ``"4h"``, ``"2d"`` -> seconds."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 90, 90s, 15m, 4h, 2d)")
        return float(found.group(1)) * _UNIT_S[found.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_duration_s), Field(gt=0)]


def _casefold_all(values: list[str] | None) -> list[str] | None:
    return None if values is None else [value.strip().casefold() for value in values]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RatingCondition(_Model):
    """The item carries a rating of one of these scales within [min, max] (e.g. NPS ≤ 6)."""

    type: OneOrMany[RatingType]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RatingCondition:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("rating min must not exceed max")
        return self


class When(_Model):
    """Conditions of one rule; all that are set must hold. Unset means "any"."""

    channel: OneOrMany[Channel] | None = None
    sentiment: OneOrMany[SentimentLabel] | None = None
    touchpoint: OneOrMany[str] | None = None
    journey_stage: OneOrMany[JourneyStage] | None = None
    customer_tier: OneOrMany[str] | None = None
    language: OneOrMany[str] | None = None
    min_score: Score | None = None
    max_score: Score | None = None
    rating: RatingCondition | None = None
    # From the sentiment service's richer analysis (absent on older events: no match).
    topics: OneOrMany[str] | None = None
    urgency: OneOrMany[Urgency] | None = None
    # Case-insensitive substrings of the text or subject; any of them matches.
    keywords: OneOrMany[Annotated[str, Field(min_length=1, max_length=200)]] | None = None

    @field_validator("touchpoint", "customer_tier", "language", "topics", "keywords")
    @classmethod
    def _casefold(cls, value: list[str] | None) -> list[str] | None:
        # Compared case-insensitively: "Gold" in a file matches tier "gold" on an item.
        return _casefold_all(value)

    @model_validator(mode="after")
    def _score_bounds(self) -> When:
        if (
            self.min_score is not None
            and self.max_score is not None
            and self.min_score > self.max_score
        ):
            raise ValueError("min_score must not exceed max_score")
        return self

    def specificity(self) -> int:
        """How many conditions the rule sets (score bounds count once)."""
        values = self.model_dump(exclude_none=True)
        if "min_score" in values and "max_score" in values:
            return len(values) - 1
        return len(values)


class WebhookTarget(_Model):
    """A Standard Webhooks endpoint: signed POSTs, ``whsec_`` secret unique to the endpoint."""

    type: Literal["webhook"]
    id: Identifier | None = None
    url: AnyHttpUrl
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.startswith("whsec_"):
            raise ValueError("secret must start with 'whsec_' (Standard Webhooks)")
        try:
            key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("secret must be base64 after 'whsec_'") from None
        # The spec asks for 24 to 64 random bytes.
        if not 24 <= len(key) <= 64:
            raise ValueError(f"secret must encode 24 to 64 bytes, not {len(key)}")
        return value


class SlackTarget(_Model):
    """A Slack incoming webhook (the URL is the credential); the message uses Block Kit."""

    type: Literal["slack"]
    id: Identifier | None = None
    url: AnyHttpUrl


class EmailTarget(_Model):
    """Email through the SMTP server of the ``CLOSELOOP_ALERTS_SMTP_*`` settings."""

    type: Literal["email"]
    id: Identifier | None = None
    to: OneOrMany[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]]

    @property
    def url(self) -> str:
        return "mailto:" + ",".join(self.to)


class WeComTarget(_Model):
    """A WeCom (企业微信) group bot: ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``."""

    type: Literal["wecom"]
    id: Identifier | None = None
    url: AnyHttpUrl


class DingTalkTarget(_Model):
    """A DingTalk (钉钉) custom robot; with ``secret`` (``SEC...``) requests are signed."""

    type: Literal["dingtalk"]
    id: Identifier | None = None
    url: AnyHttpUrl
    secret: SecretStr | None = None


class FeishuTarget(_Model):
    """A Feishu / Lark custom bot; with ``secret`` the body carries ``timestamp`` and ``sign``."""

    type: Literal["feishu"]
    id: Identifier | None = None
    url: AnyHttpUrl
    secret: SecretStr | None = None


NotifyTarget = Annotated[
    WebhookTarget | SlackTarget | EmailTarget | WeComTarget | DingTalkTarget | FeishuTarget,
    Field(discriminator="type"),
]
AnyTarget = WebhookTarget | SlackTarget | EmailTarget | WeComTarget | DingTalkTarget | FeishuTarget

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Dimension = Literal["topic", "touchpoint", "channel"]


def _clock_time(value: Any, info: ValidationInfo) -> Any:
    """``"09:00"``; in a YAML file also an unquoted 9:00, which YAML 1.1 reads as 540."""
    if isinstance(value, time):
        return value
    from_yaml = bool(info.context and info.context.get("yaml"))
    minutes = value if isinstance(value, int) and not isinstance(value, bool) else -1
    if from_yaml and 0 <= minutes < 24 * 60:
        return time(minutes // 60, minutes % 60)
    if isinstance(value, str) and re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", value.strip()):
        hour, minute = value.strip().split(":")
        return time(int(hour), int(minute))
    raise ValueError(f'not a time of day: {value!r} (use "HH:MM")')


ClockTime = Annotated[time, BeforeValidator(_clock_time)]


def _work_week() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


def _all_dimensions() -> list[Dimension]:
    return ["topic", "touchpoint", "channel"]


class WorkingHours(_Model):
    """When the owner works, in the owner's ``timezone``; SLA clocks only run then."""

    days: Annotated[list[Weekday], Field(min_length=1)] = Field(default_factory=_work_week)
    start: ClockTime = time(9, 0)
    end: ClockTime = time(17, 0)

    @model_validator(mode="after")
    def _ordered(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("working_hours start must be before end")
        return self

    def weekdays(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(day) for day in self.days)


class Owner(_Model):
    id: Identifier
    name: str | None = None
    notify: list[NotifyTarget] = Field(default_factory=list)
    # IANA name, e.g. Europe/Berlin or Asia/Shanghai; working hours are read in it.
    timezone: str | None = None
    working_hours: WorkingHours | None = None
    # Who gets the alert when an SLA is breached or every notify target keeps failing.
    escalation_owner: Identifier | None = None
    # Mask personal data (contact fields; e-mails, phones, card and ID numbers in the text)
    # in notifications. Unset: chat tools and e-mail are masked, webhooks get everything.
    redact_pii: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _unique_target_keys(self) -> Owner:
        if self.escalation_owner == self.id:
            raise ValueError("an owner cannot be its own escalation owner")
        keys = [key for key, _ in self.targets()]
        duplicates = _duplicates(keys)
        if duplicates:
            raise ValueError(f"notify target ids must be unique within an owner: {duplicates}")
        return self

    def redacts_pii(self, target: AnyTarget) -> bool:
        """Whether ``target`` gets masked notifications: people read chat tools and mail
        (often in shared channels), while a webhook feeds a system that may need the contact."""
        if self.redact_pii is not None:
            return self.redact_pii
        return target.type != "webhook"

    def targets(self) -> list[tuple[str, AnyTarget]]:
        """Targets with their stable key: the explicit ``id``, else ``<type>-<position>``."""
        return [
            (target.id or f"{target.type}-{position}", target)
            for position, target in enumerate(self.notify, start=1)
        ]


class Rule(_Model):
    id: Identifier
    description: str | None = None
    when: When = Field(default_factory=When)
    owner: Identifier
    priority: AlertPriority = AlertPriority.MEDIUM
    # Explicit precedence: higher is tried first; equal precedence keeps the file order.
    precedence: int = 0


class SlaTarget(_Model):
    """Time to acknowledge and to resolve, in the owner's working time when it has hours."""

    acknowledge: Duration | None = None
    resolve: Duration | None = None


def _sla(ack_s: float, resolve_s: float) -> SlaTarget:
    return SlaTarget(acknowledge=ack_s, resolve=resolve_s)


class SlaPolicy(_Model):
    critical: SlaTarget = Field(default_factory=lambda: _sla(15 * 60, 4 * 3600))
    high: SlaTarget = Field(default_factory=lambda: _sla(3600, 8 * 3600))
    medium: SlaTarget = Field(default_factory=lambda: _sla(4 * 3600, 24 * 3600))
    low: SlaTarget = Field(default_factory=lambda: _sla(24 * 3600, 72 * 3600))

    def of(self, priority: AlertPriority) -> SlaTarget:
        target: SlaTarget = getattr(self, priority.value)
        return target


class MergePolicy(_Model):
    """Noise control: negative items of one customer (matched by id, email, phone or handle,
    on any channel) within ``window`` of the alert's last item join that open alert."""

    enabled: bool = True
    window: Duration = 24 * 3600.0


class SpikePolicy(_Model):
    """Incident alerts when the negative rate of a topic, touchpoint or channel jumps."""

    enabled: bool = True
    dimensions: list[Dimension] = Field(default_factory=_all_dimensions)
    window: Duration = 3600.0  # the current bucket
    baseline_windows: Annotated[int, Field(ge=2, le=24 * 14)] = 24
    z_threshold: Annotated[float, Field(gt=0)] = 3.0
    min_negatives: Annotated[int, Field(ge=1)] = 5
    priority: AlertPriority = AlertPriority.HIGH


class RoutingConfig(_Model):
    version: Literal[1] = 1
    owners: Annotated[list[Owner], Field(min_length=1)]
    rules: list[Rule] = Field(default_factory=list)
    default_owner: Identifier
    default_priority: AlertPriority = AlertPriority.MEDIUM
    # first_match: the first matching rule in (precedence, file) order wins;
    # most_specific: among matching rules, the one with most conditions wins (then order).
    evaluation: Literal["first_match", "most_specific"] = "first_match"
    sla: SlaPolicy = Field(default_factory=SlaPolicy)
    # Allowed root-cause categories on resolve; unset allows any short slug.
    root_causes: list[Identifier] | None = None
    merge: MergePolicy | None = None
    spikes: SpikePolicy | None = None

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        problems: list[str] = []
        owner_ids = [owner.id for owner in self.owners]
        for owner_id in _duplicates(owner_ids):
            problems.append(f"owners: id {owner_id!r} is defined more than once")
        for rule_id in _duplicates([rule.id for rule in self.rules]):
            problems.append(f"rules: id {rule_id!r} is used by more than one rule")
        known = set(owner_ids)
        for index, rule in enumerate(self.rules):
            if rule.owner not in known:
                problems.append(
                    f"rules[{index}].owner: unknown owner {rule.owner!r} "
                    f"(owners: {', '.join(sorted(known))})"
                )
        if self.default_owner not in known:
            problems.append(
                f"default_owner: unknown owner {self.default_owner!r} "
                f"(owners: {', '.join(sorted(known))})"
            )
        for index, owner in enumerate(self.owners):
            if owner.escalation_owner is not None and owner.escalation_owner not in known:
                problems.append(
                    f"owners[{index}].escalation_owner: unknown owner "
                    f"{owner.escalation_owner!r} (owners: {', '.join(sorted(known))})"
                )
        if problems:
            # One line per problem; format_errors lists them separately.
            raise ValueError("\n".join(problems))
        return self


def _duplicates(values: Sequence[Hashable]) -> list[Any]:
    seen: set[Hashable] = set()
    repeated: list[Any] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


# --- Matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """The fields of a scored item that rules can look at, flattened and normalised."""

    channel: Channel
    sentiment: SentimentLabel
    score: float
    touchpoint: str | None
    journey_stage: JourneyStage | None
    customer_tier: str | None
    language: str | None
    rating_type: RatingType | None
    rating_value: float | None
    topics: frozenset[str] = frozenset()
    urgency: Urgency | None = None
    # Text and subject, casefolded, for keyword conditions.
    text: str = ""


def _urgency(value: Any) -> Urgency | None:
    if value is None:
        return None
    try:
        return Urgency(str(getattr(value, "value", value)).casefold())
    except ValueError:
        return None


def subject_of(item: ScoredFeedback) -> Subject:
    feedback = item.feedback
    sentiment = item.sentiment
    # The sender's declared language wins over detection, which can misread short texts.
    language = feedback.language or sentiment.language or None
    tier = feedback.customer.tier
    # Read defensively: events from before the richer analysis carry none of these.
    topics = getattr(sentiment, "topics", None) or []
    text = feedback.text if not feedback.subject else f"{feedback.subject}\n{feedback.text}"
    return Subject(
        channel=feedback.channel,
        sentiment=sentiment.label,
        score=sentiment.score,
        touchpoint=feedback.touchpoint.casefold() if feedback.touchpoint else None,
        journey_stage=feedback.journey_stage,
        customer_tier=tier.strip().casefold() if tier else None,
        language=language.strip().casefold() if language else None,
        rating_type=feedback.rating.type if feedback.rating else None,
        rating_value=feedback.rating.value if feedback.rating else None,
        topics=frozenset(str(topic).strip().casefold() for topic in topics),
        urgency=_urgency(getattr(sentiment, "urgency", None)),
        text=text.casefold(),
    )


def match_channel(when: When, subject: Subject) -> bool:
    return when.channel is None or subject.channel in when.channel


def match_sentiment(when: When, subject: Subject) -> bool:
    return when.sentiment is None or subject.sentiment in when.sentiment


def match_touchpoint(when: When, subject: Subject) -> bool:
    return when.touchpoint is None or subject.touchpoint in when.touchpoint


def match_journey_stage(when: When, subject: Subject) -> bool:
    return when.journey_stage is None or subject.journey_stage in when.journey_stage


def match_customer_tier(when: When, subject: Subject) -> bool:
    return when.customer_tier is None or subject.customer_tier in when.customer_tier


def match_language(when: When, subject: Subject) -> bool:
    """``en`` matches ``en``, ``en-US`` and ``en_GB``: rules name the primary language."""
    if when.language is None:
        return True
    if subject.language is None:
        return False
    primary = subject.language.replace("_", "-").split("-", 1)[0]
    return subject.language in when.language or primary in when.language


def match_score(when: When, subject: Subject) -> bool:
    if when.min_score is not None and subject.score < when.min_score:
        return False
    return when.max_score is None or subject.score <= when.max_score


def match_rating(when: When, subject: Subject) -> bool:
    condition = when.rating
    if condition is None:
        return True
    if subject.rating_type is None or subject.rating_value is None:
        return False
    if subject.rating_type not in condition.type:
        return False
    if condition.min is not None and subject.rating_value < condition.min:
        return False
    return condition.max is None or subject.rating_value <= condition.max


def match_topics(when: When, subject: Subject) -> bool:
    """Any of the rule's topics among the item's topics (case-insensitive)."""
    return when.topics is None or not subject.topics.isdisjoint(when.topics)


def match_urgency(when: When, subject: Subject) -> bool:
    return when.urgency is None or subject.urgency in when.urgency


def match_keywords(when: When, subject: Subject) -> bool:
    """Any keyword as a case-insensitive substring of the text or subject (works for CJK)."""
    return when.keywords is None or any(keyword in subject.text for keyword in when.keywords)


CONDITIONS: tuple[Callable[[When, Subject], bool], ...] = (
    match_channel,
    match_sentiment,
    match_touchpoint,
    match_journey_stage,
    match_customer_tier,
    match_language,
    match_score,
    match_rating,
    match_topics,
    match_urgency,
    match_keywords,
)


def failed_conditions(when: When, subject: Subject) -> list[str]:
    """Names of the conditions that do not hold (``channel``, ``score``, ...)."""
    return [
        condition.__name__.removeprefix("match_")
        for condition in CONDITIONS
        if not condition(when, subject)
    ]


def matches(when: When, subject: Subject) -> bool:
    return all(condition(when, subject) for condition in CONDITIONS)


@dataclass(frozen=True)
class RouteDecision:
    owner: Owner
    priority: AlertPriority
    rule_id: str | None
    sla: SlaTarget = field(default_factory=SlaTarget)


@dataclass(frozen=True)
class RuleCheck:
    rule_id: str
    matched: bool
    failed: list[str]


@dataclass(frozen=True)
class Explanation:
    """Why an item goes where it goes (the dry run)."""

    decision: RouteDecision | None
    reason: str
    checks: list[RuleCheck]


class Router:
    """Evaluates a :class:`RoutingConfig`; pure and cheap, safe to share between tasks.

    ``owners`` (from the database) replace or extend the file's owners of the same id.
    """

    def __init__(self, config: RoutingConfig, owners: Iterable[Owner] | None = None) -> None:
        self.config = config
        merged = {owner.id: owner for owner in config.owners}
        for owner in owners or ():
            merged[owner.id] = owner
        self._owners = merged
        self._targets: dict[tuple[str, str], AnyTarget] = {
            (owner.id, key): target for owner in merged.values() for key, target in owner.targets()
        }
        indexed = list(enumerate(config.rules))
        if config.evaluation == "most_specific":
            indexed.sort(
                key=lambda pair: (-pair[1].precedence, -pair[1].when.specificity(), pair[0])
            )
        else:
            indexed.sort(key=lambda pair: (-pair[1].precedence, pair[0]))
        self._ordered = [rule for _, rule in indexed]

    @property
    def owners(self) -> list[Owner]:
        return list(self._owners.values())

    @property
    def ordered_rules(self) -> list[Rule]:
        """The rules in evaluation order."""
        return list(self._ordered)

    def _decide(self, rule: Rule | None) -> RouteDecision:
        if rule is not None:
            owner = self._owners.get(rule.owner) or self._owners[self.config.default_owner]
            return RouteDecision(owner, rule.priority, rule.id, self.config.sla.of(rule.priority))
        priority = self.config.default_priority
        return RouteDecision(
            self._owners[self.config.default_owner], priority, None, self.config.sla.of(priority)
        )

    def route(self, item: ScoredFeedback) -> RouteDecision | None:
        """The owner and priority of an alert for ``item``, or None if it raises none."""
        if item.sentiment.label is not SentimentLabel.NEGATIVE:
            return None
        subject = subject_of(item)
        for rule in self._ordered:
            if matches(rule.when, subject):
                return self._decide(rule)
        return self._decide(None)

    def explain(self, item: ScoredFeedback) -> Explanation:
        subject = subject_of(item)
        checks = [
            RuleCheck(rule.id, not failed, failed)
            for rule in self._ordered
            for failed in [failed_conditions(rule.when, subject)]
        ]
        if item.sentiment.label is not SentimentLabel.NEGATIVE:
            return Explanation(
                None,
                f"sentiment is {item.sentiment.label.value}: only negative items alert",
                checks,
            )
        winner = next((check for check in checks if check.matched), None)
        if winner is None:
            return Explanation(
                self._decide(None), "no rule matched: the default owner takes it", checks
            )
        order = (
            "most specific, then precedence and file order"
            if self.config.evaluation == "most_specific"
            else "first match in precedence and file order"
        )
        rule = next(rule for rule in self._ordered if rule.id == winner.rule_id)
        return Explanation(self._decide(rule), f"rule {rule.id} matched ({order})", checks)

    def owner(self, owner_id: str) -> Owner | None:
        return self._owners.get(owner_id)

    def target(self, owner_id: str, target_key: str) -> AnyTarget | None:
        return self._targets.get((owner_id, target_key))

    def escalation_owner(self, owner_id: str) -> Owner | None:
        owner = self._owners.get(owner_id)
        if owner is None or owner.escalation_owner is None:
            return None
        return self._owners.get(owner.escalation_owner)


class RoutingState:
    """The router in use; a reload builds a new Router and swaps this one reference."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def replace(self, router: Router) -> None:
        self.router = router


# --- Loading --------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


TARGET_TYPES = frozenset({"webhook", "slack", "email", "wecom", "dingtalk", "feishu"})


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for index, part in enumerate(loc):
        # Pydantic names the union member ("notify[0].webhook.secret"): leave it out.
        if part in TARGET_TYPES and index >= 2 and loc[index - 2] == "notify":
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def format_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        path = _location(tuple(item["loc"]))
        for message in str(item["msg"]).removeprefix("Value error, ").splitlines():
            problems.append(f"{path}: {message}" if path else message)
    return problems


def parse_routing(document: str, source: str = "<routing>") -> RoutingConfig:
    try:
        data = yaml.load(document, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise RoutingError(source, [f"not valid YAML: {error}"]) from None
    if data is None:
        raise RoutingError(source, ["the file is empty"])
    if not isinstance(data, dict):
        raise RoutingError(source, ["the top level must be a mapping (owners, rules, ...)"])
    try:
        return RoutingConfig.model_validate(data, context={"yaml": True})
    except ValidationError as error:
        raise RoutingError(source, format_errors(error)) from None


def load_routing(path: Path) -> RoutingConfig:
    try:
        document = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RoutingError(str(path), [f"cannot read the file: {error.strerror}"]) from None
    return parse_routing(document, str(path))


UNASSIGNED_OWNER = "unassigned"


def default_routing() -> RoutingConfig:
    """Used when no routing file is configured: every alert is recorded, nobody is notified."""
    return RoutingConfig(
        owners=[Owner(id=UNASSIGNED_OWNER, name="Unassigned")], default_owner=UNASSIGNED_OWNER
    )
