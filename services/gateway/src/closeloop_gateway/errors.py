"""Refusals the gateway answers itself, in the shared ``{"error": {...}}`` shape."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import Response

from closeloop_shared.http.observability import problem


class ProblemError(Exception):
    """Raised anywhere in a request; the handler below turns it into the JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        **extra: object,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra


async def problem_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    response = problem(exc.status, exc.code, exc.detail, **exc.extra)
    response.raw_headers.extend(exc.headers)
    return response


def unavailable(detail: str, retry_after_s: int, **extra: object) -> ProblemError:
    return ProblemError(
        503,
        "unavailable",
        detail,
        headers=[(b"retry-after", str(retry_after_s).encode())],
        **extra,
    )
