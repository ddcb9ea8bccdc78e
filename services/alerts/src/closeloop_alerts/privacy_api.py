"""``POST /v1/privacy/erasures``: erase a customer's data.

Admin only: the gateway requires the ``admin`` scope, and this service refuses (403) any
role but ``admin`` when the gateway names one; internal callers without a role header
(operators on the private network, tests) may erase as before."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from closeloop_alerts import privacy
from closeloop_alerts.access import AdminAccess
from closeloop_alerts.routes import ApiContext
from closeloop_shared.http.observability import problem

Identifier = Annotated[str, Field(min_length=1, max_length=320, pattern=r"^[^\x00]*\S[^\x00]*$")]


class ErasureIn(BaseModel):
    """At least one identifier of the customer; every item carrying any of them is erased,
    and so is every item carrying another identifier those items had."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Identifier | None = None
    email: Identifier | None = None
    phone: Identifier | None = None
    handle: Identifier | None = None
    reference: Annotated[str, Field(max_length=128, pattern=r"^[^\x00]*$")] | None = Field(
        default=None, description="Your reference for the request (a ticket id); recorded."
    )

    @model_validator(mode="after")
    def _something_to_find(self) -> ErasureIn:
        if not (self.customer_id or self.email or self.phone or self.handle):
            raise ValueError("give at least one of customer_id, email, phone, handle")
        return self


class ErasureCounts(BaseModel):
    feedback: int
    alerts: int
    customer_identities: int
    alert_identities: int
    audit_entries_masked: int
    outbox_events: int


class ErasureOut(BaseModel):
    id: uuid.UUID
    requested_at: datetime
    counts: ErasureCounts


router = APIRouter(prefix="/v1", tags=["privacy"])


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


@router.post(
    "/privacy/erasures",
    status_code=201,
    response_model=ErasureOut,
    responses={
        403: {"description": "The caller's role is not admin (JSON error)"},
        422: {"description": "No identifier, or an invalid one (JSON error)"},
    },
)
async def request_erasure(
    body: ErasureIn,
    context: Annotated[ApiContext, Depends(_context)],
    _admin: AdminAccess,
    actor: Annotated[str | None, Header(alias="X-Closeloop-Actor", max_length=256)] = None,
) -> ErasureOut | JSONResponse:
    """Erase (anonymise) every stored item of the customer; recorded, idempotent."""
    request = privacy.ErasureRequest(
        customer_id=body.customer_id,
        email=body.email,
        phone=body.phone,
        handle=body.handle,
        actor=actor,
        reference=body.reference,
    )
    if not request.identities():
        # A phone number with fewer than six digits, say: nothing it could match.
        return problem(422, "invalid_identifier", "None of the identifiers can identify anyone.")
    erasure = await privacy.erase(context.sessionmaker, request)
    return ErasureOut(
        id=erasure.id,
        requested_at=erasure.requested_at,
        counts=ErasureCounts(**erasure.counts),
    )
