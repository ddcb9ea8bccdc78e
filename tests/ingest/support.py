"""Test helpers: a fake producer, a running app, and webhook signing done as each provider does.

The signers are written from the providers' documentation, independently of
the code under test, so a mistake in ours (a wrong URL, a wrong field order)
makes the tests fail instead of agreeing with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from closeloop_ingest.app import create_app
from closeloop_ingest.config import IngestSettings
from closeloop_shared.config import KafkaSettings
from closeloop_shared.kafka.producer import BrokerUnavailable, OutgoingMessage

TWILIO_AUTH_TOKEN = "twilio-test-auth-token-0123456789"
MAILGUN_SIGNING_KEY = "key-mailgun-test-signing-key"
POSTMARK_USER = "postmark-hook"
POSTMARK_PASSWORD = "correct horse battery staple"
META_APP_SECRET = "meta-app-secret-for-tests"
META_VERIFY_TOKEN = "meta-verify-token-for-tests"

# What the app sees as its own address inside the cluster (behind the gateway).
INTERNAL_BASE_URL = "http://ingest.internal:8001"
# What providers call: the gateway's public address.
PUBLIC_HOST = "feedback.example.com"
FORWARDED_HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC_HOST}

JSON_HEADERS = {"Content-Type": "application/json"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def ingest_settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "twilio_auth_token": TWILIO_AUTH_TOKEN,
        "mailgun_signing_key": MAILGUN_SIGNING_KEY,
        "postmark_basic_auth_user": POSTMARK_USER,
        "postmark_basic_auth_password": POSTMARK_PASSWORD,
        "meta_app_secret": META_APP_SECRET,
        "meta_verify_token": META_VERIFY_TOKEN,
    }
    values.update(overrides)
    return IngestSettings(**values)


@dataclass
class FakeProducer:
    """Records what would have gone to the broker; ``available=False`` simulates an outage."""

    sent: list[OutgoingMessage] = field(default_factory=list)
    available: bool = True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return self.available

    async def send_many(self, messages: Sequence[OutgoingMessage]) -> None:
        if not self.available:
            raise BrokerUnavailable("fake broker is down")
        self.sent.extend(messages)

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(message.value) for message in self.sent]


@asynccontextmanager
async def running_app(
    settings: IngestSettings,
    producer: FakeProducer | None = None,
    kafka: KafkaSettings | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan, reached in-process at :data:`INTERNAL_BASE_URL`."""
    app = create_app(settings, kafka or KafkaSettings(), producer=producer)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url=INTERNAL_BASE_URL
        ) as client,
    ):
        yield client


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


# -- Twilio: base64(HMAC-SHA1(auth token, URL + each POST key+value, sorted by key)) ----------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    signed = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def form(params: Mapping[str, str]) -> bytes:
    return str(httpx.QueryParams(dict(params))).encode()


def transcription_params(**overrides: str) -> dict[str, str]:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": unique("CA"),
        "RecordingSid": unique("RE"),
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE1",
        "TranscriptionSid": unique("TR"),
        "TranscriptionStatus": "completed",
        "TranscriptionText": "My internet has been down for three days and nobody called back.",
        "TranscriptionUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Transcriptions/TR1",
        "From": "+14155550123",
        "To": "+14155550100",
    }
    params.update(overrides)
    return params


# -- Mailgun: hex HMAC-SHA256(signing key, timestamp + token) ---------------------------------


def mailgun_fields(
    *,
    signing_key: str = MAILGUN_SIGNING_KEY,
    timestamp: int | None = None,
    token: str | None = None,
    message_id: str | None = None,
    **overrides: str,
) -> dict[str, str]:
    signed_at = str(int(time.time()) if timestamp is None else timestamp)
    nonce = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(
        signing_key.encode(), (signed_at + nonce).encode(), hashlib.sha256
    ).hexdigest()
    fields = {
        "timestamp": signed_at,
        "token": nonce,
        "signature": signature,
        "sender": "dana.reyes@example.com",
        "from": "Dana Reyes <dana.reyes@example.com>",
        "recipient": "support@closeloop.example",
        "subject": "Charged twice for order #48213",
        "body-plain": "Hello,\n\nI was charged twice.\n\nOn Mon, Support wrote:\n> Thanks",
        "stripped-text": "I was charged twice for order #48213 and the refund never arrived.",
        "message-headers": orjson.dumps(
            [
                ["Received", "by mx.example.com"],
                ["Message-Id", message_id or f"<{uuid.uuid4().hex}@mail.example.com>"],
                ["Date", "Mon, 04 Mar 2024 09:30:00 +0100"],
            ]
        ).decode(),
    }
    fields.update(overrides)
    return fields


# -- Postmark: HTTP basic auth carried in the webhook URL -------------------------------------


