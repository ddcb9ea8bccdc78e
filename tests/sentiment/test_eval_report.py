"""The evaluation report: both modes, their speed and every target, from the committed results."""

from __future__ import annotations

import json
from typing import Any

import pytest

from closeloop_sentiment.training.eval import DEFAULT_JSON, TARGETS, render, target_status


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DEFAULT_JSON.read_text("utf-8"))
    return loaded


def test_the_committed_results_cover_both_modes(results: dict[str, Any]) -> None:
    assert set(results["speed"]) == {"fast", "accurate"}
    assert set(results["cx"]["en"]) >= {"fast", "accurate"}
    assert "accurate (zh-tfidf + cx terms)" in results["chinese"]
    assert "accurate (cx-vader + en-tfidf)" in results["english"]["amazon"]


def test_every_target_is_reported_for_both_modes(results: dict[str, Any]) -> None:
    status = target_status(results)
    for language in ("en", "zh"):
        for metric in ("negative_recall", "negative_precision", "topic_micro_f1", "urgency_recall"):
            assert status[f"cx_{language}_{metric}"][1] == TARGETS[f"cx_{metric}"]
            assert f"accurate_cx_{language}_{metric}" in status
    assert status["accurate_items_per_second"] == (
        float(results["speed"]["accurate"]["items_per_second"]),
        300,
    )


def test_the_table_names_each_mode_and_says_which_targets_are_missed(
    results: dict[str, Any],
) -> None:
    table = render(results)
    assert "Speed, fast:" in table
    assert "Speed, accurate:" in table
    missed = [name for name, (value, target) in target_status(results).items() if value < target]
    for name in missed:
        assert any(
            line.split()[0] == name and line.endswith("NOT met")
            for line in table.splitlines()
            if line.strip()
        )
