"""Reading request bodies safely: media type, size cap while streaming, form parsing, public URL."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, ImmutableMultiDict, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from closeloop_ingest.errors import BodyTooLarge, MalformedBody, UnsupportedMediaType

JSON = "application/json"
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART_FORM = "multipart/form-data"

# Far more than any provider sends; stops a body made of millions of empty fields.
MAX_FORM_FIELDS = 1000


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(request: Request, accepted: Collection[str]) -> str:
    kind = media_type(request)
    if kind not in accepted:
        raise UnsupportedMediaType(
            f"Content-Type must be one of: {', '.join(sorted(accepted))}.",
            accepted=sorted(accepted),
        )
    return kind


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it (413) before or while reading once it exceeds ``limit``.

    ``Content-Length`` is checked first so an honest oversized request is refused
    without reading a byte; bytes are counted while streaming because chunked
    requests have no length and a dishonest one may lie.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_length = int(declared)
        except ValueError:
            raise MalformedBody("Content-Length is not a number.") from None
        if declared_length > limit:
            raise BodyTooLarge(f"The body exceeds {limit} bytes.", limit=limit)
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge(f"The body exceeds {limit} bytes.", limit=limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody will read the answer; counted as a rejection, not logged as a server error.
        raise MalformedBody(
            "The client disconnected before sending the whole body.", reason="client_disconnected"
        ) from None
    return b"".join(chunks)


def parse_urlencoded(raw: bytes) -> ImmutableMultiDict[str, str]:
    """Form fields in order, repeated keys kept (Twilio signs every value)."""
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise MalformedBody("The form body is not valid UTF-8 URL-encoding.") from None
    return ImmutableMultiDict(pairs)


@dataclass(frozen=True)
class MultipartForm:
    fields: ImmutableMultiDict[str, str]
    file_count: int


async def parse_multipart(raw: bytes, content_type: str, *, max_part_bytes: int) -> MultipartForm:
    """Text fields of a ``multipart/form-data`` body; files are counted, then discarded."""

    async def single_chunk() -> AsyncGenerator[bytes, None]:
        yield raw

    parser = MultiPartParser(
        Headers({"content-type": content_type}),
        single_chunk(),
        max_files=MAX_FORM_FIELDS,
        max_fields=MAX_FORM_FIELDS,
        max_part_size=max_part_bytes,
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise MalformedBody(f"The multipart body is malformed: {error.message}") from None
    try:
        fields = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
        file_count = sum(1 for _, value in form.multi_items() if isinstance(value, UploadFile))
    finally:
        await form.close()
    return MultipartForm(fields=ImmutableMultiDict(fields), file_count=file_count)


def public_url(request: Request) -> str:
    """The URL the provider called, as seen in front of the gateway.

    The gateway forwards X-Forwarded-Proto and X-Forwarded-Host; each proxy may
    append its own value, so the first (the client-facing one) counts. The path
    and query are taken raw, exactly as they were signed.
    """
    scheme = _first(request.headers.get("x-forwarded-proto")) or request.url.scheme
    host = _first(request.headers.get("x-forwarded-host")) or request.headers.get(
        "host", request.url.netloc
    )
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def _first(value: str | None) -> str | None:
    if not value:
        return None
    first = value.split(",", 1)[0].strip()
    return first or None
