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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from closeloop_shared.contracts.alerts import AlertPriority
from closeloop_shared.contracts.feedback import Channel, JourneyStage, RatingType
from closeloop_shared.contracts.sentiment import ScoredFeedback, SentimentLabel

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

    @field_validator("touchpoint", "customer_tier", "language")
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


# One member today; Slack and email targets join this union with their own `type`.
NotifyTarget = WebhookTarget


class Owner(_Model):
    id: Identifier
    name: str | None = None
    notify: list[NotifyTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_target_keys(self) -> Owner:
        keys = [key for key, _ in self.targets()]
        duplicates = _duplicates(keys)
        if duplicates:
            raise ValueError(f"notify target ids must be unique within an owner: {duplicates}")
        return self

    def targets(self) -> list[tuple[str, NotifyTarget]]:
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


class RoutingConfig(_Model):
    version: Literal[1] = 1
    owners: Annotated[list[Owner], Field(min_length=1)]
    rules: list[Rule] = Field(default_factory=list)
    default_owner: Identifier
    default_priority: AlertPriority = AlertPriority.MEDIUM

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
        if problems:
            # One line per problem; _format_errors lists them separately.
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


def subject_of(item: ScoredFeedback) -> Subject:
    feedback = item.feedback
    # The sender's declared language wins over detection, which can misread short texts.
    language = feedback.language or item.sentiment.language or None
    tier = feedback.customer.tier
    return Subject(
        channel=feedback.channel,
        sentiment=item.sentiment.label,
        score=item.sentiment.score,
        touchpoint=feedback.touchpoint.casefold() if feedback.touchpoint else None,
        journey_stage=feedback.journey_stage,
        customer_tier=tier.strip().casefold() if tier else None,
        language=language.strip().casefold() if language else None,
        rating_type=feedback.rating.type if feedback.rating else None,
        rating_value=feedback.rating.value if feedback.rating else None,
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


CONDITIONS: tuple[Callable[[When, Subject], bool], ...] = (
    match_channel,
    match_sentiment,
    match_touchpoint,
    match_journey_stage,
    match_customer_tier,
    match_language,
    match_score,
    match_rating,
)


def matches(when: When, subject: Subject) -> bool:
    return all(condition(when, subject) for condition in CONDITIONS)


@dataclass(frozen=True)
class RouteDecision:
    owner: Owner
    priority: AlertPriority
    rule_id: str | None


class Router:
    """Evaluates a :class:`RoutingConfig`; pure and cheap, safe to share between tasks."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        self._owners = {owner.id: owner for owner in config.owners}
        self._targets = {
            (owner.id, key): target for owner in config.owners for key, target in owner.targets()
        }

    def route(self, item: ScoredFeedback) -> RouteDecision | None:
        """The owner and priority of an alert for ``item``, or None if it raises none."""
        if item.sentiment.label is not SentimentLabel.NEGATIVE:
            return None
        subject = subject_of(item)
        for rule in self.config.rules:
            if matches(rule.when, subject):
                return RouteDecision(self._owners[rule.owner], rule.priority, rule.id)
        return RouteDecision(
            self._owners[self.config.default_owner], self.config.default_priority, None
        )

    def owner(self, owner_id: str) -> Owner | None:
        return self._owners.get(owner_id)

    def target(self, owner_id: str, target_key: str) -> NotifyTarget | None:
        return self._targets.get((owner_id, target_key))


class RoutingState:
    """The router in use; a reload (a later issue) builds a new Router and swaps it in."""

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


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _format_errors(error: ValidationError) -> list[str]:
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
        return RoutingConfig.model_validate(data)
    except ValidationError as error:
        raise RoutingError(source, _format_errors(error)) from None


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
