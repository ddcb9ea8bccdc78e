"""Micro-benchmark of the fast model's per-item analysis (not a test: no assertions on time).

    .venv/bin/python tests/sentiment/bench_analysis.py [--runs 5] [--only whole|parts]
        [--snapshot PATH] [--compare PATH]

The stream is the CX labelled set (every item, prepared by channel as the
consumer prepares it) plus the stream ``make eval`` times: 1,000 texts of the
Chinese test split and 250 of each English corpus's test split. Each stage is
timed in CPU seconds (``time.process_time``), best of ``--runs``: on a shared
machine the slower runs measure the neighbours. For instruction counts, which
the neighbours do not change, run it under ``perf stat -e instructions`` with
``--only whole --runs 1``, and subtract a run with ``--only load`` (loading
the models and the stream only).

``--snapshot`` writes every item's full analysis (label, score, confidence,
language, emotions, topics, urgency, cues) as JSON lines; ``--compare`` checks
the current code against such a file and prints any difference, so a change
meant to be output-neutral can be checked against the code before it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from closeloop_sentiment.scoring import LexiconScorer, ScoringInput, scoring_input
from closeloop_sentiment.training.data import chinese_splits, cx_items, english_corpora
from closeloop_sentiment.training.eval import feedback_of
from closeloop_sentiment.urgency import assess


def stream() -> list[ScoringInput]:
    cx = [scoring_input(feedback_of(item)) for item in cx_items()]
    _, chinese_test = chinese_splits()
    chinese = [ScoringInput(example.text) for example in chinese_test[:1000]]
    english = [
        ScoringInput(example.text)
        for _, test in english_corpora().values()
        for example in test[:250]
    ]
    return cx + chinese + english


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def best_of(runs: int, work: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        started = time.process_time()
        work()
        timings.append(time.process_time() - started)
    return min(timings)


def analysis_record(scorer: LexiconScorer, item: ScoringInput) -> dict[str, Any]:
    analysis = scorer.analyse(item)
    return {
        "text": item.text,
        "label": analysis.label.value,
        "score": analysis.score,
        "confidence": analysis.confidence,
        "language": analysis.language,
        "emotions": dict(analysis.emotions),
        "topics": list(analysis.topics),
        "urgency": analysis.urgency.value,
        "urgency_cues": list(analysis.urgency_cues),
    }


def compare(scorer: LexiconScorer, items: Sequence[ScoringInput], path: Path) -> int:
    expected = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    differences = 0
    for item, before in zip(items, expected, strict=True):
        now = analysis_record(scorer, item)
        if now != before:
            differences += 1
            say(json.dumps({"before": before, "now": now}, ensure_ascii=False))
    say(f"{differences} of {len(items)} analyses differ from {path}")
    return differences


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("whole", "parts", "all", "load"), default="all")
    parser.add_argument("--snapshot", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)

    scorer = LexiconScorer.load()
    items = stream()
    texts = [item.text for item in items]
    if args.snapshot:
        lines = [json.dumps(analysis_record(scorer, item), ensure_ascii=False) for item in items]
        args.snapshot.write_text("\n".join(lines) + "\n", "utf-8")
        say(f"wrote {len(lines)} analyses to {args.snapshot}")
        return
    if args.compare:
        sys.exit(1 if compare(scorer, items, args.compare) else 0)

    if args.only == "load":  # the baseline to subtract from an instruction count of "whole"
        return
    say(f"{len(items)} items ({len(items) - 2000} CX + 1,000 Chinese + 1,000 English corpus texts)")
    if args.only in ("whole", "all"):
        seconds = best_of(args.runs, lambda: scorer.score_batch(items))
        say(f"whole analysis: {seconds:.3f} CPU s, {len(items) / seconds:,.0f} items/s")
    if args.only in ("parts", "all"):
        taxonomy, emotions = scorer.taxonomy, scorer._emotions
        detector = scorer._detector
        parts: dict[str, Callable[[], object]] = {
            "urgency.assess": lambda: [assess(text) for text in texts],
            "Taxonomy.tag": lambda: [taxonomy.tag(text) for text in texts],
            "language.detect": lambda: [detector.detect(text) for text in texts],
            "EnglishModel.score (all texts)": lambda: [
                scorer.english_blend.score(text) for text in texts
            ],
            "ChineseLinearModel.score (all texts)": lambda: [
                scorer.chinese.score(text) for text in texts
            ],
            "english_emotions (all texts)": lambda: [
                emotions.english_emotions(text) for text in texts
            ],
            "chinese_emotions (all texts)": lambda: [
                emotions.chinese_emotions(text) for text in texts
            ],
        }
        for name, work in parts.items():
            seconds = best_of(args.runs, work)
            say(f"{name}: {seconds * 1e6 / len(texts):.1f} µs/item")


if __name__ == "__main__":
    main()
