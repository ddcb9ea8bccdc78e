"""The fast paths of the per-item analysis give exactly what the plain definitions give.

* topics: one Aho-Corasick pass over every taxonomy term, against each
  topic's own regexes (:meth:`Topic.matches`);
* urgency: the English cue patterns without IGNORECASE on the lower-cased
  text, against every pattern IGNORECASE on the text as written (the code
  before this change, kept below as the reference);
* CX-VADER phrases: one pattern asked first, against every phrase pattern.

Over the whole CX set (raw and as each channel prepares it), the Chinese
corpus's test split (3,472 texts) and texts generated from the terms, cue
words and the characters where the two ways could part (whitespace runs,
case-folding exceptions, curly quotes).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closeloop_sentiment.scoring import CX_PHRASES, cx_phrase_valences, scoring_input
from closeloop_sentiment.taxonomy import _HAN, Taxonomy
from closeloop_sentiment.training.data import chinese_splits, cx_items
from closeloop_sentiment.training.eval import feedback_of
from closeloop_sentiment.urgency import (
    _CHINESE,
    _CHINESE_PATTERNS,
    _ENGLISH,
    _ENGLISH_PATTERNS,
    CASE_FOLD_EXCEPTIONS,
    CUE_KINDS,
    UrgencyResult,
    assess,
    level_for,
)

TAXONOMY = Taxonomy.default()


def reference_tag(taxonomy: Taxonomy, text: str) -> list[str]:
    """Topics the plain way: each topic's regexes and substrings in turn."""
    lowered = text.lower()
    chinese = _HAN.search(lowered) is not None
    return [topic.name for topic in taxonomy.topics if topic.matches(lowered, chinese)]


def reference_assess(text: str) -> UrgencyResult:
    """Urgency as it was computed before: every cue pattern IGNORECASE on the text."""
    quoted = text.replace("\u2019", "'")
    cues: dict[str, str] = {}
    patterns = _ENGLISH_PATTERNS if quoted.isascii() else _ENGLISH_PATTERNS + _CHINESE_PATTERNS
    for kind, pattern in patterns:
        if kind in cues:
            continue
        match = pattern.search(quoted)
        if match:
            cues[kind] = f"{kind}: {' '.join(match.group(0).split())}"
    kinds = [kind for kind in CUE_KINDS if kind in cues]
    return UrgencyResult(level_for(kinds), tuple(cues[kind] for kind in kinds))


def reference_phrase_valences(lowered: str) -> list[float]:
    return [valence for pattern, valence in CX_PHRASES for _ in pattern.finditer(lowered)]


def assert_same(text: str) -> None:
    assert TAXONOMY.tag(text) == reference_tag(TAXONOMY, text), text
    assert assess(text) == reference_assess(text), text
    lowered = text.lower().replace("\u2019", "'")
    assert cx_phrase_valences(lowered) == reference_phrase_valences(lowered), text


def corpus_texts() -> Iterator[str]:
    for item in cx_items():
        yield f"{item.subject}\n{item.text}" if item.subject else item.text
        yield scoring_input(feedback_of(item)).text
    _, chinese_test = chinese_splits()
    for example in chinese_test:
        yield example.text


def test_the_corpora_give_the_same_topics_cues_and_phrases() -> None:
    texts = list(corpus_texts())
    assert len(texts) > 3_500
    for text in texts:
        assert_same(text)
    # The comparison means something only if the texts have topics and cues.
    assert sum(1 for text in texts if TAXONOMY.tag(text)) > 1_000
    assert sum(1 for text in texts if assess(text).cues) > 300


def _words(patterns: dict[str, str]) -> set[str]:
    return {word for pattern in patterns.values() for word in re.findall(r"[a-z0-9'&@-]+", pattern)}


