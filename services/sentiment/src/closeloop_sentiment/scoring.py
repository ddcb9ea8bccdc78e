"""The sentiment model: offline lexicon and Naive-Bayes scoring behind a small protocol.

``closeloop-lexicon`` (:data:`MODEL_NAME`, :data:`MODEL_VERSION`) is the first,
deliberately simple model; anything that implements :class:`Scorer` can replace it.

* **English** and every language without its own model: VADER (vaderSentiment)
  with a few customer-experience terms it misses (:data:`CX_LEXICON`,
  :data:`CX_PHRASES`). Score = VADER's compound; neutral strictly between
  ±0.05 (VADER's own thresholds).
* **Chinese**: pysenti's Naive-Bayes ``ModelClassifier`` (jieba segmentation).
  Score = 2p − 1 for its positive probability p; neutral strictly between
  ±0.2, that is 0.4 < p < 0.6. Naive Bayes has no neutral class, so the band is
  where it is unsure.
* **A rating**, when the feedback has one, is mapped onto [−1, 1]
  (:func:`rating_polarity`) and averaged with the text score
  (:data:`RATING_WEIGHT`): 1–2 stars or NPS 0–6 pull it negative, 4–5 stars or
  NPS 9–10 positive.
* **Label** from the final score and the language's band; **confidence** 0.5
  just outside the band rising to 1.0 at ±1, and 0.5 for neutral (a lexicon
  cannot tell "neutral" from "no words it knows"). Languages scored by the
  English fallback get half of that: VADER knows few non-English words.

Every rule here changes scores, so any change to this module or to
:mod:`closeloop_sentiment.language` bumps :data:`MODEL_VERSION`; the version
is part of each scored event's id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from closeloop_sentiment.language import (
    CHINESE,
    ENGLISH,
    UNDETERMINED,
    DetectedLanguage,
    LanguageDetector,
)
from closeloop_shared.contracts.feedback import Feedback, Rating, RatingType
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel

MODEL_NAME = "closeloop-lexicon"
MODEL_VERSION = "1.0.0"

ENGLISH_NEUTRAL_BAND = 0.05
CHINESE_NEUTRAL_BAND = 0.2
RATING_WEIGHT = 0.5
NEUTRAL_CONFIDENCE = 0.5
FALLBACK_CONFIDENCE_FACTOR = 0.5

# Only the start of a very long text is scored: scoring cost grows with length,
# and in an email thread the newest message comes first.
MAX_SCORED_CHARS = 10_000
# Both models saturate on long texts (VADER sums valences, Naive Bayes sums
# log-probabilities), so longer texts are scored in chunks of about this size
# and the chunk scores averaged, weighted by length.
CHUNK_CHARS = 1_000

CUSTOMER_ROLE = "customer"

# Single words VADER's lexicon lacks or underrates for support conversations,
# on VADER's -4..+4 scale.
CX_LEXICON: Mapping[str, float] = {
    # Asking for a refund means something went wrong; "thanks for the quick
    # refund" still comes out positive.
    "refund": -1.0,
    "waited": -1.0,
    "overcharged": -2.2,
    "scammed": -2.7,
    "ripoff": -2.5,
    "rip-off": -2.5,
    "unresponsive": -1.8,
    "unusable": -2.2,
    "crashes": -1.7,
    "crashed": -1.7,
    "crashing": -1.7,
    "buggy": -1.6,
    "glitch": -1.2,
    "glitchy": -1.5,
    "outage": -1.8,
    "laggy": -1.4,
    "overpriced": -1.5,
    "hassle": -1.5,
    "nightmare": -2.5,
    # VADER has the British "cancelled" (-1.0) but not the American spelling.
    "canceled": -1.0,
    "seamless": 1.8,
}

# Multi-word complaints VADER scores as 0 because no single word carries them.
# Each match adds its valence to the text's valences before VADER normalises
# them. Matched on the lower-cased text after VADER turned emoji into their
# names, which is why the emoji names are here too.
CX_PHRASES: Sequence[tuple[re.Pattern[str], float]] = tuple(
    (re.compile(pattern), valence)
    for pattern, valence in (
        (
            r"\bcancel(?:s|l?ed|l?ing)?\s+my\s+(?:subscription|account|membership|plan|order)\b",
            -1.5,
        ),
        (
            r"\bstill\s+(?:not|no|waiting|has\s*n't|have\s*n't|is\s*n't|does\s*n't|did\s*n't|can't|won't)\b",
            -1.5,
        ),
        (r"\bnever\s+(?:arrived|came|showed up|received|got\s+(?:it|my|a|the|any))\b", -2.0),
        (
            r"\b(?:has\s*n't|have\s*n't|did\s*n't|not)\s+(?:yet\s+)?(?:arrived?|received|been\s+delivered)\b",
            -1.5,
        ),
        (r"\b(?:charged|billed)\s+(?:me\s+)?(?:twice|two\s+times|double)\b", -2.0),
        (r"\bdouble[\s-]?(?:charged|billed)\b", -2.0),
        (
            r"\b(?:not|stopped|is\s*n't|does\s*n't|does\s+not|won't|will\s+not|never)\s+work(?:s|ing)?\b",
            -2.0,
        ),
        (r"\b(?:no|never\s+got\s+a)\s+(?:response|reply|answer|call\s*back)\b", -1.5),
        (r"\b(?:no\s+one|nobody)\s+(?:has\s+)?(?:responded|replied|called|got\s+back)\b", -1.5),
        (r"\bhave\s*n't\s+heard\s+back\b", -1.5),
        (r"\b(?:on\s+hold\s+for|put\s+(?:me\s+)?on\s+hold|hung\s+up\s+on\s+me)\b", -1.5),
        (r"\bwhere(?:'s|\s+is)\s+my\s+(?:order|package|parcel|refund|money|delivery)\b", -1.0),
        (r"\bmoney\s+back\b", -1.5),
        (r"\bthumbs\s+up\b", 1.5),
        (r"\bthumbs\s+down\b", -1.5),
        (r"\bpouting\s+face\b", -2.0),
        (r"\bface\s+with\s+symbols\s+on\s+mouth\b", -2.5),
    )
)


@dataclass(frozen=True)
class ScoringInput:
    """What a scorer needs of one feedback item."""

    text: str
    rating: Rating | None = None
    declared_language: str | None = None


class Scorer(Protocol):
    """Scores a batch of texts; CPU-bound, called off the event loop, one batch at a time."""

    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        """One :class:`Sentiment` per item, in order."""
        ...


def customer_turns(transcript: object) -> list[str]:
    """The customer's turns of a ``[{"role": ..., "text": ...}, ...]`` transcript.

    Anything malformed is skipped rather than failing the item: transcripts come
    from many telephony vendors and are not part of the contract.
    """
    if not isinstance(transcript, list):
        return []
    turns: list[str] = []
    for turn in transcript:
        if not isinstance(turn, dict):
            continue
        role, text = turn.get("role"), turn.get("text")
        is_customer = isinstance(role, str) and role.strip().lower() == CUSTOMER_ROLE
        if is_customer and isinstance(text, str) and text.strip():
            turns.append(text.strip())
    return turns


def scoring_input(feedback: Feedback) -> ScoringInput:
    """The text to score: the customer's transcript turns if any, else subject and text.

    Agents' turns are polite by training ("sorry for the trouble, happy to
    help") and would pull every call towards neutral. Any channel may carry a
    transcript (hotline calls, in-app chats).
    """
    turns = customer_turns(feedback.attributes.get("transcript"))
    if turns:
        text = "\n".join(turns)
    elif feedback.subject:
        text = f"{feedback.subject}\n{feedback.text}"
    else:
        text = feedback.text
    return ScoringInput(text=text, rating=feedback.rating, declared_language=feedback.language)


def rating_polarity(rating: Rating) -> float:
    """A rating on [−1, 1].

    * stars and CSAT (1–5): 1 → −1, 2 → −0.5, 3 → 0, 4 → 0.5, 5 → 1;
    * CES (1–7, "it was easy", higher is better): linear around 4;
    * NPS (0–10): detractors 0–6 from −1 to −0.5, passives 7–8 → 0,
      promoters 9 → 0.5 and 10 → 1.
    """
    value = rating.value
    if rating.type is RatingType.NPS:
        if value <= 6:
            return -1.0 + 0.5 * value / 6
        if value < 9:
            return 0.0
        return 0.5 * (value - 8)
    if rating.type is RatingType.CES:
        return (value - 4) / 3
    return (value - 3) / 2


def label_for(score: float, band: float) -> SentimentLabel:
    if score >= band:
        return SentimentLabel.POSITIVE
    if score <= -band:
        return SentimentLabel.NEGATIVE
    return SentimentLabel.NEUTRAL


def confidence_for(score: float, band: float) -> float:
    if abs(score) < band:
        return NEUTRAL_CONFIDENCE
    return min(1.0, 0.5 + 0.5 * (abs(score) - band) / (1.0 - band))


def chunk_text(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Split at sentence ends (Latin or CJK) into chunks of at most ``max_chars``."""
    if len(text) <= max_chars:
        return [text]
    chunks: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[.!?;\n。！？；])", text):
        if len(current) + len(sentence) > max_chars:
            chunks.append(current)
            current = ""
        while len(sentence) > max_chars:  # one endless sentence: cut at a space if there is one
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            chunks.append(sentence[:cut])
            sentence = sentence[cut:]
        current += sentence
    chunks.append(current)
    return [chunk for chunk in chunks if chunk]


