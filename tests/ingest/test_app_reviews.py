"""App Store Connect and Google Play reviews with star ratings."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from closeloop_ingest.adapters.app_reviews import app_reviews_to_feedback
from closeloop_ingest.errors import InvalidPayload, MalformedBody
from closeloop_shared.contracts.feedback import Channel, RatingType
from tests.ingest.support import FakeProducer, app_store_review, google_play_review

PATH = "/v1/webhooks/app/reviews"
RECEIVED_AT = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


def test_app_store_reviews_map_to_rated_app_feedback() -> None:
    review = app_store_review(review_id="6000000001")
    [item] = app_reviews_to_feedback(orjson.dumps({"data": [review]}), RECEIVED_AT).items
    assert item.channel is Channel.APP
    assert item.external_id == "appstore:6000000001"
    assert item.text == "Login keeps failing since the last update."
    assert item.subject == "Can't log in since the update"
    assert item.rating is not None
    assert (item.rating.type, item.rating.value) == (RatingType.STARS, 1)
    assert item.customer.handle == "frustrated_user_42"
    assert item.occurred_at == datetime(2024, 3, 1, 16, 21, 43, tzinfo=UTC)
    assert item.touchpoint == "app_store"
    assert item.attributes == {"store": "appstore", "territory": "USA"}


def test_a_single_app_store_resource_is_accepted() -> None:
    raw = orjson.dumps({"data": app_store_review(review_id="1")})
    [item] = app_reviews_to_feedback(raw, RECEIVED_AT).items
    assert item.external_id == "appstore:1"


def test_other_resource_types_in_data_are_ignored() -> None:
    response = {"type": "customerReviewResponses", "id": "r1", "attributes": {}}
    raw = orjson.dumps({"data": [app_store_review(), response]})
    result = app_reviews_to_feedback(raw, RECEIVED_AT)
    assert len(result.items) == 1
    assert result.ignored == {"unsupported_type": 1}


def test_google_play_reviews_map_to_rated_app_feedback() -> None:
    review = google_play_review(review_id="gp:AOqpTOE")
    [item] = app_reviews_to_feedback(orjson.dumps({"reviews": [review]}), RECEIVED_AT).items
    assert item.external_id == "googleplay:gp:AOqpTOE"
    assert item.text == "界面很好用，客服也很耐心，点赞！"
    assert item.rating is not None
    assert item.rating.value == 5
    assert item.customer.name == "陈静"
    assert item.language == "zh"
    assert item.occurred_at == datetime.fromtimestamp(1709548200.5, tz=UTC)
    assert item.touchpoint == "google_play"
    assert item.attributes == {"store": "googleplay", "app_version": "5.2.0", "device": "walleye"}


def test_the_same_review_id_in_both_stores_is_two_items() -> None:
    store = app_reviews_to_feedback(
        orjson.dumps({"data": [app_store_review(review_id="42")]}), RECEIVED_AT
    )
    play = app_reviews_to_feedback(
        orjson.dumps({"reviews": [google_play_review(review_id="42")]}), RECEIVED_AT
    )
    assert store.items[0].external_id != play.items[0].external_id


def test_review_without_text_is_ignored() -> None:
    raw = orjson.dumps({"reviews": [google_play_review(text="")]})
    result = app_reviews_to_feedback(raw, RECEIVED_AT)
    assert result.items == []
    assert result.ignored == {"no_text": 1}


def test_rating_out_of_range_names_the_review() -> None:
    raw = orjson.dumps({"data": [app_store_review(), app_store_review(rating=9)]})
    with pytest.raises(InvalidPayload) as raised:
        app_reviews_to_feedback(raw, RECEIVED_AT)
    assert raised.value.extra["errors"][0]["loc"][:3] == ["data", 1, "rating"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"items": []}, id="unknown-format"),
        pytest.param([], id="not-an-object"),
        pytest.param({"reviews": [{"authorName": "no id"}]}, id="missing-review-id"),
        pytest.param({"data": [{"id": "no type"}]}, id="missing-type"),
    ],
)
def test_unrecognised_payloads_are_invalid(body: object) -> None:
    with pytest.raises(InvalidPayload):
        app_reviews_to_feedback(orjson.dumps(body), RECEIVED_AT)


def test_malformed_json_is_a_bad_request() -> None:
    with pytest.raises(MalformedBody):
        app_reviews_to_feedback(b"\xff", RECEIVED_AT)


async def test_reviews_from_both_stores_are_published(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    store = await client.post(PATH, json={"data": [app_store_review(), app_store_review()]})
    play = await client.post(PATH, json={"reviews": [google_play_review()]})
    assert store.status_code == play.status_code == 202
    assert len(store.json()["ids"]) == 2
    assert len(play.json()["ids"]) == 1
    assert [event["data"]["rating"]["type"] for event in producer.events()] == ["stars"] * 3
    assert {event["source"] for event in producer.events()} == {"/closeloop/ingest/app_reviews"}


async def test_a_bad_review_refuses_the_whole_payload(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    response = await client.post(
        PATH, json={"data": [app_store_review(), app_store_review(rating=0)]}
    )
    assert response.status_code == 422
    assert producer.sent == []
