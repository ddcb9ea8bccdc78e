"""The accurate mode: TF-IDF heads over character n-grams and jieba words."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from closeloop_sentiment.app import default_loader
from closeloop_sentiment.config import SentimentSettings
from closeloop_sentiment.linear import (
    LinearModel,
    chinese_rich_features,
    english_rich_features,
    tfidf,
)
from closeloop_sentiment.scoring import (
    ACCURATE,
    ACCURATE_MODEL_NAME,
    MODEL_NAME,
    MODEL_VERSION,
    LexiconScorer,
    ScoringInput,
)
from closeloop_sentiment.training.data import Example
from closeloop_sentiment.training.train import inverse_document_frequencies, train_tfidf
from closeloop_shared.contracts.sentiment import SentimentLabel

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def accurate_scorer() -> LexiconScorer:
    return LexiconScorer.load(mode=ACCURATE)


def test_the_accurate_mode_names_itself_in_every_result(accurate_scorer: LexiconScorer) -> None:
    (result,) = accurate_scorer.score_batch([ScoringInput("Great service!")])
    assert (result.model, result.model_version) == (ACCURATE_MODEL_NAME, MODEL_VERSION)
    assert accurate_scorer.model_name != MODEL_NAME


@pytest.mark.parametrize(
    ("text", "label", "language"),
    [
        ("Worst customer service ever. Rude and useless.", SentimentLabel.NEGATIVE, "en"),
        (
            "The product broke after two days, I am very disappointed.",
            SentimentLabel.NEGATIVE,
            "en",
        ),
        ("Absolutely love this app, the support team is amazing!", SentimentLabel.POSITIVE, "en"),
        ("这个产品太差了，质量很烂", SentimentLabel.NEGATIVE, "zh"),
        ("客服一直不回复", SentimentLabel.NEGATIVE, "zh"),
        ("服务很好，非常满意", SentimentLabel.POSITIVE, "zh"),
        ("质量不错，物流很快", SentimentLabel.POSITIVE, "zh"),
    ],
)
def test_the_accurate_mode_gets_clear_cases_right(
    accurate_scorer: LexiconScorer, text: str, label: SentimentLabel, language: str
) -> None:
    result = accurate_scorer.score(ScoringInput(text), NOW)
    assert (result.language, result.label) == (language, label)


def test_the_accurate_heads_are_tfidf_models_of_the_rich_features() -> None:
    for name, kind in (("en-tfidf", "en-words+chars"), ("zh-tfidf", "zh-char+words")):
        model = LinearModel.load(name)
        assert model.features == kind
        assert model.idf
        # Every weighted TF-IDF feature has its idf (the VADER inputs are real-valued).
        assert set(model.weights) - set(model.idf) <= {"vader", "vader+", "vader-"}


def test_chinese_rich_features_add_jieba_words_and_pairs_to_characters() -> None:
    features = set(chinese_rich_features("物流 很快"))
    assert {"物", "物流", "流很快"} <= features
    assert "w:物流" in features
    assert any(feature.startswith("w:物流|") for feature in features)


def test_english_rich_features_add_character_grams_of_each_word() -> None:
    features = set(english_rich_features("Late AGAIN"))
    assert {"late", "again", "late|again"} <= features
    assert {"c: la", "c:late ", "c:gain "} <= features


def test_tfidf_weighs_by_idf_drops_unknown_features_and_normalises() -> None:
    weighted = tfidf(["rare", "common", "unseen"], {"rare": 3.0, "common": 1.0})
    assert set(weighted) == {"rare", "common"}
    assert weighted["rare"] == pytest.approx(3 * weighted["common"])
    assert math.fsum(value * value for value in weighted.values()) == pytest.approx(1.0)
    assert tfidf(["unseen"], {"rare": 3.0}) == {}


def test_a_tfidf_model_survives_its_json_round_trip() -> None:
    model = LinearModel("zh-test", "9", 0.25, {"好": 1.5}, "zh-char", {"好": 2.0, "差": 1.0})
    loaded = LinearModel.from_json(model.to_json({}))
    assert loaded == model
    assert loaded.text_logit("好") == pytest.approx(0.25 + 1.5)
    # "差" is known to the idf table, so it shares the norm: 1.5 · 2/√5.
    assert loaded.text_logit("好差") == pytest.approx(0.25 + 1.5 * 2 / math.sqrt(5))


def test_idf_counts_each_text_once_and_drops_features_seen_once() -> None:
    idf = inverse_document_frequencies([["a", "a", "b"], ["a", "c"], ["a", "b"]])
    assert set(idf) == {"a", "b"}
    assert idf["b"] > idf["a"] == pytest.approx(math.log(4 / 4) + 1)


def test_train_tfidf_learns_a_separable_toy_corpus() -> None:
    examples = [Example(text, 1) for text in ("很好很满意", "满意好评", "非常好", "好评推荐")] + [
        Example(text, 0) for text in ("太差了", "很差劲", "差评退货", "质量差")
    ]
    model, meta = train_tfidf("zh-toy", "zh-char", examples, lambda _: {}, "0")
    assert model.text_logit("好评") > 0 > model.text_logit("差评")
    assert meta["idf_min_df"] == 2


def test_the_service_loads_the_configured_mode() -> None:
    scorer = default_loader(SentimentSettings(model="accurate"))()
    assert scorer.model_name == ACCURATE_MODEL_NAME


def test_the_model_setting_defaults_to_fast_and_rejects_unknown_modes() -> None:
    assert SentimentSettings().model == "fast"
    assert SentimentSettings(model="accurate").model == "accurate"
    with pytest.raises(ValidationError):
        SentimentSettings(model="huge")