def _length_weighted_mean(scores_and_weights: Sequence[tuple[float, int]]) -> float:
    total_weight = sum(weight for _, weight in scores_and_weights)
    if total_weight == 0:
        return 0.0
    return sum(score * weight for score, weight in scores_and_weights) / total_weight


class _CustomerExperienceVader(SentimentIntensityAnalyzer):  # type: ignore[misc]  # untyped library
    """VADER with :data:`CX_LEXICON` and :data:`CX_PHRASES`."""

    def __init__(self) -> None:
        super().__init__()
        self.lexicon.update(CX_LEXICON)

    def score_valence(self, sentiments: list[float], text: str) -> dict[str, float]:
        # VADER calls this with the per-word valences once negation, boosters and
        # "but" were applied; phrase valences join them here so that VADER's
        # normalisation and punctuation emphasis treat them like words.
        lowered = text.lower().replace("\u2019", "'")
        phrases = [valence for pattern, valence in CX_PHRASES for _ in pattern.finditer(lowered)]
        return cast(dict[str, float], super().score_valence([*sentiments, *phrases], text))


class EnglishLexiconModel:
    """VADER plus customer-experience terms; also the fallback for other languages."""

    def __init__(self) -> None:
        self._analyzer = _CustomerExperienceVader()

    def score(self, text: str) -> float:
        """The length-weighted mean of the chunks' compound scores, in [−1, 1]."""
        return _length_weighted_mean(
            [
                (float(self._analyzer.polarity_scores(chunk)["compound"]), len(chunk))
                for chunk in chunk_text(text)
            ]
        )


