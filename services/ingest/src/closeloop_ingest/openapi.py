"""OpenAPI documentation for bodies that the routes read as raw bytes.

Routes parse bodies themselves (signatures need the exact bytes, and
``model_validate_json`` is faster than FastAPI's body parameters), so FastAPI
cannot infer the request schemas; they are declared with ``openapi_extra`` and
the models are added to ``components.schemas`` here. The gateway reuses this
document for the public API.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from closeloop_ingest.adapters.app_reviews import AppStoreReviews, GooglePlayReviews
from closeloop_ingest.adapters.hotline import ContactLensAnalysis
from closeloop_ingest.adapters.meta import MetaWebhook
from closeloop_ingest.adapters.postmark import PostmarkInbound
from closeloop_ingest.http_body import FORM_URLENCODED, JSON, MULTIPART_FORM
from closeloop_shared.contracts.feedback import FeedbackBatchIn, FeedbackIn

_REF_TEMPLATE = "#/components/schemas/{model}"
_DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    FeedbackIn,
    FeedbackBatchIn,
    ContactLensAnalysis,
    PostmarkInbound,
    MetaWebhook,
    AppStoreReviews,
    GooglePlayReviews,
)


class ProblemDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    detail: str


class Problem(BaseModel):
    """Every error answer: ``{"error": {"code", "detail", ...}}``."""

    error: ProblemDetail


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF_TEMPLATE.format(model=model.__name__)}


def json_body(*models: type[BaseModel]) -> dict[str, Any]:
    schema = _ref(models[0]) if len(models) == 1 else {"oneOf": [_ref(m) for m in models]}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def form_body(
    fields: dict[str, str], required: list[str], *, multipart: bool = False
) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            name: {"type": "string", "description": doc} for name, doc in fields.items()
        },
        "required": required,
        "additionalProperties": True,
    }
    media_types = [FORM_URLENCODED, MULTIPART_FORM] if multipart else [FORM_URLENCODED]
    return {
        "requestBody": {
            "required": True,
            "content": {media_type: {"schema": schema} for media_type in media_types},
        }
    }


def add_documented_models(app: FastAPI) -> None:
    """Generate the app's OpenAPI document now and add the raw-body models to its components."""
    document = app.openapi()
    _, definitions = models_json_schema(
        [(model, "validation") for model in _DOCUMENTED_MODELS], ref_template=_REF_TEMPLATE
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
