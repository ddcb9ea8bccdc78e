from __future__ import annotations

import pytest

from closeloop_sentiment.language import (
    UNDETERMINED,
    LanguageDetector,
    normalise_language_tag,
    script_profile,
)


@pytest.mark.parametrize(
    "text",
    [
        "Where is my order? I placed it two weeks ago.",
        "The support agent was very helpful, thank you",
        "Terrible service, never arrived",
        "refund please",
        # Short texts langid alone gets wrong (sr, xh, ms, la): the prior for
        # expected languages is what makes these English.
        "ok",
        "thanks",
        "bad",
        "Excellent",
        "fine",
    ],
)
def test_english(language_detector: LanguageDetector, text: str) -> None:
    assert language_detector.detect(text).code == "en"


@pytest.mark.parametrize(
    "text",
    [
        "这个产品太差了",
        "客服态度很差，等了三天还没发货",
        "服務很好",  # traditional characters
        "退款",
        "好",
    ],
)
def test_chinese(language_detector: LanguageDetector, text: str) -> None:
    detected = language_detector.detect(text)
    assert detected.code == "zh"
    assert detected.confidence == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Han characters outnumber the other words: Chinese, whatever langid thinks.
        ("我的iPhone坏了", "zh"),
        ("hello 你好", "zh"),
        ("我の天啊太好了今天真开心", "zh"),  # one borrowed kana is still Chinese
        # A few Chinese names in English text: English.
        ("I love 北京 and Shanghai food", "en"),
        ("My order from 淘宝 never arrived", "en"),
        # Kanji with kana is Japanese, not Chinese.
        ("東京駅で買った", "ja"),
    ],
)
def test_mixed_scripts(language_detector: LanguageDetector, text: str, expected: str) -> None:
    assert language_detector.detect(text).code == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Das ist sehr schlecht, die Lieferung kam nie an", "de"),
        ("Gracias, excelente servicio", "es"),
        ("Merci beaucoup", "fr"),
        ("Je veux être remboursé", "fr"),
        ("ありがとうございます", "ja"),
        ("감사합니다", "ko"),
        ("Спасибо, всё отлично", "ru"),
    ],
)
def test_other_languages_keep_their_code(
    language_detector: LanguageDetector, text: str, expected: str
) -> None:
    assert language_detector.detect(text).code == expected


@pytest.mark.parametrize("text", ["👍👍", "😡", "1234 !!!", "...", "   ", "", "#42 @ 10:30"])
def test_text_without_letters_is_undetermined(
    language_detector: LanguageDetector, text: str
) -> None:
    assert language_detector.detect(text).code == UNDETERMINED


def test_declared_language_is_a_hint_for_ambiguous_text(
    language_detector: LanguageDetector,
) -> None:
    assert language_detector.detect("merci").code == "en"
    assert language_detector.detect("merci", declared="fr-FR").code == "fr"


def test_declared_language_does_not_override_clear_text(
    language_detector: LanguageDetector,
) -> None:
    assert language_detector.detect("这个产品太差了", declared="en").code == "zh"
    assert language_detector.detect("Das ist sehr schlecht", declared="en-US").code == "de"
    assert language_detector.detect("👍", declared="en").code == UNDETERMINED


def test_confidence_is_a_probability(language_detector: LanguageDetector) -> None:
    for text in ["ok", "Where is my order?", "hello 你好", "Das ist gut", "👍"]:
        assert 0.0 <= language_detector.detect(text).confidence <= 1.0


def test_long_text_is_detected_from_its_start(language_detector: LanguageDetector) -> None:
    text = "The parcel was late again and nobody answered. " * 2_000
    assert language_detector.detect(text).code == "en"


def test_script_profile_counts_han_characters_and_other_words() -> None:
    profile = script_profile("我的iPhone坏了, ok?")
    assert (profile.han, profile.kana, profile.other_words) == (4, 0, 2)
    assert profile.han_unit_share == pytest.approx(4 / 6)
    assert not script_profile("12 🙂 !").has_letters


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en-US", "en"), ("zh_Hant_TW", "zh"), ("ZH", "zh"), (" fr ", "fr"), ("", None), (None, None)],
)
def test_normalise_language_tag(tag: str | None, expected: str | None) -> None:
    assert normalise_language_tag(tag) == expected
