"""Emotions from the AEV (English, MIT, built into a committed file) and DUTIR (Chinese) lexicons."""

from __future__ import annotations

import json
from importlib import metadata, resources

import pytest

from closeloop_sentiment.emotions import EMOTIONS, ENGLISH_LEXICON_RESOURCE, EmotionLexicon
from closeloop_sentiment.training.emotion_lexicon import parse_aev


@pytest.fixture(scope="module")
def lexicon() -> EmotionLexicon:
    return EmotionLexicon.load()


def test_the_lexicons_load_from_the_installed_packages(lexicon: EmotionLexicon) -> None:
    assert len(lexicon.english) + len(lexicon.english_prefixes) > 200
    assert len(lexicon.chinese) > 20000


def test_the_english_lexicon_is_the_permissively_licensed_aev_dictionary() -> None:
    built = json.loads(
        resources.files("closeloop_sentiment").joinpath(ENGLISH_LEXICON_RESOURCE).read_text("utf-8")
    )
    assert built["licence"].startswith("MIT License")
    assert "Vocabulate" in built["source"]
    # Not the NRC lexicon (research and non-commercial use only): neither
    # its package nor its data is needed.
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("nrclex")


def test_prefix_entries_match_word_forms(lexicon: EmotionLexicon) -> None:
    assert lexicon.english_prefixes["disappoint"] == ("frustration",)
    assert "frustration" in lexicon.english_emotions("What a disappointment")
    assert "anger" in lexicon.english_emotions("This is so aggravating")
    assert "anxiety" in lexicon.english_emotions("I keep worrying about it")


def test_a_cx_term_overrides_the_lexicon_category(lexicon: EmotionLexicon) -> None:
    # AEV files frustrat* under anger; a customer who says so is frustrated.
    assert lexicon.english_emotions("I am frustrated") == {"frustration": 0.5}


def test_words_whose_cx_sense_is_not_an_emotion_are_left_out(lexicon: EmotionLexicon) -> None:
    assert lexicon.english_emotions("The interest rate on my security deposit") == {}
    assert lexicon.english_emotions("Please resolve this, I hope to hear soon") == {}


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("I am furious about this", "anger"),
        ("So disappointed, again", "frustration"),
        ("I'm really worried about my data", "anxiety"),
        ("Absolutely love it, brilliant service", "joy"),
    ],
)
def test_english_emotions(lexicon: EmotionLexicon, text: str, emotion: str) -> None:
    emotions = lexicon.english_emotions(text)
    assert emotion in emotions
    assert max(emotions, key=emotions.__getitem__) == emotion
    assert all(name in EMOTIONS and 0 < value <= 1 for name, value in emotions.items())


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("太气愤了，坑人", "anger"),
        ("太失望了", "frustration"),
        ("我很担心，太吓人了", "anxiety"),
        ("非常满意，点赞", "joy"),
    ],
)
def test_chinese_emotions(lexicon: EmotionLexicon, text: str, emotion: str) -> None:
    assert emotion in lexicon.chinese_emotions(text)


def test_negated_words_do_not_count(lexicon: EmotionLexicon) -> None:
    assert "joy" not in lexicon.english_emotions("I am not happy")
    assert "joy" not in lexicon.chinese_emotions("不满意")


def test_intensity_grows_with_hits(lexicon: EmotionLexicon) -> None:
    one = lexicon.english_emotions("love")["joy"]
    three = lexicon.english_emotions("love, brilliant, fantastic")["joy"]
    assert 0 < one < three <= 1


def test_parse_aev_maps_categories_expands_alternatives_and_skips_unmapped_rows() -> None:
    rows = [
        {
            "Concepts": "fury|furious",
            "Neg": "X",
            "Pos": "",
            "AnxFear": "",
            "Anger": "X",
            "Sadness": "",
            "NegUndiff": "",
        },
        {
            "Concepts": "doom",
            "Neg": "X",
            "Pos": "",
            "AnxFear": "X",
            "Anger": "",
            "Sadness": "X",
            "NegUndiff": "",
        },
        {
            "Concepts": "upset*",
            "Neg": "",
            "Pos": "",
            "AnxFear": "",
            "Anger": "",
            "Sadness": "",
            "NegUndiff": "X",
        },
        {
            "Concepts": "guilt*",
            "Neg": "X",
            "Pos": "",
            "AnxFear": "",
            "Anger": "",
            "Sadness": "",
            "NegUndiff": "",
        },
        {
            "Concepts": "interest*",
            "Neg": "",
            "Pos": "X",
            "AnxFear": "",
            "Anger": "",
            "Sadness": "",
            "NegUndiff": "",
        },
    ]
    words, prefixes = parse_aev(rows)
    assert words == {"doom": ["anxiety", "frustration"], "furious": ["anger"], "fury": ["anger"]}
    assert prefixes == {"upset": ["frustration"]}
