"""Labels built from customer-supplied fields stay bounded."""

from __future__ import annotations

import pytest

from closeloop_shared.metric_labels import OTHER, BoundedLabel, language_label


def test_bounded_label_keeps_the_first_values_and_folds_the_rest() -> None:
    label = BoundedLabel(limit=3)
    assert [label(v) for v in ("checkout", "billing", "app", "checkout")] == [
        "checkout",
        "billing",
        "app",
        "checkout",
    ]
    assert {label(f"touchpoint-{i}") for i in range(1000)} == {OTHER}
    assert label(None) == "none"


def test_an_allow_list_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_TEST_TOUCHPOINTS", "checkout, billing")
    label = BoundedLabel.from_env("CLOSELOOP_TEST_TOUCHPOINTS")
    assert label("billing") == "billing"
    assert label("delivery") == OTHER


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en-US", "en"),
        ("zh_Hans_CN", "zh"),
        ("DE", "de"),
        ("yue", "yue"),
        (None, "und"),
        ("", "und"),
        ("x", "und"),
        ("english", "und"),
        ("12", "und"),
    ],
)
def test_language_label_is_the_primary_subtag(tag: str | None, expected: str) -> None:
    assert language_label(tag) == expected
