"""Routing: every condition on its own, evaluation order, default owner, file validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from asgi_lifespan import LifespanManager

from closeloop_alerts.__main__ import main
from closeloop_alerts.app import create_app
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.routing import (
    CONDITIONS,
    Router,
    RoutingConfig,
    RoutingError,
    WebhookTarget,
    When,
    default_routing,
    load_routing,
    match_channel,
    match_customer_tier,
    match_journey_stage,
    match_keywords,
    match_language,
    match_rating,
    match_score,
    match_sentiment,
    match_topics,
    match_touchpoint,
    match_urgency,
    matches,
    parse_routing,
    subject_of,
)
from closeloop_shared.config import DatabaseSettings, KafkaSettings
from closeloop_shared.contracts.alerts import AlertPriority
from closeloop_shared.contracts.feedback import Channel, JourneyStage, RatingType
from closeloop_shared.contracts.sentiment import ScoredFeedback, SentimentLabel, Urgency
from tests.alerts.support import MINIMAL_ROUTING, SECRET, scored


def when(**conditions: Any) -> When:
    return When.model_validate(conditions)


def config(rules: list[dict[str, Any]], **extra: Any) -> RoutingConfig:
    owners = [
        {
            "id": name,
            "notify": [{"type": "webhook", "url": f"https://{name}.test/", "secret": SECRET}],
        }
        for name in ("a", "b", "c")
    ]
    return RoutingConfig.model_validate(
        {"owners": owners, "rules": rules, "default_owner": "c", **extra}
    )


# --- The minimal file ---------------------------------------------------------------------------


def test_minimal_file_parses() -> None:
    parsed = parse_routing(MINIMAL_ROUTING)
    assert [owner.id for owner in parsed.owners] == ["hotline-team", "cx-team"]
    assert parsed.rules[0].when.channel == [Channel.HOTLINE]
    assert parsed.rules[0].when.sentiment == [SentimentLabel.NEGATIVE]
    assert parsed.rules[0].priority is AlertPriority.HIGH
    assert parsed.default_owner == "cx-team"
    assert parsed.default_priority is AlertPriority.MEDIUM
    [(key, target)] = parsed.owners[0].targets()
    assert key == "webhook-1"
    assert isinstance(target, WebhookTarget)
    assert str(target.url) == "https://hooks.example.com/closeloop/hotline"
    assert target.secret.get_secret_value() == SECRET


def test_minimal_file_routes_hotline_to_team_and_the_rest_to_default() -> None:
    router = Router(parse_routing(MINIMAL_ROUTING))
    hotline = router.route(scored(channel=Channel.HOTLINE))
    assert hotline is not None
    assert (hotline.owner.id, hotline.priority, hotline.rule_id) == (
        "hotline-team",
        AlertPriority.HIGH,
        "hotline-negative",
    )
    email = router.route(scored(channel=Channel.EMAIL))
    assert email is not None
    assert (email.owner.id, email.priority, email.rule_id) == (
        "cx-team",
        AlertPriority.MEDIUM,
        None,
    )


def test_load_routing_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(MINIMAL_ROUTING)
    assert load_routing(path) == parse_routing(MINIMAL_ROUTING)


# --- Only negatives raise alerts ----------------------------------------------------------------


@pytest.mark.parametrize("label", [SentimentLabel.NEUTRAL, SentimentLabel.POSITIVE])
def test_non_negative_items_raise_no_alert(label: SentimentLabel) -> None:
    router = Router(parse_routing(MINIMAL_ROUTING))
    assert router.route(scored(label=label, score=0.5)) is None


# --- Each condition on its own ------------------------------------------------------------------


def test_channel_single_and_list() -> None:
    item = subject_of(scored(channel=Channel.EMAIL))
    assert match_channel(when(channel="email"), item)
    assert match_channel(when(channel=["hotline", "email"]), item)
    assert not match_channel(when(channel="hotline"), item)
    assert match_channel(when(), item)


def test_sentiment_label() -> None:
    item = subject_of(scored(label=SentimentLabel.NEGATIVE))
    assert match_sentiment(when(sentiment="negative"), item)
    assert match_sentiment(when(sentiment=["neutral", "negative"]), item)
    assert not match_sentiment(when(sentiment="positive"), item)


def test_touchpoint() -> None:
    item = subject_of(scored(touchpoint="checkout"))
    assert match_touchpoint(when(touchpoint="checkout"), item)
    assert match_touchpoint(when(touchpoint=["billing", "Checkout"]), item)
    assert not match_touchpoint(when(touchpoint="billing"), item)
    assert not match_touchpoint(when(touchpoint="checkout"), subject_of(scored()))


def test_journey_stage() -> None:
    item = subject_of(scored(journey_stage=JourneyStage.RENEWAL))
    assert match_journey_stage(when(journey_stage="renewal"), item)
    assert match_journey_stage(when(journey_stage=["onboarding", "renewal"]), item)
    assert not match_journey_stage(when(journey_stage="support"), item)
    assert not match_journey_stage(when(journey_stage="renewal"), subject_of(scored()))


def test_customer_tier_is_case_insensitive() -> None:
    item = subject_of(scored(tier="Gold"))
    assert match_customer_tier(when(customer_tier="gold"), item)
    assert match_customer_tier(when(customer_tier=["platinum", "GOLD"]), item)
    assert not match_customer_tier(when(customer_tier="silver"), item)
    assert not match_customer_tier(when(customer_tier="gold"), subject_of(scored()))


def test_language_prefers_declared_and_matches_primary_subtag() -> None:
    declared = subject_of(scored(language="de-CH", detected_language="fr"))
    assert match_language(when(language="de"), declared)
    assert match_language(when(language="de-ch"), declared)
    assert not match_language(when(language="fr"), declared)
    detected = subject_of(scored(language=None, detected_language="fr"))
    assert match_language(when(language=["fr", "it"]), detected)
    assert not match_language(when(language="en"), detected)


def test_score_bounds_are_inclusive() -> None:
    item = subject_of(scored(score=-0.6))
    assert match_score(when(max_score=-0.6), item)
    assert match_score(when(min_score=-0.6), item)
    assert not match_score(when(max_score=-0.7), item)
    assert not match_score(when(min_score=-0.5), item)
    assert match_score(when(min_score=-1, max_score=0), item)


def test_rating_type_and_max_value() -> None:
    detractor = subject_of(scored(rating=(RatingType.NPS, 6)))
    promoter = subject_of(scored(rating=(RatingType.NPS, 9)))
    nps_detractor = when(rating={"type": "nps", "max": 6})
    assert match_rating(nps_detractor, detractor)
    assert not match_rating(nps_detractor, promoter)
    assert not match_rating(nps_detractor, subject_of(scored(rating=(RatingType.CSAT, 2))))
    assert not match_rating(nps_detractor, subject_of(scored()))
    either = when(rating={"type": ["csat", "stars"], "min": 1, "max": 2})
    assert match_rating(either, subject_of(scored(rating=(RatingType.STARS, 2))))
    assert not match_rating(either, subject_of(scored(rating=(RatingType.STARS, 3))))


def test_all_conditions_of_a_rule_must_hold() -> None:
    item = subject_of(scored(channel=Channel.APP, tier="gold", touchpoint="checkout"))
    assert matches(when(channel="app", customer_tier="gold"), item)
    assert not matches(when(channel="app", customer_tier="silver"), item)
    assert matches(when(), item)


# --- Evaluation order ---------------------------------------------------------------------------


def test_first_matching_rule_in_file_order_wins() -> None:
    router = Router(
        config(
            [
                {
                    "id": "gold",
                    "when": {"customer_tier": "gold"},
                    "owner": "a",
                    "priority": "critical",
                },
                {"id": "hotline", "when": {"channel": "hotline"}, "owner": "b", "priority": "high"},
            ]
        )
    )
    both = router.route(scored(channel=Channel.HOTLINE, tier="gold"))
    assert both is not None
    assert (both.rule_id, both.owner.id, both.priority) == ("gold", "a", AlertPriority.CRITICAL)
    second = router.route(scored(channel=Channel.HOTLINE))
    assert second is not None
    assert (second.rule_id, second.owner.id) == ("hotline", "b")


def test_default_owner_takes_unmatched_negatives_with_default_priority() -> None:
    router = Router(config([{"id": "app", "when": {"channel": "app"}, "owner": "a"}]))
    decision = router.route(scored(channel=Channel.SOCIAL))
    assert decision is not None
    assert (decision.owner.id, decision.priority, decision.rule_id) == ("c", "medium", None)
    custom = Router(config([], default_priority="low")).route(scored())
    assert custom is not None
    assert custom.priority is AlertPriority.LOW


def test_rule_priority_defaults_to_medium() -> None:
    router = Router(config([{"id": "any", "owner": "a"}]))
    decision = router.route(scored())
    assert decision is not None
    assert (decision.rule_id, decision.priority) == ("any", AlertPriority.MEDIUM)


def test_a_rule_for_positive_items_never_fires_in_this_version() -> None:
    router = Router(config([{"id": "praise", "when": {"sentiment": "positive"}, "owner": "a"}]))
    assert router.route(scored(label=SentimentLabel.POSITIVE, score=0.9)) is None
    negative = router.route(scored())
    assert negative is not None
    assert negative.owner.id == "c"


def test_without_a_file_everything_goes_to_unassigned() -> None:
    decision = Router(default_routing()).route(scored())
    assert decision is not None
    assert decision.owner.id == "unassigned"
    assert decision.owner.notify == []


def test_target_keys_and_lookup() -> None:
    parsed = RoutingConfig.model_validate(
        {
            "owners": [
                {
                    "id": "a",
                    "notify": [
                        {"type": "webhook", "url": "https://one.test/", "secret": SECRET},
                        {
                            "type": "webhook",
                            "id": "pager",
                            "url": "https://two.test/",
                            "secret": SECRET,
                        },
                    ],
                }
            ],
            "default_owner": "a",
        }
    )
    router = Router(parsed)
    assert [key for key, _ in parsed.owners[0].targets()] == ["webhook-1", "pager"]
    pager = router.target("a", "pager")
    assert pager is not None
    assert str(pager.url) == "https://two.test/"
    assert router.target("a", "missing") is None


# --- Validation errors name the bad path --------------------------------------------------------


def problems_of(document: str) -> list[str]:
    with pytest.raises(RoutingError) as caught:
        parse_routing(document, "routing.yaml")
    assert "routing.yaml" in str(caught.value)
    return caught.value.problems


def test_unknown_channel_names_its_path() -> None:
    document = MINIMAL_ROUTING.replace("channel: hotline", "channel: fax")
    [problem] = problems_of(document)
    assert problem.startswith("rules[0].when.channel")
    assert "hotline" in problem  # the message lists the allowed values


def test_unknown_rule_owner_is_named() -> None:
    document = MINIMAL_ROUTING.replace("owner: hotline-team", "owner: nobody")
    [problem] = problems_of(document)
    assert "rules[0].owner" in problem
    assert "'nobody'" in problem


def test_unknown_default_owner_is_named() -> None:
    [problem] = problems_of(MINIMAL_ROUTING.replace("default_owner: cx-team", "default_owner: x"))
    assert "default_owner" in problem


def test_duplicate_rule_ids_are_refused() -> None:
    document = MINIMAL_ROUTING.replace(
        "default_owner: cx-team",
        "  - id: hotline-negative\n    owner: cx-team\ndefault_owner: cx-team",
    )
    [problem] = problems_of(document)
    assert "'hotline-negative'" in problem
    assert "more than one rule" in problem


def test_duplicate_owner_ids_are_refused() -> None:
    document = MINIMAL_ROUTING.replace("id: cx-team", "id: hotline-team").replace(
        "default_owner: cx-team", "default_owner: hotline-team"
    )
    assert any("defined more than once" in problem for problem in problems_of(document))


def test_bad_secret_and_url_name_their_paths() -> None:
    document = MINIMAL_ROUTING.replace(
        "secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n  - id: cx-team",
        "secret: not-a-secret\n  - id: cx-team",
    ).replace("url: https://hooks.example.com/closeloop/cx", "url: ftp://nope")
    problems = problems_of(document)
    assert any(p.startswith("owners[0].notify[0].secret") and "whsec_" in p for p in problems)
    assert any(p.startswith("owners[1].notify[0].url") for p in problems)
    assert all("MfKQ9r8" not in p for p in problems)  # secrets never echo


def test_short_secret_is_refused() -> None:
    [problem] = problems_of(MINIMAL_ROUTING.replace(SECRET, "whsec_c2hvcnQ=", 1))
    assert "24 to 64 bytes" in problem


def test_unknown_keys_are_refused() -> None:
    [problem] = problems_of(
        MINIMAL_ROUTING.replace("priority: high", "priority: high\n    colour: red")
    )
    assert problem.startswith("rules[0].colour")


def test_bad_priority_and_score_bounds() -> None:
    document = MINIMAL_ROUTING.replace("priority: high", "priority: urgent").replace(
        "sentiment: negative}", "sentiment: negative, min_score: 0.5, max_score: -0.5}"
    )
    problems = problems_of(document)
    assert any(p.startswith("rules[0].priority") for p in problems)
    assert any(p.startswith("rules[0].when") and "min_score" in p for p in problems)


def test_missing_required_sections() -> None:
    problems = problems_of("rules: []\n")
    assert any(p.startswith("owners") for p in problems)
    assert any(p.startswith("default_owner") for p in problems)


def test_not_yaml_empty_and_not_a_mapping() -> None:
    assert "not valid YAML" in problems_of("owners: [\n")[0]
    assert problems_of("") == ["the file is empty"]
    assert "mapping" in problems_of("- a\n- b\n")[0]


def test_duplicate_yaml_keys_are_refused() -> None:
    [problem] = problems_of(MINIMAL_ROUTING + "default_owner: hotline-team\n")
    assert "duplicate key 'default_owner'" in problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutingError) as caught:
        load_routing(tmp_path / "absent.yaml")
    assert "cannot read the file" in str(caught.value)


# --- Where the file is used ---------------------------------------------------------------------


def test_several_reference_problems_are_listed_separately() -> None:
    document = MINIMAL_ROUTING.replace("owner: hotline-team", "owner: x").replace(
        "default_owner: cx-team", "default_owner: y"
    )
    problems = problems_of(document)
    assert len(problems) == 2
    assert problems[0].startswith("rules[0].owner")
    assert problems[1].startswith("default_owner")


async def test_a_bad_routing_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(MINIMAL_ROUTING.replace("default_owner: cx-team", "default_owner: x"))
    # Unreachable broker and database: the start must fail on the file before connecting.
    app = create_app(
        AlertsSettings(routing_file=path),
        KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        DatabaseSettings(CLOSELOOP_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:9/x"),
    )
    with pytest.raises(RoutingError, match="default_owner"):
        async with LifespanManager(app, startup_timeout=10):
            pass


def test_check_routing_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL_ROUTING)
    main(["check-routing", str(good)])
    assert "2 owners, 1 rules" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("owners: []\ndefault_owner: a\n")
    with pytest.raises(SystemExit) as exited:
        main(["check-routing", str(bad)])
    assert exited.value.code == 2
    assert "owners" in capsys.readouterr().err


# --- Conditions from the richer analysis: topics, urgency, keywords ----------------------------


def enriched(
    *,
    topics: list[str] | None = None,
    urgency: Urgency | None = None,
    text: str = "The agent hung up on me twice.",
) -> ScoredFeedback:
    item = scored(text=text)
    sentiment = item.sentiment.model_copy(update={"topics": topics or [], "urgency": urgency})
    return item.model_copy(update={"sentiment": sentiment})


def test_topics_any_of_case_insensitive() -> None:
    item = subject_of(enriched(topics=["Billing", "refund"]))
    assert match_topics(when(topics="billing"), item)
    assert match_topics(when(topics=["delivery", "REFUND"]), item)
    assert not match_topics(when(topics="delivery"), item)
    assert not match_topics(when(topics="billing"), subject_of(scored()))  # none known
    assert match_topics(when(), item)


def test_urgency() -> None:
    item = subject_of(enriched(urgency=Urgency.HIGH))
    assert match_urgency(when(urgency="high"), item)
    assert match_urgency(when(urgency=["medium", "high"]), item)
    assert not match_urgency(when(urgency="low"), item)
    assert not match_urgency(when(urgency="high"), subject_of(scored()))


def test_keywords_in_text_or_subject_any_language() -> None:
    item = subject_of(enriched(text="I will CANCEL my contract. 我要投诉"))
    assert match_keywords(when(keywords="cancel"), item)
    assert match_keywords(when(keywords=["lawyer", "投诉"]), item)
    assert not match_keywords(when(keywords="lawyer"), item)
    email = subject_of(scored(channel=Channel.EMAIL))  # subject "Call 4711"
    assert match_keywords(when(keywords="4711"), email)


def test_events_without_the_richer_fields_still_route() -> None:
    """Older events carry no topics or urgency: such rules do not match, nothing breaks."""
    router = Router(config([{"id": "t", "when": {"topics": "billing"}, "owner": "a"}]))
    decision = router.route(scored())
    assert decision is not None
    assert decision.owner.id == "c"


def test_every_condition_is_listed() -> None:
    names = [condition.__name__.removeprefix("match_") for condition in CONDITIONS]
    assert names == [
        "channel",
        "sentiment",
        "touchpoint",
        "journey_stage",
        "customer_tier",
        "language",
        "score",
        "rating",
        "topics",
        "urgency",
        "keywords",
    ]


# --- Explicit precedence, most specific, dry run ------------------------------------------------


def test_precedence_beats_file_order() -> None:
    rules: list[dict[str, Any]] = [
        {"id": "hotline", "when": {"channel": "hotline"}, "owner": "b"},
        {"id": "vip", "when": {"customer_tier": "gold"}, "owner": "a", "precedence": 10},
    ]
    router = Router(config(rules))
    decision = router.route(scored(channel=Channel.HOTLINE, tier="gold"))
    assert decision is not None
    assert decision.rule_id == "vip"
    assert [rule.id for rule in router.ordered_rules] == ["vip", "hotline"]


def test_most_specific_rule_wins_when_asked() -> None:
    rules = [
        {"id": "hotline", "when": {"channel": "hotline"}, "owner": "b"},
        {
            "id": "hotline-gold",
            "when": {"channel": "hotline", "customer_tier": "gold"},
            "owner": "a",
        },
        {"id": "scored", "when": {"min_score": -1, "max_score": -0.5}, "owner": "b"},
    ]
    first = Router(config(rules)).route(scored(channel=Channel.HOTLINE, tier="gold"))
    assert first is not None
    assert first.rule_id == "hotline"
    specific = Router(config(rules, evaluation="most_specific"))
    decision = specific.route(scored(channel=Channel.HOTLINE, tier="gold"))
    assert decision is not None
    assert decision.rule_id == "hotline-gold"
    # Score bounds count as one condition: "scored" ties with "hotline" and file order decides.
    assert [rule.id for rule in specific.ordered_rules] == ["hotline-gold", "hotline", "scored"]


def test_explain_lists_every_rule_and_why() -> None:
    rules = [
        {"id": "app", "when": {"channel": "app", "touchpoint": "checkout"}, "owner": "a"},
        {"id": "hotline", "when": {"channel": "hotline"}, "owner": "b", "priority": "high"},
    ]
    router = Router(config(rules))
    explained = router.explain(scored(channel=Channel.HOTLINE))
    assert explained.decision is not None
    assert (explained.decision.rule_id, explained.decision.owner.id) == ("hotline", "b")
    assert explained.decision.sla.acknowledge == 3600  # default high SLA
    assert [(c.rule_id, c.matched, c.failed) for c in explained.checks] == [
        ("app", False, ["channel", "touchpoint"]),
        ("hotline", True, []),
    ]
    assert "rule hotline matched" in explained.reason
    neutral = router.explain(scored(label=SentimentLabel.NEUTRAL, score=0.0))
    assert neutral.decision is None
    assert "only negative" in neutral.reason
    fallback = router.explain(scored(channel=Channel.SOCIAL))
    assert fallback.decision is not None
    assert fallback.decision.owner.id == "c"
    assert "default owner" in fallback.reason


# --- SLA, owners, escalation, merge settings ----------------------------------------------------


def test_sla_durations_and_defaults() -> None:
    parsed = config([], sla={"critical": {"acknowledge": "5m", "resolve": "1.5h"}, "low": {}})
    assert parsed.sla.critical.acknowledge == 300
    assert parsed.sla.critical.resolve == 5400
    assert parsed.sla.low.acknowledge is None  # no clock
    assert parsed.sla.high.acknowledge == 3600  # untouched defaults
    assert config([], sla={"medium": {"acknowledge": 90}}).sla.medium.acknowledge == 90
    assert config([], sla={"medium": {"acknowledge": "2d"}}).sla.medium.acknowledge == 172800
    with pytest.raises(ValueError, match="not a duration"):
        config([], sla={"medium": {"acknowledge": "soon"}})


def test_owner_time_zone_hours_and_escalation_are_checked() -> None:
    document = MINIMAL_ROUTING.replace(
        "    name: Hotline team\n",
        "    name: Hotline team\n    timezone: Mars/Olympus\n"
        "    working_hours: {start: '18:00', end: '09:00'}\n    escalation_owner: boss\n",
    )
    problems = problems_of(document)
    assert any(p.startswith("owners[0].timezone") and "Mars/Olympus" in p for p in problems)
    assert any(p.startswith("owners[0].working_hours") for p in problems)
    self_escalating = MINIMAL_ROUTING.replace(
        "    name: Customer experience\n",
        "    name: Customer experience\n    escalation_owner: cx-team\n",
    )
    assert any("its own escalation owner" in p for p in problems_of(self_escalating))
    unknown = MINIMAL_ROUTING.replace(
        "    name: Customer experience\n",
        "    name: Customer experience\n    escalation_owner: nobody\n",
    )
    assert any(
        p.startswith("owners[1].escalation_owner: unknown owner 'nobody'")
        for p in problems_of(unknown)
    )


def test_all_notify_target_types_parse() -> None:
    parsed = config(
        [],
        owners=[
            {
                "id": "c",
                "timezone": "Asia/Shanghai",
                "working_hours": {"days": ["mon", "sat"], "start": "08:30", "end": "20:00"},
                "notify": [
                    {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
                    {"type": "email", "to": "ops@example.com"},
                    {
                        "type": "wecom",
                        "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                    },
                    {
                        "type": "dingtalk",
                        "url": "https://oapi.dingtalk.com/robot/send?access_token=t",
                        "secret": "SECx",
                    },
                    {"type": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"},
                ],
            }
        ],
    )
    owner = parsed.owners[0]
    assert [key for key, _ in owner.targets()] == [
        "slack-1",
        "email-2",
        "wecom-3",
        "dingtalk-4",
        "feishu-5",
    ]
    assert owner.working_hours is not None
    assert owner.working_hours.weekdays() == frozenset({0, 5})
    with pytest.raises(ValueError, match="to"):
        config([], owners=[{"id": "c", "notify": [{"type": "email", "to": "not-an-address"}]}])
    with pytest.raises(ValueError, match="pager"):
        config([], owners=[{"id": "c", "notify": [{"type": "pager", "url": "https://x.test"}]}])


def test_merge_and_spike_sections_are_opt_in() -> None:
    plain = parse_routing(MINIMAL_ROUTING)
    assert (plain.merge, plain.spikes) == (None, None)
    on = config([], merge={"window": "30m"}, spikes={"dimensions": ["touchpoint"]})
    assert on.merge is not None
    assert on.merge.window == 1800
    assert on.spikes is not None
    assert on.spikes.dimensions == ["touchpoint"]


def test_check_routing_dry_runs_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL_ROUTING)
    hotline = scored(channel=Channel.HOTLINE)
    email = scored(channel=Channel.EMAIL)
    samples = tmp_path / "samples.jsonl"
    # Whole stored items and scores are accepted: extra fields are left out.
    samples.write_text(
        "\n".join(item.model_dump_json() for item in (hotline, email)) + "\n\n",
        encoding="utf-8",
    )
    main(["check-routing", str(good), "--samples", str(samples)])
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["rule_id"], d["owner"], d["priority"]) for d in lines] == [
        ("hotline-negative", "hotline-team", "high"),
        (None, "cx-team", "medium"),
    ]
    assert lines[1]["rules"] == [
        {"rule_id": "hotline-negative", "matched": False, "failed": ["channel"]}
    ]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"feedback": {}}\nnot json\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["check-routing", str(good), "--samples", str(broken)])
    assert exited.value.code == 2
    assert "broken.jsonl:2" in capsys.readouterr().err


def test_working_hours_times() -> None:
    unquoted = MINIMAL_ROUTING.replace(
        "    name: Hotline team\n",
        "    name: Hotline team\n    working_hours: {start: 8:30, end: 17:00}\n",
    )
    hours = parse_routing(unquoted).owners[0].working_hours
    assert hours is not None
    assert (hours.start.isoformat(), hours.end.isoformat()) == ("08:30:00", "17:00:00")
    late = MINIMAL_ROUTING.replace(
        "    name: Hotline team\n", "    name: Hotline team\n    working_hours: {start: '25:00'}\n"
    )
    assert any("not a time of day" in p for p in problems_of(late))
    # Outside a YAML file (the admin API), a number is not a time.
    with pytest.raises(ValueError, match="not a time of day"):
        config([], owners=[{"id": "c", "working_hours": {"start": 540}}])
