"""Language detection: a script rule for Chinese, py3langid for everything else.

Four steps, first match wins:

1. **No letters** (emoji, digits, punctuation only): ``"und"`` (undetermined).
2. **Han text**: Chinese characters make up more than half of the text's *units*
   (each Han character is a unit, each run of other letters, such as an English
   word, is one unit) and kana make up less than a tenth of the CJK characters
   (kana would mean Japanese): ``"zh"``. langid is weak on short texts, and a
   script count is reliable for Han, so this rule wins over it.
3. **ASCII text with English function words** (at least two distinct ones
   from :data:`_ENGLISH_MARKERS`, ≥ 15 % of the words): ``"en"`` without
   asking langid, which is the slowest step of the fast model.
4. **Everything else**: py3langid's Naive Bayes over 140 languages, with a
   prior. langid assumes every language is equally likely, which makes it
   answer ``sr``, ``xh`` or ``ms`` for "ok", "thanks" or "bad". Our feedback is
   mostly English and Chinese, so those two (and the language the channel
   declared, if any) get :data:`EXPECTED_LANGUAGE_WEIGHT` times the prior of
   the others. 3 fixed every short English text in our checks without flipping
   clear Spanish, French or German ones; 10 started to (see the tests).

Codes are langid's: ISO 639-1 where one exists (``en``, ``zh``, ``de``), else
ISO 639-3 (``yue``, ``pcm``). Changing these rules changes the scores, so it is
part of :data:`closeloop_sentiment.scoring.MODEL_VERSION`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

UNDETERMINED = "und"
ENGLISH = "en"
CHINESE = "zh"

EXPECTED_LANGUAGES: tuple[str, ...] = (ENGLISH, CHINESE)
EXPECTED_LANGUAGE_WEIGHT = 3.0

# Han must be the majority of units; below a tenth kana still counts as Chinese
# (Chinese posts borrow the odd の), above it the text is Japanese.
HAN_UNIT_SHARE = 0.5
MAX_KANA_SHARE_FOR_CHINESE = 0.1

# langid's cost grows with the text; the first few thousand characters decide.
MAX_DETECTION_CHARS = 2_000

# langid's label for "no linguistic content".
_LANGID_NO_CONTENT = "zxx"

_HAN_RANGES = (
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x3134F),  # Extensions B to G
)
_HAN_CHARACTERS = re.compile(
    "[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in _HAN_RANGES) + "]"
)
_KANA_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0xFF66, 0xFF9D),  # Halfwidth Katakana
)


@dataclass(frozen=True)
class DetectedLanguage:
    code: str
    """langid's code, ``"zh"`` from the Han rule, or ``"und"`` when there are no letters."""
    confidence: float
    """In [0, 1]: the posterior for langid, the Han share for the script rule."""


@dataclass(frozen=True)
class ScriptProfile:
    """How much of a text is Han, kana and other letters."""

    han: int
    kana: int
    other_words: int
    """Runs of letters that are neither Han nor kana (an English word counts once)."""

    @property
    def has_letters(self) -> bool:
        return self.han + self.kana + self.other_words > 0

    @property
    def han_unit_share(self) -> float:
        units = self.han + self.kana + self.other_words
        return self.han / units if units else 0.0

    @property
    def kana_share_of_cjk(self) -> float:
        cjk = self.han + self.kana
        return self.kana / cjk if cjk else 0.0


_KANA_CHARACTERS = re.compile(
    "[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in _KANA_RANGES) + "]"
)
# Letters: word characters that are not digits or underscores.
_LETTER_RUN = re.compile(r"[^\W\d_]+")


def script_profile(text: str) -> ScriptProfile:
    han = len(_HAN_CHARACTERS.findall(text))
    kana = len(_KANA_CHARACTERS.findall(text))
    rest = text
    if han or kana:
        rest = _KANA_CHARACTERS.sub(" ", _HAN_CHARACTERS.sub(" ", text))
    return ScriptProfile(han=han, kana=kana, other_words=len(_LETTER_RUN.findall(rest)))


