"""Topics: a configurable multi-label taxonomy (YAML) with English and Chinese terms.

The default (``data/taxonomy.yaml``) covers the usual customer-experience
topics: billing, pricing, refund/return, delivery, wait time, staff attitude,
product quality, app/website bug, network/connectivity, account/login,
privacy/security and cancellation. ``CLOSELOOP_SENTIMENT_TAXONOMY_FILE``
replaces it with a file in the same format (see the default's header).

Matching is deliberately plain and explainable: English terms match whole
words, case-insensitively, with ``*`` as a suffix wildcard; Chinese terms
match as substrings; ``exclude`` terms veto a topic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

_HAN = re.compile(r"[\u3400-\u9fff]")


class TaxonomyError(ValueError):
    """The taxonomy file is not valid; the message names the problem."""


def _english_pattern(term: str) -> str:
    wildcard = term.endswith("*")
    words = term.rstrip("*").strip().split()
    body = r"\s+".join(re.escape(word) for word in words)
    # \b only where the term starts/ends with a word character ("£" or "$" do not).
    start = r"\b" if re.match(r"\w", words[0]) else ""
    end = r"\w*" if wildcard else (r"\b" if re.search(r"\w$", words[-1]) else "")
    return f"{start}{body}{end}"


@dataclass(frozen=True)
class Topic:
    name: str
    label: str
    english: re.Pattern[str] | None
    chinese: tuple[str, ...]
    exclude_english: re.Pattern[str] | None
    exclude_chinese: tuple[str, ...]

    def matches(self, lowered: str, chinese: bool = True) -> bool:
        """``chinese=False`` skips the Chinese terms (the text has no Han characters)."""
        if self.exclude_english is not None and self.exclude_english.search(lowered):
            return False
        if chinese and any(term in lowered for term in self.exclude_chinese):
            return False
        if self.english is not None and self.english.search(lowered):
            return True
        return chinese and any(term in lowered for term in self.chinese)


def _terms(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(term, str) and term.strip() for term in raw):
        raise TaxonomyError(f"{where} must be a list of non-empty strings")
    return [term.strip() for term in raw]


def _split(terms: Sequence[str]) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """Chinese terms (any Han character) as lower-cased substrings, the rest as one regex."""
    chinese = tuple(term.lower() for term in terms if _HAN.search(term))
    english = [term.lower() for term in terms if not _HAN.search(term)]
    pattern = re.compile("|".join(_english_pattern(term) for term in english)) if english else None
    return pattern, chinese


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: str
    topics: tuple[Topic, ...]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Taxonomy:
        if not isinstance(raw, Mapping):
            raise TaxonomyError("the taxonomy must be a mapping with `name` and `topics`")
        topics_raw = raw.get("topics")
        if not isinstance(topics_raw, Mapping) or not topics_raw:
            raise TaxonomyError("`topics` must be a non-empty mapping of topic name to terms")
        topics: list[Topic] = []
        for name, spec in topics_raw.items():
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
                raise TaxonomyError(f"topic name {name!r} must be lower-case snake_case")
            if not isinstance(spec, Mapping):
                raise TaxonomyError(f"topic {name!r} must be a mapping with `en` and/or `zh` terms")
            unknown = set(spec) - {"label", "en", "zh", "exclude"}
            if unknown:
                raise TaxonomyError(f"topic {name!r} has unknown keys: {sorted(unknown)}")
            terms = _terms(spec.get("en"), f"{name}.en") + _terms(spec.get("zh"), f"{name}.zh")
            if not terms:
                raise TaxonomyError(f"topic {name!r} has no terms")
            english, chinese = _split(terms)
            exclude_english, exclude_chinese = _split(
                _terms(spec.get("exclude"), f"{name}.exclude")
            )
            label = spec.get("label", name)
            topics.append(
                Topic(name, str(label), english, chinese, exclude_english, exclude_chinese)
            )
        return cls(str(raw.get("name", "custom")), str(raw.get("version", "1")), tuple(topics))

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise TaxonomyError(f"cannot read taxonomy {path}: {error}") from error
        return cls.from_mapping(raw)

    @classmethod
    def default(cls) -> Taxonomy:
        text = (
            resources.files("closeloop_sentiment").joinpath("data/taxonomy.yaml").read_text("utf-8")
        )
        return cls.from_mapping(yaml.safe_load(text))

    @property
    def names(self) -> list[str]:
        return [topic.name for topic in self.topics]

    def tag(self, text: str) -> list[str]:
        """Every topic the text mentions, in taxonomy order."""
        lowered = text.lower()
        chinese = _HAN.search(lowered) is not None
        return [topic.name for topic in self.topics if topic.matches(lowered, chinese)]
