"""The topic taxonomy: the default, the YAML loader and its errors, multi-label tagging."""

from __future__ import annotations

from pathlib import Path

import pytest

from closeloop_sentiment.taxonomy import Taxonomy, TaxonomyError

DEFAULT_TOPICS = [
    "billing",
    "pricing",
    "refund_return",
    "delivery",
    "wait_time",
    "staff_attitude",
    "product_quality",
    "app_bug",
    "network",
    "account_login",
    "privacy_security",
    "cancellation",
]


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.default()


def test_the_default_covers_the_cx_topics(taxonomy: Taxonomy) -> None:
    assert taxonomy.names == DEFAULT_TOPICS
    assert taxonomy.name == "closeloop-cx-default"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I was charged twice on my last bill", ["billing"]),
        ("The app keeps crashing at checkout", ["app_bug"]),
        ("I want a refund, the blender is faulty", ["refund_return", "product_quality"]),
        ("On hold for an hour, then the agent was rude", ["wait_time", "staff_attitude"]),
        (
            "Someone hacked my account and changed my password",
            ["account_login", "privacy_security"],
        ),
        ("I'm cancelling and switching to another provider", ["cancellation"]),
        ("宽带每天晚上掉线", ["network"]),
        ("快递三天了还没送到", ["delivery"]),
        ("APP闪退，交不了费", ["billing", "app_bug"]),
        ("客服态度很差", ["staff_attitude"]),
        ("我要销户", ["cancellation"]),
        ("Thanks, all good!", []),
    ],
)
def test_tagging_in_both_languages(taxonomy: Taxonomy, text: str, expected: list[str]) -> None:
    assert taxonomy.tag(text) == [name for name in DEFAULT_TOPICS if name in expected]


def test_wildcards_whole_words_and_excludes(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(
        "name: test\nversion: 3\ntopics:\n"
        "  refunds:\n    label: Refunds\n    en: ['refund*', 'money back']\n    zh: [退款]\n"
        "    exclude: ['in return']\n"
        "  outage:\n    en: [down]\n",
        encoding="utf-8",
    )
    taxonomy = Taxonomy.load(path)
    assert (taxonomy.name, taxonomy.version, taxonomy.names) == ("test", "3", ["refunds", "outage"])
    assert taxonomy.tag("Refunded at last") == ["refunds"]
    assert taxonomy.tag("I want my  money\nback") == ["refunds"]
    assert taxonomy.tag("退款呢") == ["refunds"]
    assert taxonomy.tag("A refund in return for a review?") == []
    assert taxonomy.tag("The site is down") == ["outage"]
    assert taxonomy.tag("downtown") == []  # whole words only


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- just\n- a list\n", "mapping"),
        ("name: x\n", "topics"),
        ("topics:\n  Bad Name:\n    en: [x]\n", "snake_case"),
        ("topics:\n  billing: [bill]\n", "mapping"),
        ("topics:\n  billing:\n    en: []\n", "no terms"),
        ("topics:\n  billing:\n    en: [bill, 3]\n", "non-empty strings"),
        ("topics:\n  billing:\n    en: [bill]\n    fr: [facture]\n", "unknown keys"),
        ("topics: [unclosed\n", "cannot read"),
    ],
)
def test_invalid_taxonomies_are_rejected_with_a_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy.load(path)


def test_a_missing_file_is_a_taxonomy_error(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="cannot read"):
        Taxonomy.load(tmp_path / "missing.yaml")


def test_the_service_loads_a_configured_taxonomy(tmp_path: Path) -> None:
    from closeloop_sentiment.app import default_loader
    from closeloop_sentiment.config import SentimentSettings
    from closeloop_sentiment.scoring import LexiconScorer

    path = tmp_path / "taxonomy.yaml"
    path.write_text("name: ours\ntopics:\n  parking:\n    en: [parking]\n    zh: [停车]\n", "utf-8")
    scorer = default_loader(SentimentSettings(taxonomy_file=path))()
    assert isinstance(scorer, LexiconScorer)
    assert scorer.taxonomy.names == ["parking"]
    assert scorer.taxonomy.tag("停车太难了") == ["parking"]
