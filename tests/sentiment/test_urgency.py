"""Urgency and churn cues, English and Chinese, and the levels they give."""

from __future__ import annotations

import pytest

from closeloop_sentiment.urgency import assess, level_for
from closeloop_shared.contracts.sentiment import Urgency


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Please cancel my subscription", "cancel"),
        ("I will not be renewing", "cancel"),
        ("我要销户", "cancel"),
        ("I'm switching to another provider", "switch_provider"),
        ("明天就去办携号转网", "switch_provider"),
        ("I will complain to the Better Business Bureau", "regulator"),
        ("Reported to Ofcom.", "regulator"),
        ("再不退款我就打12315", "regulator"),
        ("我要去消协投诉", "regulator"),
        ("My lawyer will be in touch", "legal"),
        ("准备起诉你们", "legal"),
        ("This is the third time I'm calling", "repeat_contact"),
        ("I have contacted you six times", "repeat_contact"),
        ("这已经是我第三次打电话了", "repeat_contact"),
        ("There was smoke coming out of the heater", "safety"),
        ("I smell gas near the meter", "safety"),
        ("热水器漏电，太危险了", "safety"),
        ("Someone took £400 from my account", "fraud"),
        ("银行卡被盗刷了", "fraud"),
    ],
)
def test_each_cue_kind_is_found(text: str, kind: str) -> None:
    result = assess(text)
    assert kind in result.kinds, result
    assert result.level is not Urgency.LOW


@pytest.mark.parametrize(
    "text",
    [
        "Great service, thank you!",
        "When will my parcel arrive?",
        "Love it, will buy again",
        "请问什么时候发货？",
        "服务很好，非常满意",
    ],
)
def test_ordinary_feedback_is_low(text: str) -> None:
    result = assess(text)
    assert (result.level, result.cues) == (Urgency.LOW, ())


def test_levels() -> None:
    assert level_for([]) is Urgency.LOW
    assert level_for(["cancel"]) is Urgency.MEDIUM
    assert level_for(["repeat_contact"]) is Urgency.MEDIUM
    assert level_for(["cancel", "switch_provider"]) is Urgency.HIGH
    for kind in ("regulator", "legal", "safety", "fraud"):
        assert level_for([kind]) is Urgency.HIGH


def test_cues_name_the_kind_and_the_words() -> None:
    result = assess("Third time I call. Cancel my contract or I go to the FTC.")
    assert result.level is Urgency.HIGH
    assert result.cues == (
        "cancel: Cancel my",
        "regulator: FTC",
        "repeat_contact: Third time",
    )
