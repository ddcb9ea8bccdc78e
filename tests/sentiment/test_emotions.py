"""Emotions from the NRC (English) and DUTIR (Chinese) lexicons shipped in wheels."""

from __future__ import annotations

import pytest

from closeloop_sentiment.emotions import EMOTIONS, EmotionLexicon


@pytest.fixture(scope="module")
def lexicon() -> EmotionLexicon:
    return EmotionLexicon.load()


def test_the_lexicons_load_from_the_installed_packages(lexicon: EmotionLexicon) -> None:
    assert len(lexicon.english) > 3000
    assert len(lexicon.chinese) > 20000


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
