"""The one OpenAPI document of the public API (/openapi.json, /docs)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from closeloop_gateway.schemas import ALERT_REQUEST_MODELS, ApiKeyCreate
from closeloop_shared.contracts.feedback import FeedbackBatchIn, FeedbackIn

# Bodies the gateway forwards without parsing: FastAPI never sees them as parameters, so
# their schemas are added to the components here and referenced from openapi_extra.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    FeedbackIn,
    FeedbackBatchIn,
    ApiKeyCreate,
    *ALERT_REQUEST_MODELS,
)

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`clk_...`) created with POST /v1/admin/api-keys.",
    },
    "postmarkBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "The user and password configured in Postmark's inbound webhook URL.",
    },
}

DESCRIPTION = """\
The public API of Closeloop: submit customer feedback (directly or as channel webhooks),
work the alerts it raises, and manage API keys.

Call with `Authorization: Bearer <API key>`; each operation names the scope it needs in
`x-required-scope` (`admin` implies every scope). Provider webhooks (Twilio, Mailgun,
Postmark, Meta) carry no API key: their signature is verified instead.

Errors are JSON: `{"error": {"code": "...", "detail": "..."}}`.
"""


class GatewayAPI(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            complete(super().openapi())
        assert self.openapi_schema is not None
        return self.openapi_schema


def complete(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, definitions = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    for name, definition in definitions.get("$defs", {}).items():
        # FastAPI's own (response) schema wins where both define one.
        schemas.setdefault(name, definition)
    components["securitySchemes"] = SECURITY_SCHEMES