def _vocabulary() -> list[str]:
    words = _words(_ENGLISH) | _words({str(i): p.pattern for i, (p, _) in enumerate(CX_PHRASES)})
    chinese = {term for pattern in _CHINESE.values() for term in re.findall(r"[^\W\d]+", pattern)}
    terms: set[str] = set()
    for topic in TAXONOMY.topics:
        terms |= set(topic.chinese) | set(topic.exclude_chinese)
        for pattern in (topic.english, topic.exclude_english):
            if pattern is not None:
                terms |= {
                    re.sub(r"\\(.)", r"\1", term.replace(r"\s+", " ")).strip()
                    for term in re.sub(r"\\b|\\w\*", "", pattern.pattern).split("|")
                }
    return sorted(words | chinese | terms)


VOCABULARY = _vocabulary()
# Where lower-casing, \s+ and \b could make the fast paths part from the regexes.
AWKWARD = [*CASE_FOLD_EXCEPTIONS, "\u2019", "\u00a0", "\t", "\n", "  ", "_", "-", "s", "ing"]
FRAGMENT = st.one_of(
    st.sampled_from(VOCABULARY),
    st.sampled_from(VOCABULARY).map(str.upper),
    st.sampled_from(VOCABULARY).map(str.title),
    st.sampled_from(AWKWARD),
    st.text(alphabet="abcXYZ 12退款。", max_size=3),
)
SEPARATOR = st.sampled_from(["", " ", "  ", "\n", "\u3000", ", ", "'", "x"])


@settings(
    max_examples=3_000,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.tuples(SEPARATOR, FRAGMENT), max_size=12))
def test_generated_texts_give_the_same_topics_cues_and_phrases(
    parts: list[tuple[str, str]],
) -> None:
    assert_same("".join(separator + fragment for separator, fragment in parts))


@pytest.mark.parametrize(
    "text",
    [
        # A whitespace run between a term's words, as \s+ allows.
        "They charged me   twice and the  delivery\tdriver was late",
        # Case-folding exceptions fall back to the case-insensitive patterns.
        "I will ſue you in court",
        "İ want to CANCEL my subscription",
    ],
)
def test_awkward_texts(text: str) -> None:
    assert_same(text)


def test_every_non_ascii_character_ignorecase_matches_to_a_letter_is_an_exception() -> None:
    # Outside these, str.lower() turns a character into the ASCII letter that
    # IGNORECASE matches it to, or into no ASCII letter at all.
    everything = "".join(chr(code) for code in range(0x80, sys.maxunicode + 1))
    folded = set(re.findall("[a-z]", everything, re.IGNORECASE))
    assert folded == set(CASE_FOLD_EXCEPTIONS)


def test_the_english_cue_patterns_are_lower_case() -> None:
    # Matched without IGNORECASE on the lower-cased text, an upper-case letter
    # in a pattern would never match.
    assert all(pattern == pattern.lower() for pattern in _ENGLISH.values())


def test_str_whitespace_and_word_characters_are_the_regex_ones() -> None:
    # The taxonomy's automaton joins whitespace runs with str.split and checks
    # word boundaries with str.isalnum; the regexes use \s and \w.
    everything = "".join(
        chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF
    )
    assert re.findall(r"\s", everything) == [c for c in everything if c.isspace()]
    assert re.findall(r"\w", everything) == [c for c in everything if c.isalnum() or c == "_"]


def test_a_custom_taxonomy_shares_terms_between_topics() -> None:
    taxonomy = Taxonomy.from_mapping(
        {
            "topics": {
                "billing": {"en": ["charge*", "bill"], "zh": ["扣费"], "exclude": ["free"]},
                "fees": {"en": ["charge*", "late fee"], "exclude": ["免费"]},
                "money": {"en": ["$", "£ 10"], "zh": ["扣费"]},
            }
        }
    )
    for text, expected in [
        ("They charged me a late   fee", ["billing", "fees"]),
        ("charges are free today", ["fees"]),
        ("扣费了，免费的不是", ["billing", "money"]),
        ("it cost £\n10 and $5", ["money"]),
        ("billing", []),
    ]:
        assert taxonomy.tag(text) == expected == reference_tag(taxonomy, text), text
