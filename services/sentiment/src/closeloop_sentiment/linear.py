"""A small linear text model: logistic regression over binary sparse features.

Trained by :mod:`closeloop_sentiment.training.train` (pure Python, seeded), stored
as gzipped JSON next to this module (``data/models/<name>.json.gz``) with a
record of how it was made (``<name>.meta.json``). Applying it is a dictionary
lookup per feature, so it scores thousands of texts per second without numpy.

Features:

* ``zh``: character 1-, 2- and 3-grams, present or absent (no segmentation).
* ``en``: lower-cased words and adjacent pairs, plus the CX-VADER compound as
  real-valued features (``vader``, ``vader+``, ``vader-``).
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

MODELS_DIR = "data/models"
_ENGLISH_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, value))))


CHINESE_NGRAMS = (1, 2, 3)


def chinese_features(text: str) -> list[str]:
    """Character 1-, 2- and 3-grams of the text without whitespace.

    No word segmentation: n-grams carry words and negation (不好, 没到) just as
    well on this data (83.8 vs 83.1 % on a dev split of the train split) and
    are ~6× faster than jieba.
    """
    compact = "".join(text.split())
    return list({compact[i : i + n] for n in CHINESE_NGRAMS for i in range(len(compact) - n + 1)})


def english_tokens(text: str) -> list[str]:
    return _ENGLISH_WORD.findall(text.lower().replace("\u2019", "'"))


def english_features(tokens: Sequence[str]) -> list[str]:
    return list({*tokens, *(f"{a}|{b}" for a, b in itertools.pairwise(tokens))})


def vader_features(compound: float) -> dict[str, float]:
    return {"vader": compound, "vader+": max(compound, 0.0), "vader-": min(compound, 0.0)}


@dataclass(frozen=True)
class LinearModel:
    name: str
    version: str
    bias: float
    weights: Mapping[str, float]

    def logit(self, features: Iterable[str], real: Mapping[str, float] | None = None) -> float:
        weights = self.weights
        total = self.bias + sum(weights.get(feature, 0.0) for feature in features)
        if real:
            total += sum(weights.get(name, 0.0) * value for name, value in real.items())
        return total

    def to_json(self, meta: Mapping[str, Any]) -> bytes:
        body = {"name": self.name, "version": self.version, "bias": round(self.bias, 6), **meta}
        body["weights"] = {key: round(value, 4) for key, value in sorted(self.weights.items())}
        # mtime=0: the same model gives the same bytes, so a retrain that changed
        # nothing leaves no diff.
        return gzip.compress(json.dumps(body, ensure_ascii=False).encode(), mtime=0)

    @classmethod
    def from_json(cls, raw: bytes) -> LinearModel:
        body = json.loads(gzip.decompress(raw))
        return cls(body["name"], body["version"], float(body["bias"]), body["weights"])

    @classmethod
    def load(cls, name: str) -> LinearModel:
        path = resources.files("closeloop_sentiment").joinpath(f"{MODELS_DIR}/{name}.json.gz")
        return cls.from_json(path.read_bytes())
