"""App-store reviews with star ratings, pushed by whatever polls the stores' APIs.

Neither store pushes reviews, so a poller (authenticated by API key at the
gateway) forwards what it fetched, unchanged:

* App Store Connect ``customerReviews`` resources:
  ``{"data": [{"type": "customerReviews", "id", "attributes": {"rating", "title",
  "body", "reviewerNickname", "createdDate", "territory"}}]}`` (or one object in ``data``);
* Google Play ``reviews.list`` results:
  ``{"reviews": [{"reviewId", "authorName", "comments": [{"userComment": {"text",
  "lastModified": {"seconds", "nanos"}, "starRating", "reviewerLanguage",
  "appVersionName", "device"}}]}]}``.

External ids are prefixed by store (``appstore:<id>``, ``googleplay:<reviewId>``)
because the two stores' id spaces are unrelated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import Field

from closeloop_ingest.adapters.base import (
    SUBJECT_CHARS,
    Normalised,
    NormalisedBuilder,
    ProviderModel,
    build_feedback,
    clip,
    fit_text,
    from_iso8601,
    from_unix_seconds,
    parse_json_model,
)
from closeloop_ingest.errors import InvalidPayload, MalformedBody
from closeloop_shared.contracts.feedback import Channel, RatingType

APP_STORE_REVIEW_TYPE = "customerReviews"


class AppStoreReviewAttributes(ProviderModel):
    rating: int | None = None
    title: str | None = None
    body: str | None = None
    reviewerNickname: str | None = None
    createdDate: str | None = None
    territory: str | None = None


class AppStoreReview(ProviderModel):
    type: str
    id: str = Field(min_length=1, max_length=200)
    attributes: AppStoreReviewAttributes = Field(default_factory=AppStoreReviewAttributes)


class AppStoreReviews(ProviderModel):
    data: list[AppStoreReview] | AppStoreReview


class GooglePlayTimestamp(ProviderModel):
    # Google's JSON encodes int64 as a string ("1700000000"); pydantic accepts both.
    seconds: int | None = None
    nanos: int = 0


class GooglePlayUserComment(ProviderModel):
    text: str | None = None
    lastModified: GooglePlayTimestamp | None = None
    starRating: int | None = None
    reviewerLanguage: str | None = None
    appVersionName: str | None = None
    device: str | None = None
    androidOsVersion: int | None = None


class GooglePlayComment(ProviderModel):
    userComment: GooglePlayUserComment | None = None


class GooglePlayReview(ProviderModel):
    reviewId: str = Field(min_length=1, max_length=200)
    authorName: str | None = None
    comments: list[GooglePlayComment] = Field(default_factory=list)


class GooglePlayReviews(ProviderModel):
    reviews: list[GooglePlayReview]


def _stars(value: int | None) -> dict[str, Any] | None:
    return {"type": RatingType.STARS, "value": value} if value is not None else None


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _app_store(raw: bytes, received_at: datetime, result: NormalisedBuilder) -> None:
    payload = parse_json_model(AppStoreReviews, raw)
    reviews = payload.data if isinstance(payload.data, list) else [payload.data]
    for index, review in enumerate(reviews):
        if review.type != APP_STORE_REVIEW_TYPE:
            # e.g. "customerReviewResponses" included alongside: not customer text.
            result.ignore("unsupported_type")
            continue
        attributes = review.attributes
        text, truncated = fit_text(attributes.body or attributes.title or "")
        if not text:
            result.ignore("no_text")
            continue
        result.add(
            build_feedback(
                at=["data", index],
                channel=Channel.APP,
                external_id=f"appstore:{review.id}",
                text=text,
                subject=clip(attributes.title, SUBJECT_CHARS),
                occurred_at=from_iso8601(attributes.createdDate) or received_at,
                customer={"handle": clip(attributes.reviewerNickname)},
                rating=_stars(attributes.rating),
                touchpoint="app_store",
                attributes=_without_none(
                    {
                        "store": "appstore",
                        "territory": clip(attributes.territory, 16),
                        "text_truncated": True if truncated else None,
                    }
                ),
            )
        )


def _google_play(raw: bytes, received_at: datetime, result: NormalisedBuilder) -> None:
    payload = parse_json_model(GooglePlayReviews, raw)
    for index, review in enumerate(payload.reviews):
        # The first userComment is the review; developerComment entries are our replies.
        comment = next((c.userComment for c in review.comments if c.userComment), None)
        text, truncated = fit_text((comment.text if comment else None) or "")
        if comment is None or not text:
            result.ignore("no_text")
            continue
        modified = comment.lastModified
        occurred_at = (
            from_unix_seconds(modified.seconds + modified.nanos / 1e9)
            if modified is not None and modified.seconds is not None
            else None
        )
        result.add(
            build_feedback(
                at=["reviews", index],
                channel=Channel.APP,
                external_id=f"googleplay:{review.reviewId}",
                text=text,
                occurred_at=occurred_at or received_at,
                customer={"name": clip(review.authorName)},
                rating=_stars(comment.starRating),
                touchpoint="google_play",
                language=clip(comment.reviewerLanguage, 16),
                attributes=_without_none(
                    {
                        "store": "googleplay",
                        "app_version": clip(comment.appVersionName, 64),
                        "device": clip(comment.device, 128),
                        "android_os_version": comment.androidOsVersion,
                        "text_truncated": True if truncated else None,
                    }
                ),
            )
        )


def app_reviews_to_feedback(raw: bytes, received_at: datetime) -> Normalised:
    """Reviews from either store; all or nothing, like the canonical batch endpoint."""
    try:
        top_level = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedBody("The body is not valid UTF-8 JSON.") from None
    result = NormalisedBuilder()
    if isinstance(top_level, dict) and "data" in top_level:
        _app_store(raw, received_at, result)
    elif isinstance(top_level, dict) and "reviews" in top_level:
        _google_play(raw, received_at, result)
    else:
        raise InvalidPayload(
            'Expected App Store Connect {"data": ...} or Google Play {"reviews": [...]}.',
            errors=[{"loc": [], "msg": "Unknown review format", "type": "format"}],
        )
    return result.build()
