"""Helpers for the reliability tests: a recording owner, a stack on free ports, the load, counting.

Nothing here imports a service package: the tests drive the system from the
outside (HTTP through the gateway, signals to processes) and count in
PostgreSQL and at the owner's endpoint, like an operator would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvicorn
from standardwebhooks import Webhook
from twilio.request_validator import RequestValidator

from closeloop_devstack import infra
from closeloop_devstack.stack import Ports, ProviderSecrets, Stack, StackConfig
from closeloop_shared.contracts.feedback import Channel, feedback_id

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"

CHANNELS = ("hotline", "email", "social", "app")
OWNER_SECRETS = {
    "hotline-team": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "email-team": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "social-team": "whsec_dGVzdC1jeC10ZWFtLXNlY3JldC0xMjM0NTY3OA==",
    "app-team": "whsec_YXBwLXRlYW0tc2VjcmV0LWZvci10ZXN0cy0xMjM0",
}
CHANNEL_OWNER = {
    "hotline": "hotline-team",
    "email": "email-team",
    "social": "social-team",
    "app": "app-team",
}

# Texts the lexicon scorer labels the same way every time (checked offline against
# closeloop-lexicon 1.0.0, with and without a subject and a matching star rating).
NEGATIVE_TEXTS = (
    "The app crashed again at checkout and I lost my order. Terrible, I want my money back.",
    "I was charged twice and the refund never arrived. This is awful and frustrating.",
    "Waited on hold for an hour, nobody called back. Horrible service, I am very angry.",
    "The delivery never arrived and support is useless. Worst experience ever.",
    "My internet is still not working after three days. Awful, I want to cancel my subscription.",
    "我家的宽带已经断了三天了，服务太差了，非常失望。",
)
POSITIVE_TEXTS = (
    "Great service, the agent was friendly and solved my problem quickly. Thank you!",
    "Love the new app, checkout is fast and seamless. Excellent work!",
    "Delivery arrived early and the product is perfect. Very happy, thanks!",
    "Wonderful support team, really helpful and kind. Highly recommend.",
    "界面很好用，客服也很耐心，问题很快就解决了，点赞！",
)

# Fast retries so that outages and crashes resolve within a test, never Svix's hours.
FAST_ALERTS_ENV = {
    "CLOSELOOP_ALERTS_DELIVERY_SCHEDULE_S": "0,1,1,2,2,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3",
    "CLOSELOOP_ALERTS_DELIVERY_JITTER": "0",
    "CLOSELOOP_ALERTS_DELIVERY_TIMEOUT_S": "3",
    "CLOSELOOP_ALERTS_DELIVERY_LEASE_S": "5",
    "CLOSELOOP_ALERTS_DELIVERY_POLL_INTERVAL_S": "0.5",
    "CLOSELOOP_ALERTS_GAUGE_REFRESH_INTERVAL_S": "2",
    # The gateway's per-key bucket is tested on its own; here it would only slow the load.
    "CLOSELOOP_GATEWAY_RATE_LIMIT_PER_S": "0",
    # The owners' endpoint is this test's receiver on loopback, which the SSRF guard refuses.
    "CLOSELOOP_OUTBOUND_ALLOWLIST": "127.0.0.1",
}


# -- the owner's webhook endpoint ------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    owner: str
    event: str
    webhook_id: str
    alert_id: str
    feedback_id: str
    verified: bool
    at: float


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class OwnerReceiver:
    """The owners' webhook endpoint: verifies and records every delivery.

    Runs on its own thread and event loop, so a busy test loop cannot slow it down.
    ``status`` other than 2xx makes it refuse deliveries (the owner's endpoint is down).
    """

    port: int = field(default_factory=infra.free_port)
    status: int = 200
    deliveries: list[Delivery] = field(default_factory=list)
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _QuietServer | None = None
    _thread: threading.Thread | None = None

    def url(self, owner: str) -> str:
        return f"http://127.0.0.1:{self.port}/owners/{owner}"

    def start(self) -> None:
        self._server = _QuietServer(
            uvicorn.Config(
                self._asgi,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                interface="asgi3",
                backlog=2048,
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="owner", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("owner receiver did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        status = self.status
        if 200 <= status < 300:
            self._record(scope, body)
        else:
            with self._lock:
                self.refused += 1
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def _record(self, scope: Any, body: bytes) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        owner = scope["path"].rsplit("/", 1)[-1]
        verified = True
        try:
            Webhook(OWNER_SECRETS[owner]).verify(body, headers)
        except Exception:
            verified = False
        payload = orjson.loads(body)
        data = payload["data"]
        with self._lock:
            self.deliveries.append(
                Delivery(
                    owner=owner,
                    event=str(payload.get("type")),
                    webhook_id=headers.get("webhook-id", ""),
                    alert_id=data["alert"]["id"],
                    feedback_id=data["feedback"]["id"],
                    verified=verified,
                    at=time.monotonic(),
                )
            )


def routing_file(path: Path, receiver: OwnerReceiver) -> Path:
    owners = "\n".join(
        f"""  - id: {owner}
    notify:
      - type: webhook
        url: {receiver.url(owner)}
        secret: {secret}"""
        for owner, secret in OWNER_SECRETS.items()
    )
    rules = "\n".join(
        f"""  - id: {channel}-negative
    when: {{channel: {channel}, sentiment: negative}}
    owner: {owner}"""
        for channel, owner in CHANNEL_OWNER.items()
    )
    path.write_text(f"owners:\n{owners}\nrules:\n{rules}\ndefault_owner: app-team\n")
    return path


def _prepare(state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # the embedded PostgreSQL's user must reach its data below


@contextlib.asynccontextmanager
async def running_stack(
    state: Path,
    database_server_url: str,
    receiver: OwnerReceiver,
    extra_env: Mapping[str, str] | None = None,
    services: tuple[str, ...] = ("ingest", "sentiment", "alerts", "gateway"),
) -> AsyncIterator[Stack]:
    """Broker, a fresh database on ``database_server_url``'s server, and the services."""
    _prepare(state)
    ports = Ports.free()
    config = StackConfig(
        state_dir=state,
        routing_file=routing_file(state / "routing.yaml", receiver),
        ports=ports,
        database_url=infra.with_database(database_server_url, f"closeloop_rel_{ports.gateway}"),
        start_demo_owner=False,
        extra_env={**FAST_ALERTS_ENV, **(extra_env or {})},
    )
    stack = Stack(config)
    try:
        await stack.start_infrastructure()
        for service in services:
            stack.start_service(service)
        await stack.wait_ready(120, services)
        yield stack
    finally:
        stack.stop()
        with contextlib.suppress(Exception):
            await infra.drop_database(stack.database_url)


# -- the load --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    id: str
    channel: str
    negative: bool


@dataclass
class Request:
    """One HTTP request a provider or client sends, retried with the same bytes until a 2xx."""

    label: str
    path: str
    items: list[Item]
    build: Callable[[], tuple[bytes, dict[str, str]]]
    built: tuple[bytes, dict[str, str]] | None = None
    attempts: int = 0
    status: int | None = None
    accepted_ids: list[str] = field(default_factory=list)

    def payload(self) -> tuple[bytes, dict[str, str]]:
        # Built on first send (Mailgun signs a timestamp); a retry resends the same bytes.
        if self.built is None:
            self.built = self.build()
        return self.built


def _text(negative: bool, n: int) -> str:
    texts = NEGATIVE_TEXTS if negative else POSITIVE_TEXTS
    return texts[n % len(texts)]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _fid(channel: str, external_id: str) -> str:
    return str(feedback_id(Channel(channel), external_id))


@dataclass
class LoadPlan:
    """The whole load, built up front: canonical batches and singles, and every provider."""

    gateway_url: str
    api_key: str
    secrets: ProviderSecrets
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    requests: list[Request] = field(default_factory=list)
    _n: int = 0

    def _next_negative(self) -> bool:
        # A fixed share: 3 in every 10 items are negative.
        negative = self._n % 10 < 3
        self._n += 1
        return negative

    @property
    def items(self) -> list[Item]:
        return [item for request in self.requests for item in request.items]

    def _json_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}

    def canonical_item(self, channel: str) -> tuple[dict[str, Any], Item]:
        negative = self._next_negative()
        external_id = f"{self.run}-{self._n}"
        body: dict[str, Any] = {
            "channel": channel,
            "external_id": external_id,
            "text": _text(negative, self._n),
            "occurred_at": _now_iso(),
            "customer": {"id": f"cust-{self._n % 997}"},
        }
        if channel == "app":
            body["rating"] = {"type": "stars", "value": 1 if negative else 5}
        return body, Item(_fid(channel, external_id), channel, negative)

    def add_batch(self, size: int) -> None:
        pairs = [self.canonical_item(CHANNELS[i % 4]) for i in range(size)]
        content = orjson.dumps({"items": [body for body, _ in pairs]})
        headers = self._json_headers()
        self.requests.append(
            Request(
                f"batch[{size}]",
                "/v1/feedback/batch",
                [item for _, item in pairs],
                lambda: (content, headers),
            )
        )

    def add_single(self, channel: str) -> None:
        body, item = self.canonical_item(channel)
        content, headers = orjson.dumps(body), self._json_headers()
        self.requests.append(Request("single", "/v1/feedback", [item], lambda: (content, headers)))

    def add_twilio(self) -> None:
        negative = self._next_negative()
        sid = f"TR{self.run}{self._n:08d}"
        params = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": f"CA{self.run}{self._n}",
            "RecordingSid": f"RE{self.run}{self._n}",
            "TranscriptionSid": sid,
            "TranscriptionStatus": "completed",
            "TranscriptionText": _text(negative, self._n),
            "From": "+14155550123",
            "To": "+14155550100",
        }
        path = "/v1/webhooks/twilio/transcription"
        signature = RequestValidator(self.secrets.twilio_auth_token).compute_signature(
            self.gateway_url + path, params
        )
        content = str(httpx.QueryParams(params)).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        self.requests.append(
            Request(
                "twilio",
                path,
                [Item(_fid("hotline", sid), "hotline", negative)],
                lambda: (content, headers),
            )
        )

    def add_hotline_transcript(self) -> None:
        negative = self._next_negative()
        contact = f"contact-{self.run}-{self._n}"
        body = {
            "Version": "1.1.0",
            "CustomerMetadata": {"ContactId": contact, "InstanceId": "rel"},
            "Participants": [
                {"ParticipantId": "A", "ParticipantRole": "AGENT"},
                {"ParticipantId": "C", "ParticipantRole": "CUSTOMER"},
            ],
            "Transcript": [
                {
                    "Id": "t1",
                    "ParticipantId": "A",
                    "Content": "Hello, how can I help you today?",
                    "BeginOffsetMillis": 0,
                    "EndOffsetMillis": 1000,
                },
                {
                    "Id": "t2",
                    "ParticipantId": "C",
                    "Content": _text(negative, self._n),
                    "BeginOffsetMillis": 1100,
                    "EndOffsetMillis": 5000,
                },
            ],
        }
        content, headers = orjson.dumps(body), self._json_headers()
        self.requests.append(
            Request(
                "hotline",
                "/v1/webhooks/hotline/transcript",
                [Item(_fid("hotline", contact), "hotline", negative)],
                lambda: (content, headers),
            )
        )

    def add_mailgun(self) -> None:
        negative = self._next_negative()
        message_id = f"<{self.run}.{self._n}@mail.example.com>"
        text = _text(negative, self._n)
        key = self.secrets.mailgun_signing_key

        def build() -> tuple[bytes, dict[str, str]]:
            timestamp = str(int(time.time()))
            token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
            signature = hmac.new(
                key.encode(), (timestamp + token).encode(), hashlib.sha256
            ).hexdigest()
            form = {
                "timestamp": timestamp,
                "token": token,
                "signature": signature,
                "from": "Dana Reyes <dana@example.com>",
                "recipient": "support@closeloop.example",
                "body-plain": text,
                "stripped-text": text,
                "message-headers": orjson.dumps([["Message-Id", message_id]]).decode(),
            }
            return str(httpx.QueryParams(form)).encode(), {
                "Content-Type": "application/x-www-form-urlencoded"
            }

        self.requests.append(
            Request(
                "mailgun",
                "/v1/webhooks/mailgun",
                [Item(_fid("email", message_id), "email", negative)],
                build,
            )
        )

    def add_postmark(self) -> None:
        negative = self._next_negative()
        message_id = f"pm-{self.run}-{self._n}"
        body = {
            "From": "wang@example.cn",
            "FromName": "Wang",
            "To": "support@closeloop.example",
            "MessageID": message_id,
            "Date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "TextBody": _text(negative, self._n),
            "Headers": [],
            "Attachments": [],
        }
        token = base64.b64encode(
            f"{self.secrets.postmark_user}:{self.secrets.postmark_password}".encode()
        ).decode()
        content = orjson.dumps(body)
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}
        self.requests.append(
            Request(
                "postmark",
                "/v1/webhooks/postmark",
                [Item(_fid("email", message_id), "email", negative)],
                lambda: (content, headers),
            )
        )

    def add_meta(self, changes: int = 3) -> None:
        items: list[Item] = []
        entry_changes = []
        for _ in range(changes):
            negative = self._next_negative()
            comment_id = f"{self.run}_{self._n}"
            entry_changes.append(
                {
                    "field": "feed",
                    "value": {
                        "item": "comment",
                        "verb": "add",
                        "comment_id": comment_id,
                        "post_id": "1234567890_987654321",
                        "message": _text(negative, self._n),
                        "from": {"id": "5550001", "name": "Chris"},
                        "created_time": int(time.time()),
                    },
                }
            )
            items.append(Item(_fid("social", comment_id), "social", negative))
        raw = orjson.dumps(
            {
                "object": "page",
                "entry": [{"id": "1234567890", "time": int(time.time()), "changes": entry_changes}],
            }
        )
        signature = hmac.new(self.secrets.meta_app_secret.encode(), raw, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature.hexdigest()}",
        }
        self.requests.append(Request("meta", "/v1/webhooks/meta", items, lambda: (raw, headers)))

    def add_app_reviews(self, reviews: int = 4) -> None:
        items: list[Item] = []
        apple: list[dict[str, Any]] = []
        google: list[dict[str, Any]] = []
        for i in range(reviews):
            negative = self._next_negative()
            review_id = f"{self.run}-{self._n}"
            if i % 2 == 0:
                apple.append(
                    {
                        "type": "customerReviews",
                        "id": review_id,
                        "attributes": {
                            "rating": 1 if negative else 5,
                            "body": _text(negative, self._n),
                            "reviewerNickname": "someone",
                            "createdDate": _now_iso(),
                            "territory": "USA",
                        },
                    }
                )
                items.append(Item(_fid("app", f"appstore:{review_id}"), "app", negative))
            else:
                google.append(
                    {
                        "reviewId": review_id,
                        "authorName": "someone",
                        "comments": [
                            {
                                "userComment": {
                                    "text": _text(negative, self._n),
                                    "lastModified": {"seconds": str(int(time.time())), "nanos": 0},
                                    "starRating": 1 if negative else 5,
                                }
                            }
                        ],
                    }
                )
                items.append(Item(_fid("app", f"googleplay:{review_id}"), "app", negative))
        headers = self._json_headers()
        apple_raw, google_raw = orjson.dumps({"data": apple}), orjson.dumps({"reviews": google})
        apple_items = [
            item for item in items if item.id in {_fid("app", f"appstore:{r['id']}") for r in apple}
        ]
        google_items = [item for item in items if item not in apple_items]
        self.requests.append(
            Request(
                "appstore", "/v1/webhooks/app/reviews", apple_items, lambda: (apple_raw, headers)
            )
        )
        self.requests.append(
            Request(
                "googleplay",
                "/v1/webhooks/app/reviews",
                google_items,
                lambda: (google_raw, headers),
            )
        )


