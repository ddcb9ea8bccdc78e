"""The public canonical API: ``FeedbackIn`` JSON as clients (in-app SDKs, surveys) send it."""

from __future__ import annotations

from pydantic import ValidationError

from closeloop_ingest.errors import InvalidPayload, MalformedBody, error_list, is_malformed_json
from closeloop_shared.contracts.feedback import FeedbackBatchIn, FeedbackIn


def parse_feedback(raw: bytes) -> FeedbackIn:
    # model_validate_json parses and validates in one pass in Rust: no dict in between.
    try:
        return FeedbackIn.model_validate_json(raw)
    except ValidationError as error:
        if is_malformed_json(error):
            raise MalformedBody("The body is not valid UTF-8 JSON.") from None
        raise InvalidPayload(
            "The feedback does not match the schema.", errors=error_list(error)
        ) from None


def parse_batch(raw: bytes) -> list[FeedbackIn]:
    """All or nothing: one bad item refuses the whole batch, naming every bad index."""
    try:
        return list(FeedbackBatchIn.model_validate_json(raw).items)
    except ValidationError as error:
        if is_malformed_json(error):
            raise MalformedBody("The body is not valid UTF-8 JSON.") from None
        errors = error_list(error)
        invalid_items = sorted(
            {
                e["loc"][1]
                for e in errors
                if len(e["loc"]) > 1 and e["loc"][0] == "items" and isinstance(e["loc"][1], int)
            }
        )
        raise InvalidPayload(
            "The batch was refused; no item was accepted.",
            errors=errors,
            invalid_items=invalid_items,
        ) from None