def basic_auth(username: str = POSTMARK_USER, password: str = POSTMARK_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def postmark_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "From": "wang.fang@example.cn",
        "FromName": "王芳",
        "FromFull": {"Email": "wang.fang@example.cn", "Name": "王芳", "MailboxHash": ""},
        "To": "support@closeloop.example",
        "OriginalRecipient": "support@closeloop.example",
        "Subject": "退款两周还没到账",
        "MessageID": str(uuid.uuid4()),
        "Date": "Tue, 05 Mar 2024 10:00:00 +0800",
        "TextBody": "你好，我两周前申请了退款，到现在还没有到账。\n\n> 之前的邮件",
        "HtmlBody": "<p>你好</p>",
        "StrippedTextReply": "你好，我两周前申请了退款，到现在还没有到账。",
        "Headers": [{"Name": "X-Spam-Status", "Value": "No"}],
        "Attachments": [],
    }
    body.update(overrides)
    return body


# -- Meta: "sha256=" + hex HMAC-SHA256(app secret, raw body) ----------------------------------


def meta_headers(raw_body: bytes, app_secret: str = META_APP_SECRET) -> dict[str, str]:
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return {**JSON_HEADERS, "X-Hub-Signature-256": f"sha256={digest}"}


def page_comment(comment_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "item": "comment",
        "verb": "add",
        "comment_id": comment_id or unique("444444_"),
        "post_id": "1234567890_987654321",
        "parent_id": "1234567890_987654321",
        "message": "Your app crashed at checkout and I lost my cart.",
        "from": {"id": "5550001", "name": "Chris Miller"},
        "created_time": 1709548200,
    }
    value.update(overrides)
    return {"field": "feed", "value": value}


def instagram_comment(comment_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "id": comment_id or str(uuid.uuid4().int % 10**17),
        "text": "快递太慢了，等了一个星期还没到 😡",
        "from": {"id": "9988776655", "username": "xiaoming_li"},
        "media": {"id": "17900000000000000", "media_product_type": "FEED"},
    }
    value.update(overrides)
    return {"field": "comments", "value": value}


def meta_body(obj: str, changes: list[dict[str, Any]], entry_id: str = "1234567890") -> bytes:
    return orjson.dumps(
        {"object": obj, "entry": [{"id": entry_id, "time": 1709548260, "changes": changes}]}
    )


# -- Contact Lens and app reviews --------------------------------------------------------------


def contact_lens(contact_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Version": "1.1.0",
        "AccountId": "123456789012",
        "Channel": "VOICE",
        "LanguageCode": "en-US",
        "CustomerMetadata": {"ContactId": contact_id or str(uuid.uuid4()), "InstanceId": "inst-1"},
        "Participants": [
            {"ParticipantId": "A1", "ParticipantRole": "AGENT"},
            {"ParticipantId": "C1", "ParticipantRole": "CUSTOMER"},
        ],
        "Transcript": [
            {
                "Id": "t1",
                "ParticipantId": "A1",
                "Content": "Thanks for calling, how can I help?",
                "BeginOffsetMillis": 0,
                "EndOffsetMillis": 2100,
                "Sentiment": "NEUTRAL",
            },
            {
                "Id": "t2",
                "ParticipantId": "C1",
                "Content": "My  router keeps dropping\nthe connection.",
                "BeginOffsetMillis": 2300,
                "EndOffsetMillis": 6100,
                "Sentiment": "NEGATIVE",
            },
        ],
    }
    body.update(overrides)
    return body


def app_store_review(review_id: str | None = None, **attributes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "rating": 1,
        "title": "Can't log in since the update",
        "body": "Login keeps failing since the last update.",
        "reviewerNickname": "frustrated_user_42",
        "createdDate": "2024-03-01T08:21:43-08:00",
        "territory": "USA",
    }
    values.update(attributes)
    return {"type": "customerReviews", "id": review_id or str(uuid.uuid4()), "attributes": values}


def google_play_review(review_id: str | None = None, **comment: Any) -> dict[str, Any]:
    user_comment: dict[str, Any] = {
        "text": "界面很好用，客服也很耐心，点赞！",
        "lastModified": {"seconds": "1709548200", "nanos": 500000000},
        "starRating": 5,
        "reviewerLanguage": "zh",
        "appVersionName": "5.2.0",
        "device": "walleye",
    }
    user_comment.update(comment)
    return {
        "reviewId": review_id or f"gp:{uuid.uuid4().hex}",
        "authorName": "陈静",
        "comments": [
            {"userComment": user_comment},
            {"developerComment": {"text": "Thank you!", "lastModified": {"seconds": "1"}}},
        ],
    }


def feedback_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "channel": "app",
        "external_id": unique("survey-"),
        "text": "Love the new delivery tracking!",
        "occurred_at": "2024-03-04T09:30:00+00:00",
        "customer": {"id": "cust-1", "tier": "gold"},
        "rating": {"type": "nps", "value": 10},
        "touchpoint": "mobile_app",
        "journey_stage": "usage",
        "language": "en",
    }
    item.update(overrides)
    return item
