"""A small linear text model: logistic regression over binary sparse features.

Trained by :mod:`closeloop_sentiment.training.train` (pure Python, seeded), stored
as gzipped JSON next to this module (``data/models/<name>.json.gz``) with a
record of how it was made (``<name>.meta.json``). Applying it is a dictionary
lookup per feature, so it scores thousands of texts per second without numpy.

Features:

* ``zh``: jieba words and adjacent word pairs (``w1|w2``, which carry negation:
  ``不|好``), present or absent.
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


def chinese_features(tokens: Sequence[str]) -> list[str]:
    words = [token for token in tokens if token.strip()]
    return list({*words, *(f"{a}|{b}" for a, b in itertools.pairwise(words))})


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
        body = {"name": self.name, "version": self.version, "bias": self.bias, **meta}
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
