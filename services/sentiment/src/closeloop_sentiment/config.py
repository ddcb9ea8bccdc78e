"""Sentiment settings, read from ``CLOSELOOP_SENTIMENT_*`` environment variables.

Only operational knobs live here, and the topic taxonomy. Everything that
changes a score (bands, lexicon, weights) is a constant of the model, covered by
its version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from closeloop_shared.config import ServiceSettings


class SentimentSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLOSELOOP_SENTIMENT_", extra="ignore", env_ignore_empty=True
    )

    port: int = 8002

    # How long one batch's publish may wait for acks=all before the batch is
    # retried (the consumer treats the broker being away as transient).
    publish_ack_timeout_s: float = Field(default=5.0, gt=0)
    # POST /v1/score: scores a text on demand, for operators checking the model.
    score_endpoint_enabled: bool = True
    # false: a score-only deployment (a new model version serving `closeloop rescore`). It
    # never joins the live consumer group, so it cannot score or publish the live stream.
    consume_enabled: bool = True
    # A topic taxonomy (YAML, see closeloop_sentiment/data/taxonomy.yaml) that
    # replaces the default. Topics are not part of the sentiment score.
    taxonomy_file: Path | None = None
    # fast: closeloop-lexicon (≥ 2,000 items/s per core). accurate:
    # closeloop-accurate, the same rules with the TF-IDF heads (character
    # n-grams, jieba words): a point or two more accurate, a few times slower.
    # The model name goes into each scored event, so the two never mix silently.
    model: Literal["fast", "accurate"] = "fast"