def build_plan(
    gateway_url: str,
    api_key: str,
    secrets: ProviderSecrets,
    total_items: int,
    *,
    webhooks_per_provider: int,
    singles: int,
    batch_sizes: tuple[int, int] = (100, 500),
    seed: int = 6,
) -> LoadPlan:
    """About ``total_items`` items: every provider's webhook, singles, and batches for the rest."""
    rng = random.Random(seed)
    plan = LoadPlan(gateway_url, api_key, secrets)
    for _ in range(webhooks_per_provider):
        plan.add_twilio()
        plan.add_hotline_transcript()
        plan.add_mailgun()
        plan.add_postmark()
        plan.add_meta()
        plan.add_app_reviews()
    for i in range(singles):
        plan.add_single(CHANNELS[i % 4])
    while len(plan.items) < total_items:
        remaining = total_items - len(plan.items)
        plan.add_batch(min(remaining, rng.randint(*batch_sizes)))
    rng.shuffle(plan.requests)
    return plan


@dataclass
class SendStats:
    requests: int = 0
    attempts: int = 0
    retried_requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    gave_up: int = 0

    def count(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def send_all(
    plan: LoadPlan,
    *,
    concurrency: int = 6,
    deadline_s: float = 240.0,
    max_attempts: int = 200,
    items_per_s: float | None = None,
) -> SendStats:
    """Send every request like a provider would: retry on any non-2xx or connection error.

    Only a 2xx counts as accepted, and the ids in its body are the accepted ids.
    """
    stats = SendStats(requests=len(plan.requests))
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in plan.requests:
        if not (request.status and 200 <= request.status < 300):  # accepted in an earlier round
            queue.put_nowait(request)
    started = time.monotonic()
    deadline = started + deadline_s
    accepted_items = 0
    released_items = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted_items, released_items
        while True:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if items_per_s:
                # Pace the first attempts; retries go out at once, like a provider's backlog.
                released_items += len(request.items)
                wait = started + released_items / items_per_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            delay = 0.1
            while True:
                content, headers = request.payload()
                request.attempts += 1
                stats.attempts += 1
                try:
                    response = await client.post(request.path, content=content, headers=headers)
                except httpx.HTTPError as error:
                    stats.count(type(error).__name__)
                else:
                    stats.count(str(response.status_code))
                    request.status = response.status_code
                    if 200 <= response.status_code < 300:
                        body = response.json()
                        ids = body.get("ids") or ([body["id"]] if body.get("id") else [])
                        request.accepted_ids = [str(i) for i in ids]
                        accepted_items += len(ids)
                        break
                if request.attempts == 2:
                    stats.retried_requests += 1
                if request.attempts >= max_attempts or time.monotonic() > deadline:
                    stats.gave_up += 1
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async with httpx.AsyncClient(base_url=plan.gateway_url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return stats


# -- counting --------------------------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class Stored:
    feedback: dict[str, int]
    scores: dict[str, list[str]]
    alerts: dict[str, list[str]]
    webhook_ids: dict[str, str]
    deliveries_pending: int


async def read_database(database_url: str) -> Stored:
    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        feedback: dict[str, int] = {}
        for row in await connection.fetch("SELECT id::text AS id FROM alerts.feedback"):
            feedback[row["id"]] = feedback.get(row["id"], 0) + 1
        scores: dict[str, list[str]] = {}
        for row in await connection.fetch(
            "SELECT feedback_id::text AS id, label FROM alerts.sentiment_score"
        ):
            scores.setdefault(row["id"], []).append(row["label"])
        alerts: dict[str, list[str]] = {}
        for row in await connection.fetch(
            "SELECT feedback_id::text AS fid, id::text AS id FROM alerts.alert WHERE kind = 'item'"
        ):
            alerts.setdefault(row["fid"], []).append(row["id"])
        webhook_ids = {
            row["alert_id"]: row["webhook_id"]
            for row in await connection.fetch(
                "SELECT alert_id::text AS alert_id, webhook_id FROM alerts.delivery"
                " WHERE event = 'alert.raised'"
            )
        }
        pending = await connection.fetchval(
            "SELECT count(*) FROM alerts.delivery WHERE status = 'pending'"
        )
    finally:
        await connection.close()
    return Stored(feedback, scores, alerts, webhook_ids, int(pending))


@dataclass
class Counts:
    """What the counting found; written to test-artifacts as JSON and asserted on."""

    sent_items: int
    accepted_items: int
    accepted_negative: int
    stored_feedback: int
    stored_duplicates: int
    accepted_missing: int
    stored_not_sent: int
    scored: int
    scored_more_than_once: int
    wrong_labels: int
    alerts: int
    negatives_without_alert: int
    negatives_with_several_alerts: int
    alerts_for_non_negative: int
    alerts_delivered: int
    alerts_not_delivered: int
    deliveries: int
    duplicate_deliveries: int
    alerts_with_several_webhook_ids: int
    unverified_deliveries: int
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"reliability-{name}.json"
        path.write_bytes(orjson.dumps(self.__dict__, option=orjson.OPT_INDENT_2))
        print(f"\n[{name}] " + orjson.dumps(self.__dict__).decode())  # noqa: T201 - the report
        return path

    def assert_exact(self) -> None:
        problems = {
            key: value
            for key, value in self.__dict__.items()
            if key
            in {
                "stored_duplicates",
                "accepted_missing",
                "stored_not_sent",
                "scored_more_than_once",
                "wrong_labels",
                "negatives_without_alert",
                "negatives_with_several_alerts",
                "alerts_for_non_negative",
                "alerts_not_delivered",
                "alerts_with_several_webhook_ids",
                "unverified_deliveries",
            }
            and value != 0
        }
        assert not problems, problems
        assert self.scored == self.stored_feedback
        assert self.alerts == self.accepted_negative or self.alerts >= self.accepted_negative


def count(
    plan: LoadPlan,
    stored: Stored,
    deliveries: list[Delivery],
    maybe_stored: frozenset[str] = frozenset(),
    **extra: Any,
) -> Counts:
    """``maybe_stored``: ids sent outside the plan that got no 2xx, so may or may not be stored."""
    # Other notifications (fallback, escalation) are not part of this count.
    deliveries = [d for d in deliveries if d.event == "alert.raised"]
    sent = {item.id: item for item in plan.items}
    accepted = {i for request in plan.requests for i in request.accepted_ids}
    negative_ids = {i for i in sent if sent[i].negative}
    stored_negative = negative_ids & set(stored.feedback)
    alerted = set(stored.alerts)
    alert_ids = {a for ids in stored.alerts.values() for a in ids}
    by_alert: dict[str, set[str]] = {}
    for delivery in deliveries:
        by_alert.setdefault(delivery.alert_id, set()).add(delivery.webhook_id)
    expected_label = {i: ("negative" if item.negative else "positive") for i, item in sent.items()}
    return Counts(
        sent_items=len(sent),
        accepted_items=len(accepted),
        accepted_negative=len(accepted & negative_ids),
        stored_feedback=len(stored.feedback),
        stored_duplicates=sum(n - 1 for n in stored.feedback.values()),
        accepted_missing=len(accepted - set(stored.feedback)),
        stored_not_sent=len(set(stored.feedback) - set(sent) - maybe_stored),
        scored=len(stored.scores),
        scored_more_than_once=sum(1 for labels in stored.scores.values() if len(labels) > 1),
        wrong_labels=sum(
            1
            for i, labels in stored.scores.items()
            if i in expected_label and labels != [expected_label[i]]
        ),
        alerts=len(alert_ids),
        negatives_without_alert=len(stored_negative - alerted),
        negatives_with_several_alerts=sum(1 for ids in stored.alerts.values() if len(ids) > 1),
        alerts_for_non_negative=len(alerted - negative_ids),
        alerts_delivered=len(alert_ids & set(by_alert)),
        alerts_not_delivered=len(alert_ids - set(by_alert)),
        deliveries=len(deliveries),
        duplicate_deliveries=len(deliveries) - len(by_alert),
        alerts_with_several_webhook_ids=sum(
            1
            for alert_id, ids in by_alert.items()
            if len(ids) > 1
            or (alert_id in stored.webhook_ids and ids != {stored.webhook_ids[alert_id]})
        ),
        unverified_deliveries=sum(1 for d in deliveries if not d.verified),
        extra=extra,
    )


async def wait_drained(
    plan: LoadPlan,
    database_url: str,
    receiver: OwnerReceiver,
    timeout_s: float,
) -> Stored:
    """Until every accepted item is stored and scored and every alert reached its owner."""
    accepted = {i for request in plan.requests for i in request.accepted_ids}
    deadline = time.monotonic() + timeout_s
    while True:
        stored = await read_database(database_url)
        alert_ids = {a for ids in stored.alerts.values() for a in ids}
        negatives = {i for i in accepted if i in stored.feedback} & {
            item.id for item in plan.items if item.negative
        }
        delivered = {d.alert_id for d in receiver.snapshot() if d.event == "alert.raised"}
        done = (
            accepted <= set(stored.feedback)
            and set(stored.feedback) <= set(stored.scores)
            and negatives <= set(stored.alerts)
            and alert_ids <= delivered
        )
        if done or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(1.0)


# -- the broker, seen from outside ------------------------------------------------------------


async def _partitions(consumer: Any, topic: str) -> list[Any]:
    """Every partition of ``topic``, from a fresh full metadata answer.

    (``partitions_for_topic`` answers from the client's cached view, which can be partial.)
    """
    from aiokafka import TopicPartition

    metadata = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(metadata.partitions_for_topic(topic) or ())]


async def topic_records(bootstrap_servers: str, topic: str, quiet_s: float = 1.5) -> list[Any]:
    """Every record currently in ``topic`` (all partitions), read without a consumer group.

    Reads until nothing new arrived for ``quiet_s``: Tansu's end offsets (ListOffsets) can
    lag behind what a fetch returns, so they are not used as the stop condition.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        last_new = time.monotonic()
        while time.monotonic() - last_new < quiet_s:
            fetched = await consumer.getmany(timeout_ms=200)
            for batch in fetched.values():
                records.extend(batch)
            if fetched:
                last_new = time.monotonic()
        return records
    finally:
        await consumer.stop()


async def record_count(bootstrap_servers: str, topic: str) -> int:
    """How many records ``topic`` holds, counted by reading them."""
    return len(await topic_records(bootstrap_servers, topic))


async def committed_total(bootstrap_servers: str, group: str, topic: str) -> int:
    """Sum of the offsets ``group`` committed on ``topic`` (without joining the group)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for tp in await _partitions(consumer, topic):
            total += await consumer.committed(tp) or 0
        return total
    finally:
        await consumer.stop()


async def status_of(url: str, timeout_s: float = 5.0) -> int | str:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        try:
            return (await client.get(url)).status_code
        except httpx.HTTPError as error:
            return type(error).__name__