# Words that settle an ASCII text as English without asking langid (which costs
# ~0.3 ms a text): none of them is a common word in the other Latin-script
# languages langid knows well.
_ENGLISH_MARKERS = frozenset(
    {
        "the",
        "and",
        "is",
        "are",
        "were",
        "to",
        "of",
        "my",
        "your",
        "you",
        "it",
        "this",
        "that",
        "for",
        "with",
        "have",
        "has",
        "not",
        "but",
        "we",
        "they",
        "been",
        "at",
        "from",
        "just",
        "very",
        "would",
        "could",
        "will",
        "can't",
        "don't",
        "it's",
        "i'm",
        "i",
        "was",
        "what",
        "which",
        "there",
        "their",
        "after",
        "about",
        "because",
    }
)
_ASCII_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
ENGLISH_MARKER_MIN = 2
ENGLISH_MARKER_SHARE = 0.15


def looks_english(text: str) -> bool:
    """An ASCII text with at least two distinct English function words making up ≥ 15 % of it."""
    if not text.isascii():
        return False
    words = _ASCII_WORD.findall(text.lower())
    markers = [word for word in words if word in _ENGLISH_MARKERS]
    return len(set(markers)) >= ENGLISH_MARKER_MIN and len(markers) >= ENGLISH_MARKER_SHARE * len(
        words
    )


def normalise_language_tag(tag: str | None) -> str | None:
    """``"en-US"`` → ``"en"``, ``"zh_Hant"`` → ``"zh"``; blank → None."""
    if tag is None:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary or None


class LanguageDetector:
    """Thread-safe after construction: detection only reads the model."""

    def __init__(
        self,
        identifier: Any,
        expected_languages: Collection[str] = EXPECTED_LANGUAGES,
        expected_weight: float = EXPECTED_LANGUAGE_WEIGHT,
    ) -> None:
        # A py3langid LanguageIdentifier built with norm_probs=True (untyped library).
        self._identifier = identifier
        self._known = frozenset(identifier.labels)
        self._expected = frozenset(expected_languages) & self._known
        self._expected_weight = expected_weight

    @classmethod
    def load(cls) -> LanguageDetector:
        """Read langid's bundled model (~1.4 s: it is xz-compressed); no network."""
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        return cls(LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True))

    def detect(self, text: str, declared: str | None = None) -> DetectedLanguage:
        """Detect the language of ``text``; ``declared`` (e.g. an app locale) is a hint only."""
        sample = text[:MAX_DETECTION_CHARS]
        profile = script_profile(sample)
        if not profile.has_letters:
            return DetectedLanguage(UNDETERMINED, 1.0)
        looks_japanese = profile.kana_share_of_cjk >= MAX_KANA_SHARE_FOR_CHINESE
        if not looks_japanese and profile.han_unit_share > HAN_UNIT_SHARE:
            return DetectedLanguage(CHINESE, profile.han_unit_share)
        if profile.han and not looks_japanese:
            # A few Chinese names in, say, English text confuse langid ("I love
            # 北京 and Shanghai food" comes out as Nigerian Pidgin); the rest of
            # the text decides. Japanese keeps its kanji: they are evidence.
            sample = _HAN_CHARACTERS.sub(" ", sample)
        elif not profile.han and looks_english(sample):
            return DetectedLanguage(ENGLISH, 1.0)
        return self._classify(sample, normalise_language_tag(declared))

    def _classify(self, text: str, declared: str | None) -> DetectedLanguage:
        expected = self._expected | ({declared} & self._known if declared else frozenset())
        ranked: list[tuple[str, float]] = self._identifier.rank(text)
        weighted = {
            code: probability * (self._expected_weight if code in expected else 1.0)
            for code, probability in ranked
        }
        total = sum(weighted.values())
        code = max(weighted, key=weighted.__getitem__)
        confidence = weighted[code] / total if total > 0 else 0.0
        if code == _LANGID_NO_CONTENT:
            return DetectedLanguage(UNDETERMINED, confidence)
        return DetectedLanguage(code, confidence)
