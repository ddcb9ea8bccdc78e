"""Sentiment fixtures: the real models, loaded once per test session (~4 s)."""

from __future__ import annotations

import warnings

import pytest

from closeloop_sentiment.language import LanguageDetector
from closeloop_sentiment.scoring import LexiconScorer

# jieba (under pysenti) compiles regexes with invalid escape sequences, which
# Python reports once, on import. Import it here with that noise silenced so the
# test summary shows only warnings about our own code.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import pysenti.model_classifier  # noqa: F401


@pytest.fixture(scope="session")
def lexicon_scorer() -> LexiconScorer:
    return LexiconScorer.load()


@pytest.fixture(scope="session")
def language_detector() -> LanguageDetector:
    return LanguageDetector.load()