class ChineseBayesModel:
    """pysenti's Naive Bayes: score = 2·P(positive) − 1, averaged over chunks."""

    def __init__(self, classifier: Any) -> None:
        self._classifier = classifier  # pysenti.model_classifier.ModelClassifier (untyped)

    @classmethod
    def load(cls) -> ChineseBayesModel:
        # Imported here, not at module level: importing pysenti builds jieba's
        # POS tables (~2.4 s), which must happen in the loading thread and not
        # on the event loop of whoever imports this module.
        from pysenti.model_classifier import ModelClassifier

        model = cls(ModelClassifier())
        # jieba loads its dictionary on first use (~0.7 s): do it now, not in
        # the first batch.
        model.score("服务很好")
        return model

    def positive_probability(self, text: str) -> float:
        probability = float(self._classifier.classify(text)["positive_prob"])
        return probability if math.isfinite(probability) else 0.5

    def score(self, text: str) -> float:
        return _length_weighted_mean(
            [
                (2.0 * self.positive_probability(chunk) - 1.0, len(chunk))
                for chunk in chunk_text(text)
            ]
        )


class LexiconScorer:
    """``closeloop-lexicon``: language detection, then VADER or Naive Bayes, then the rating."""

    def __init__(
        self, detector: LanguageDetector, english: EnglishLexiconModel, chinese: ChineseBayesModel
    ) -> None:
        self._detector = detector
        self._english = english
        self._chinese = chinese

    @classmethod
    def load(cls) -> LexiconScorer:
        """Load every model from the installed packages (~4 s, no network). Blocking."""
        return cls(LanguageDetector.load(), EnglishLexiconModel(), ChineseBayesModel.load())

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def model_version(self) -> str:
        return MODEL_VERSION

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        scored_at = datetime.now(UTC)
        return [self.score(item, scored_at) for item in items]

    def score(self, item: ScoringInput, scored_at: datetime) -> Sentiment:
        text = item.text[:MAX_SCORED_CHARS]
        language = self._detector.detect(text, item.declared_language)
        if language.code == CHINESE:
            text_score, band = self._chinese.score(text), CHINESE_NEUTRAL_BAND
        else:
            text_score, band = self._english.score(text), ENGLISH_NEUTRAL_BAND
        score = text_score
        if item.rating is not None:
            score = (1 - RATING_WEIGHT) * text_score + RATING_WEIGHT * rating_polarity(item.rating)
        score = max(-1.0, min(1.0, score))
        confidence = confidence_for(score, band)
        if not _has_own_model(language):
            confidence *= FALLBACK_CONFIDENCE_FACTOR
        return Sentiment(
            label=label_for(score, band),
            score=score,
            confidence=confidence,
            language=language.code,
            model=MODEL_NAME,
            model_version=MODEL_VERSION,
            scored_at=scored_at,
        )


def _has_own_model(language: DetectedLanguage) -> bool:
    # "und" is emoji, digits and punctuation: VADER's emoji handling is its own.
    return language.code in (ENGLISH, CHINESE, UNDETERMINED)
