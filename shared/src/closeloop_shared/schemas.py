"""Publish the event contract as JSON Schema files (``make schemas``).

The pydantic models in :mod:`closeloop_shared.events` are the source of truth;
the files under ``shared/schemas/`` are what non-Python consumers read, and a
test fails when the two drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from closeloop_shared.contracts.feedback import FeedbackBatchIn, FeedbackIn
from closeloop_shared.events import (
    AlertLifecycleEvent,
    CustomerReplyRequestedEvent,
    FeedbackReceivedEvent,
    FeedbackScoredEvent,
    SentimentRescoredEvent,
)

SCHEMA_ID_BASE = "https://closeloop.dev/schemas/"

PUBLISHED: dict[str, type[BaseModel]] = {
    "feedback-received.v1.json": FeedbackReceivedEvent,
    "feedback-scored.v1.json": FeedbackScoredEvent,
    "alert-lifecycle.v1.json": AlertLifecycleEvent,
    "customer-reply-requested.v1.json": CustomerReplyRequestedEvent,
    "sentiment-rescored.v1.json": SentimentRescoredEvent,
    "feedback-in.v1.json": FeedbackIn,
    "feedback-batch-in.v1.json": FeedbackBatchIn,
}


def render(name: str, model: type[BaseModel]) -> str:
    schema = model.model_json_schema(mode="validation")
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID_BASE + name,
        **schema,
    }
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in PUBLISHED.items():
        path = directory / name
        path.write_text(render(name, model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "shared/schemas")):
        sys.stdout.write(f"wrote {path}\n")
