"""``POST /v1/score/batch`` (what ``closeloop rescore`` calls) and the score-only deployment
(``consume_enabled=false``) that serves a new model version without touching the live stream."""

from __future__ import annotations

from tests.sentiment.test_app import EchoScorer, poll, running


async def test_batch_scores_each_item_in_order_with_its_channel_handling() -> None:
    async with running(EchoScorer) as client:
        await poll(lambda: client.post("/v1/score", json={"text": "x"}), lambda r: r.is_success)
        response = await client.post(
            "/v1/score/batch",
            json={
                "items": [
                    {"text": "first", "language": "de"},
                    {
                        "text": "AGENT: happy to help\nCUSTOMER: still broken",
                        "channel": "hotline",
                    },
                    {
                        "text": "ignored when a transcript names the customer's turns",
                        "channel": "hotline",
                        "attributes": {
                            "transcript": [
                                {"role": "agent", "text": "hello"},
                                {"role": "customer", "text": "my bill is wrong"},
                            ]
                        },
                    },
                ]
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["model_version"]) == ("echo-test", "0.0.1")
    # EchoScorer puts the text it was given into `topics`: the stream's text preparation ran.
    assert [r["topics"] for r in body["results"]] == [
        ["first"],
        ["still broken"],
        ["my bill is wrong"],
    ]
    assert body["results"][0]["language"] == "de"


async def test_batch_refuses_an_empty_or_oversized_batch_with_a_json_error() -> None:
    async with running(EchoScorer) as client:
        empty = await client.post("/v1/score/batch", json={"items": []})
        too_many = await client.post("/v1/score/batch", json={"items": [{"text": "a"}] * 501})
    for response in (empty, too_many):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_request"


async def test_a_score_only_deployment_is_ready_without_a_broker() -> None:
    async with running(EchoScorer, consume_enabled=False) as client:
        ready = await poll(lambda: client.get("/readyz"), lambda r: r.status_code == 200)
        assert ready.json()["checks"] == {"models": True}
        assert (await client.get("/healthz")).status_code == 200
        scored = await client.post("/v1/score/batch", json={"items": [{"text": "fine"}]})
        assert scored.status_code == 200
        assert scored.json()["results"][0]["topics"] == ["fine"]
