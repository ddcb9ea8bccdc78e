"""``make demo``: post a realistic mix of feedback from all four channels through the gateway.

Each provider's webhook is built and signed exactly as that provider would
(Twilio, Mailgun, Postmark, Meta), in English and Chinese; then the demo waits
for the alerts to reach the local demo owner and prints them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from twilio.request_validator import RequestValidator

from closeloop_devstack.stack import ProviderSecrets


@dataclass(frozen=True)
class DemoTarget:
    gateway_url: str
    demo_owner_url: str
    alerts_url: str
    admin_key: str
    secrets: ProviderSecrets


@dataclass(frozen=True)
class DemoRequest:
    label: str
    method: str
    path: str
    content: bytes
    headers: dict[str, str]
    expect_negative: bool


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json(body: object) -> bytes:
    return orjson.dumps(body)


def twilio_transcription(target: DemoTarget, run: str) -> DemoRequest:
    path = "/v1/webhooks/twilio/transcription"
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": "CA" + uuid.uuid4().hex,
        "RecordingSid": "RE" + uuid.uuid4().hex,
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE",
        "TranscriptionSid": f"TR{run}{uuid.uuid4().hex[:16]}",
        "TranscriptionStatus": "completed",
        "TranscriptionText": (
            "I have been on hold for forty minutes and my internet is still down. "
            "This is the third time I am calling about this. If nobody fixes it today "
            "I want to cancel my contract."
        ),
        "TranscriptionUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Transcriptions/TR",
        "From": "+14155550123",
        "To": "+14155550100",
        "CallStatus": "completed",
    }
    signature = RequestValidator(target.secrets.twilio_auth_token).compute_signature(
        target.gateway_url + path, params
    )
    return DemoRequest(
        "hotline / Twilio transcription (en)",
        "POST",
        path,
        httpx.QueryParams(params).__str__().encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        True,
    )


def hotline_transcript(target: DemoTarget, run: str) -> DemoRequest:
    contact = f"{run}-{uuid.uuid4()}"
    body = {
        "Version": "1.1.0",
        "AccountId": "123456789012",
        "Channel": "VOICE",
        "LanguageCode": "zh-CN",
        "CustomerMetadata": {"ContactId": contact, "InstanceId": "demo-instance"},
        "Participants": [
            {"ParticipantId": "AGENT", "ParticipantRole": "AGENT"},
            {"ParticipantId": "CUSTOMER", "ParticipantRole": "CUSTOMER"},
        ],
        "Transcript": [
            {
                "Id": "t1",
                "ParticipantId": "AGENT",
                "Content": "您好，这里是客服中心，请问有什么可以帮您？",
                "BeginOffsetMillis": 0,
                "EndOffsetMillis": 3200,
            },
            {
                "Id": "t2",
                "ParticipantId": "CUSTOMER",
                "Content": "我家的宽带已经断了三天了，每次打电话都说会处理，到现在还没有人来修！",
                "BeginOffsetMillis": 3300,
                "EndOffsetMillis": 9100,
            },
            {
                "Id": "t3",
                "ParticipantId": "AGENT",
                "Content": "非常抱歉给您带来不便，我马上为您加急处理。",
                "BeginOffsetMillis": 9200,
                "EndOffsetMillis": 12000,
            },
            {
                "Id": "t4",
                "ParticipantId": "CUSTOMER",
                "Content": "你们的服务太差了，再不解决我就投诉到工信部，然后换运营商。",
                "BeginOffsetMillis": 12100,
                "EndOffsetMillis": 17000,
            },
        ],
    }
    return DemoRequest(
        "hotline / contact-center transcript (zh)",
        "POST",
        "/v1/webhooks/hotline/transcript",
        _json(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {target.admin_key}"},
        True,
    )


def mailgun_email(target: DemoTarget, run: str) -> DemoRequest:
    timestamp = str(int(time.time()))
    token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(
        target.secrets.mailgun_signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    message_id = f"<{run}.{uuid.uuid4().hex}@mail.example.com>"
    form = {
        "timestamp": timestamp,
        "token": token,
        "signature": signature,
        "sender": "dana.reyes@example.com",
        "from": "Dana Reyes <dana.reyes@example.com>",
        "recipient": "support@closeloop.example",
        "subject": "Charged twice for order #48213",
        "body-plain": (
            "Hello,\n\nI was charged twice for order #48213 and the refund I was promised last "
            "week never arrived. This is really frustrating.\n\nDana\n\n"
            "On Mon, Support wrote:\n> Thanks for reaching out"
        ),
        "stripped-text": (
            "I was charged twice for order #48213 and the refund I was promised last week "
            "never arrived. This is really frustrating."
        ),
        "message-headers": orjson.dumps([["Message-Id", message_id]]).decode(),
    }
    return DemoRequest(
        "email / Mailgun route (en)",
        "POST",
        "/v1/webhooks/mailgun",
        str(httpx.QueryParams(form)).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
        True,
    )


def postmark_email(target: DemoTarget, run: str) -> DemoRequest:
    body = {
        "From": "wang.fang@example.cn",
        "FromName": "王芳",
        "FromFull": {"Email": "wang.fang@example.cn", "Name": "王芳", "MailboxHash": ""},
        "To": "support@closeloop.example",
        "Subject": "退款两周还没到账",
        "MessageID": f"{run}-{uuid.uuid4()}",
        "Date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
        "TextBody": "你好，我两周前申请了退款，到现在还没有到账，客服邮件也一直没有回复，非常失望。",
        "StrippedTextReply": "",
        "Headers": [],
        "Attachments": [],
    }
    # Postmark calls https://user:password@host/path, i.e. HTTP basic auth.
    token = base64.b64encode(
        f"{target.secrets.postmark_user}:{target.secrets.postmark_password}".encode()
    ).decode()
    authorization = f"Basic {token}"
    return DemoRequest(
        "email / Postmark inbound (zh)",
        "POST",
        "/v1/webhooks/postmark",
        _json(body),
        {"Content-Type": "application/json", "Authorization": authorization},
        True,
    )


def _meta(target: DemoTarget, label: str, body: dict[str, Any], negative: bool) -> DemoRequest:
    raw = _json(body)
    signature = hmac.new(target.secrets.meta_app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return DemoRequest(
        label,
        "POST",
        "/v1/webhooks/meta",
        raw,
        {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"},
        negative,
    )


def meta_page_comment(target: DemoTarget, run: str) -> DemoRequest:
    body = {
        "object": "page",
        "entry": [
            {
                "id": "1234567890",
                "time": int(time.time()),
                "changes": [
                    {
                        "field": "feed",
                        "value": {
                            "item": "comment",
                            "verb": "add",
                            "comment_id": f"{run}_{uuid.uuid4().hex[:12]}",
                            "post_id": "1234567890_987654321",
                            "message": "Your app crashed AGAIN at checkout and I lost my whole cart. "
                            "Terrible experience, I'm done with this store. #fail",
                            "from": {"id": "5550001", "name": "Chris Miller"},
                            "created_time": int(time.time()),
                        },
                    }
                ],
            }
        ],
    }
    return _meta(target, "social / Facebook Page comment (en)", body, True)


def instagram_comment(target: DemoTarget, run: str) -> DemoRequest:
    body = {
        "object": "instagram",
        "entry": [
            {
                "id": "17841400000000000",
                "time": int(time.time()),
                "changes": [
                    {
                        "field": "comments",
                        "value": {
                            "id": f"{run}{uuid.uuid4().int % 10**12}",
                            "text": "快递太慢了，等了一个星期还没到，客服电话也打不通 😡",
                            "from": {"id": "9988776655", "username": "xiaoming_li"},
                            "media": {"id": "17900000000000000"},
                        },
                    }
                ],
            }
        ],
    }
    return _meta(target, "social / Instagram comment (zh)", body, True)


def app_store_review(target: DemoTarget, run: str) -> DemoRequest:
    body = {
        "data": [
            {
                "type": "customerReviews",
                "id": f"{run}-{uuid.uuid4()}",
                "attributes": {
                    "rating": 1,
                    "title": "Can't log in since the update",
                    "body": "Login keeps failing since the last update. I reset my password "
                    "twice and it still says invalid. Useless app now.",
                    "reviewerNickname": "frustrated_user_42",
                    "createdDate": _now_iso(),
                    "territory": "USA",
                },
            }
        ]
    }
    return DemoRequest(
        "app / App Store review, 1 star (en)",
        "POST",
        "/v1/webhooks/app/reviews",
        _json(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {target.admin_key}"},
        True,
    )


def google_play_review(target: DemoTarget, run: str) -> DemoRequest:
    body = {
        "reviews": [
            {
                "reviewId": f"gp:{run}:{uuid.uuid4().hex}",
                "authorName": "陈静",
                "comments": [
                    {
                        "userComment": {
                            "text": "界面很好用，客服也很耐心，问题很快就解决了，点赞！",
                            "lastModified": {"seconds": str(int(time.time())), "nanos": 0},
                            "starRating": 5,
                            "reviewerLanguage": "zh",
                            "appVersionName": "5.2.0",
                        }
                    }
                ],
            }
        ]
    }
    return DemoRequest(
        "app / Google Play review, 5 stars (zh)",
        "POST",
        "/v1/webhooks/app/reviews",
        _json(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {target.admin_key}"},
        False,
    )


def in_app_survey(target: DemoTarget, run: str, nps: int, text: str, lang: str) -> DemoRequest:
    body = {
        "channel": "app",
        "external_id": f"survey-{run}-{uuid.uuid4()}",
        "text": text,
        "occurred_at": _now_iso(),
        "customer": {"id": f"cust-{nps}", "tier": "gold" if nps > 8 else "standard"},
        "rating": {"type": "nps", "value": nps},
        "touchpoint": "mobile_app",
        "journey_stage": "usage",
        "language": lang,
    }
    return DemoRequest(
        f"app / in-app NPS {nps} ({lang})",
        "POST",
        "/v1/feedback",
        _json(body),
        {"Content-Type": "application/json", "Authorization": f"Bearer {target.admin_key}"},
        nps <= 6,
    )


def all_requests(target: DemoTarget) -> list[DemoRequest]:
    run = uuid.uuid4().hex[:8]
    return [
        twilio_transcription(target, run),
        hotline_transcript(target, run),
        mailgun_email(target, run),
        postmark_email(target, run),
        meta_page_comment(target, run),
        instagram_comment(target, run),
        app_store_review(target, run),
        google_play_review(target, run),
        in_app_survey(target, run, 10, "Love the new delivery tracking, works perfectly!", "en"),
        in_app_survey(
            target, run, 3, "更新以后每次付款都失败，已经试了五次了，太让人失望了。", "zh"
        ),
    ]


async def run_demo(target: DemoTarget, wait_s: float = 30.0) -> int:
    requests = all_requests(target)
    expected_alerts = sum(1 for r in requests if r.expect_negative)
    async with httpx.AsyncClient(base_url=target.gateway_url, timeout=10) as client:
        before = await _received_count(client, target)
        print(f"Posting {len(requests)} feedback items through {target.gateway_url} ...\n")
        for request in requests:
            response = await client.request(
                request.method, request.path, content=request.content, headers=request.headers
            )
            print(f"  {response.status_code}  {request.label:42s} {response.text[:90]}")
        print(f"\nWaiting up to {wait_s:.0f}s for {expected_alerts} alerts at the demo owner ...")
        deadline = time.monotonic() + wait_s
        received: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            received = (await client.get(target.demo_owner_url + "/received")).json()[before:]
            if len(received) >= expected_alerts:
                break
            await asyncio.sleep(0.5)
        print(f"\nAlerts received by the demo owner ({len(received)}):")
        for delivery in received:
            data = delivery["payload"]["data"]
            feedback, alert, sentiment = data["feedback"], data["alert"], data["sentiment"]
            text = " ".join(feedback["text"].split())
            print(
                f"  [{alert['priority']:>6}] {alert['owner']:<13} {feedback['channel']:<8}"
                f" {sentiment['label']:<9} {sentiment['score']:+.2f}  {text[:60]}"
            )
        if received:
            await _show_resolution_with_reply(client, target, received)
            await _show_escalation(client, target, received, before)
        gateway_metrics = (await client.get(target.gateway_url + "/metrics")).text
        alerts_metrics = (await client.get(target.alerts_url + "/metrics")).text
        print(f"\nFrom /metrics ({target.gateway_url}/metrics, {target.alerts_url}/metrics):")
        print(f"  gateway requests             {_sum_metric(gateway_metrics)}")
        for channel in ("hotline", "email", "social", "app"):
            raised = _sum_metric(alerts_metrics, "closeloop_alerts_raised_total", channel)
            print(f"  alerts raised, {channel:<8}      {raised}")
        delivered = _sum_metric(
            alerts_metrics, "closeloop_alerts_notifications_total", 'outcome="delivered"'
        )
        print(f"  notifications delivered      {delivered}")
    return 0 if len(received) >= expected_alerts else 1


async def _show_resolution_with_reply(
    client: httpx.AsyncClient, target: DemoTarget, received: list[dict[str, Any]]
) -> None:
    """Support acknowledges the email complaint, resolves it and replies to the customer."""
    auth = {"Authorization": f"Bearer {target.admin_key}"}
    email = next(
        (d for d in received if d["payload"]["data"]["feedback"]["channel"] == "email"), None
    )
    if email is None:
        return
    alert_id = email["payload"]["data"]["alert"]["id"]
    print("\nClosing the loop on the email complaint:")
    acknowledged = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=auth)
    print(f"  acknowledge  {acknowledged.status_code}  status={acknowledged.json().get('status')}")
    resolved = await client.post(
        f"/v1/alerts/{alert_id}/resolve",
        headers=auth,
        json={
            "note": "Duplicate charge confirmed and refunded; refund ETA 3 working days.",
            "root_cause": "billing-error",
            "customer_reply": "Sorry about the double charge: we have refunded it today, you "
            "will see it on your statement within 3 working days.",
        },
    )
    body = resolved.json()
    print(
        f"  resolve      {resolved.status_code}  status={body.get('status')} "
        f"root_cause={body.get('root_cause')}"
    )
    reply: dict[str, Any] = {}
    for _ in range(20):
        alert = (await client.get(f"/v1/alerts/{alert_id}", headers=auth)).json()
        reply = alert.get("customer_reply") or {}
        if reply.get("status") not in (None, "pending"):
            break
        await asyncio.sleep(0.5)
    print(
        f"  customer reply to the original channel: status={reply.get('status')} "
        f"(event on closeloop.customer.reply.requested.v1 for the email system to send)"
    )


async def _show_escalation(
    client: httpx.AsyncClient, target: DemoTarget, received: list[dict[str, Any]], before: int
) -> None:
    """Nobody acknowledges the hotline complaint: its SLA breaches and it escalates."""
    auth = {"Authorization": f"Bearer {target.admin_key}"}
    hotline = next(
        (
            d
            for d in received
            if d["payload"]["data"]["alert"]["priority"] in {"high", "critical"}
            and d["payload"]["data"]["feedback"]["channel"] == "hotline"
        ),
        None,
    )
    if hotline is None:
        return
    alert_id = hotline["payload"]["data"]["alert"]["id"]
    print("\nLeaving the hotline complaint unacknowledged past its SLA (20 s in this demo) ...")
    deadline = time.monotonic() + 60
    alert: dict[str, Any] = {}
    while time.monotonic() < deadline:
        alert = (await client.get(f"/v1/alerts/{alert_id}", headers=auth)).json()
        if alert.get("escalation_level", 0) >= 1:
            break
        await asyncio.sleep(1)
    if alert.get("escalation_level", 0) < 1:
        print("  no escalation within 60 s (is the SLA in the routing file?)")
        return
    print(
        f"  escalated: level {alert['escalation_level']} to {alert.get('escalated_to')} "
        f"at {alert.get('escalated_at')}"
    )
    for _ in range(20):
        deliveries = (await client.get(target.demo_owner_url + "/received")).json()[before:]
        lead = [d for d in deliveries if d["payload"].get("type") == "alert.escalated"]
        if lead:
            print(f"  {lead[0]['path']} received alert.escalated (signed, verified)")
            return
        await asyncio.sleep(0.5)


async def _received_count(client: httpx.AsyncClient, target: DemoTarget) -> int:
    return len((await client.get(target.demo_owner_url + "/received")).json())


def _sum_metric(
    exposition: str, name: str = "closeloop_http_requests_total", label: str = ""
) -> int:
    """Sum a counter's samples, optionally only those whose labels contain ``label``."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name + "{") and label in line.split("}", 1)[0]:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
