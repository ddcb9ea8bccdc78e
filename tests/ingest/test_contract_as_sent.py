"""The published FeedbackIn schema and the API agree on whitespace-padded strings.

ContractModel strips surrounding whitespace; the published maxLength and pattern must still
hold for the value as the client sent it, or a client validating against the schema and the
API would disagree (Schemathesis found 257 characters passing a documented maxLength 256).
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import ValidationError

from closeloop_shared.contracts.feedback import MAX_TEXT_CHARS, FeedbackIn

BASE: dict[str, Any] = {
    "channel": "app",
    "external_id": "order-1",
    "text": "The parcel never came.",
    "occurred_at": "2026-01-01T00:00:00Z",
}
SCHEMA = Draft202012Validator(FeedbackIn.model_json_schema())


def accepted(item: dict[str, Any]) -> bool:
    try:
        FeedbackIn.model_validate(item)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("external_id", "\t" + "a" * 256),
        ("external_id", "a" * 256 + " "),
        ("external_id", " " + "a" * 255),
        ("external_id", "a" * 256),
        ("text", " " + "x" * MAX_TEXT_CHARS),
        ("subject", "\n" + "s" * 1000),
        ("language", " en-GB "),
        ("language", " " * 8 + "zh-Hant-TW"),
        ("touchpoint", " checkout"),
        ("touchpoint", "checkout "),
        ("touchpoint", "checkout"),
        ("customer", {"email": " " + "e" * 512}),
        ("customer", {"email": " ann@example.com "}),
    ],
)
def test_the_api_refuses_exactly_what_the_published_schema_refuses(
    field: str, value: object
) -> None:
    item = {**BASE, field: value}
    assert accepted(item) == SCHEMA.is_valid(item), (field, value)


def test_values_within_the_limits_are_still_stripped() -> None:
    item = FeedbackIn.model_validate(
        {**BASE, "external_id": " order-2\t", "customer": {"email": " ann@example.com "}}
    )
    assert item.external_id == "order-2"
    assert item.customer.email == "ann@example.com"


def test_a_refusal_names_the_limit_like_any_length_error() -> None:
    with pytest.raises(ValidationError) as refused:
        FeedbackIn.model_validate({**BASE, "external_id": "\t" + "a" * 256})
    [error] = refused.value.errors()
    assert (error["type"], error["loc"], error["ctx"]) == (
        "string_too_long",
        ("external_id",),
        {"max_length": 256},
    )
