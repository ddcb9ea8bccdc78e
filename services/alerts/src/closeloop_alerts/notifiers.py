"""Notify targets: generic webhook (Standard Webhooks), Slack (Block Kit), email (SMTP),
WeCom (企业微信), DingTalk (钉钉, signed timestamp) and Feishu/Lark bots.

Every sender returns an :class:`AttemptResult` and never raises for a receiver's failure;
the dispatcher's retry policy decides what happens next. HTTP targets go through the SSRF
guard (:mod:`closeloop_alerts.outbound`) and never follow redirects. Chat bots answer
HTTP 200 with an error code in the body when they refuse a message (bad key, bad
signature, rate limit); such an answer is a failure, not a delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote_plus

import aiosmtplib
import httpx
import orjson

from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.delivery_payload import (
    AttemptResult,
    masked,
    parse_retry_after,
    render_payload,
    signed_headers,
)
from closeloop_alerts.outbound import Allowlist, BlockedURL, pinned_request
from closeloop_alerts.repository import DeliveryJob
from closeloop_alerts.routing import (
    AnyTarget,
    DingTalkTarget,
    EmailTarget,
    FeishuTarget,
    SlackTarget,
    WebhookTarget,
    WeComTarget,
)

USER_AGENT = "Closeloop-Webhooks/1"
# Chat bots answer with a small JSON object; never read more than this of a body.
MAX_ANSWER_BYTES = 64 * 1024
EXCERPT_CHARS = 500


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "closeloop@localhost"
    starttls: bool = True
    use_tls: bool = False


# --- the human-readable message ------------------------------------------------------------

EVENT_TITLES = {
    "alert.raised": "New alert",
    "alert.escalated": "Escalated alert",
    "alert.assigned": "Alert assigned to you",
    "alert.fallback": "Alert (its owner cannot be reached)",
}


@dataclass(frozen=True)
class Message:
    title: str
    facts: list[tuple[str, str]]
    excerpt: str
    reference: str

    def plain(self) -> str:
        lines = [self.title, ""]
        lines += [f"{label}: {value}" for label, value in self.facts]
        lines += ["", self.excerpt, "", self.reference]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**{self.title}**"]
        lines += [f"> {label}: {value}" for label, value in self.facts]
        lines += ["", self.excerpt, "", f"`{self.reference}`"]
        return "\n".join(lines)


def message_of(job: DeliveryJob) -> Message:
    alert, feedback, score = job.alert, job.feedback, job.score
    title = EVENT_TITLES.get(job.event, job.event)
    text = (
        feedback.text
        if len(feedback.text) <= EXCERPT_CHARS
        else feedback.text[:EXCERPT_CHARS] + "…"
    )
    facts = [
        ("Priority", alert.priority.upper()),
        ("Owner", alert.owner_id),
        ("Channel", feedback.channel),
        ("Sentiment", f"{score.label} ({score.score:+.2f})"),
    ]
    if feedback.touchpoint:
        facts.append(("Touchpoint", feedback.touchpoint))
    if feedback.rating_type is not None and feedback.rating_value is not None:
        facts.append(("Rating", f"{feedback.rating_type} {feedback.rating_value:g}"))
    customer = feedback.customer.get("name") or feedback.customer.get("id")
    if customer:
        facts.append(("Customer", str(customer)))
    if job.event == "alert.escalated":
        facts.append(("Escalation level", str(alert.escalation_level)))
    if alert.item_count > 1:
        facts.append(("Items", str(alert.item_count)))
    return Message(
        title=f"[{alert.priority.upper()}] {title}: {feedback.channel} feedback",
        facts=facts,
        excerpt=text,
        reference=f"alert {alert.id} · {job.webhook_id}",
    )


# --- bodies per target type ------------------------------------------------------------------


def slack_body(message: Message) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` is the notification fallback, blocks the view."""
    return {
        "text": message.title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{value}"}
                    for label, value in message.facts[:10]
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f">{message.excerpt[:2900]}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": message.reference}]},
        ],
    }


def wecom_body(message: Message) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": message.markdown()[:4000]}}


def dingtalk_body(message: Message) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.markdown()}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk: base64(HMAC-SHA256(secret, "<timestamp ms>\\n<secret>")), URL-encoded."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode())


def dingtalk_url(url: str, secret: str | None, now: datetime) -> str:
    if not secret:
        return url
    timestamp_ms = math.floor(now.timestamp() * 1000)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark: base64(HMAC-SHA256(key="<timestamp s>\\n<secret>", message=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def feishu_body(message: Message, secret: str | None, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {"msg_type": "text", "content": {"text": message.plain()}}
    if secret:
        timestamp_s = math.floor(now.timestamp())
        body["timestamp"] = str(timestamp_s)
        body["sign"] = feishu_sign(secret, timestamp_s)
    return body


def bot_error(target_type: str, raw: bytes) -> str | None:
    """The error a chat bot reported in a 200 answer, or None if it accepted the message."""
    if target_type == "slack":
        return None  # Slack answers errors with 4xx/5xx statuses
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    for field in ("errcode", "code", "StatusCode"):
        code = answer.get(field)
        if isinstance(code, int) and code != 0:
            detail = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
            return f"{target_type} refused: {field}={code} {detail}"[:500]
    return None


def email_message(job: DeliveryJob, to: list[str], sender: str, now: datetime) -> EmailMessage:
    message = message_of(job)
    email = EmailMessage()
    email["From"] = sender
    email["To"] = ", ".join(to)
    email["Subject"] = f"[Closeloop] {message.title}"
    email["Date"] = format_datetime(now)
    # Stable across retries: a mail system (or a person) can drop the duplicate.
    email["Message-ID"] = f"<{job.webhook_id}@closeloop>"
    email["X-Closeloop-Alert"] = str(job.alert_id)
    email.set_content(message.plain())
    return email


# --- sending -----------------------------------------------------------------------------------


class Notifier:
    """Sends one delivery to its target; chooses the transport by the target's type."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        allowlist: Allowlist | None = None,
        smtp: SmtpSettings | None = None,
        timeout_s: float = 15.0,
        clock: Clock = system_clock,
    ) -> None:
        self._client = client
        self._allowlist = allowlist or Allowlist.parse(())
        self._smtp = smtp or SmtpSettings()
        self._timeout_s = timeout_s
        self._clock = clock

    async def send(
        self, job: DeliveryJob, target: AnyTarget, *, redact_pii: bool | None = None
    ) -> tuple[str, AttemptResult]:
        """(the URL to record, the result); the URL of an email is ``mailto:...``.

        ``redact_pii`` (the owner's choice, :meth:`Owner.redacts_pii`) masks personal data;
        unset, everything but a webhook is masked."""
        if redact_pii if redact_pii is not None else target.type != "webhook":
            job = replace(job, feedback=masked(job.feedback))
        if isinstance(target, EmailTarget):
            return target.url, await self._email(job, target)
        now = self._clock()
        url = str(target.url)
        headers = {"content-type": "application/json", "user-agent": USER_AGENT}
        if isinstance(target, WebhookTarget):
            body = render_payload(job.alert, job.feedback, job.score, job.event, job.created_at)
            headers = signed_headers(target.secret.get_secret_value(), job.webhook_id, body, now)
        elif isinstance(target, SlackTarget):
            body = orjson.dumps(slack_body(message_of(job)))
        elif isinstance(target, WeComTarget):
            body = orjson.dumps(wecom_body(message_of(job)))
        elif isinstance(target, DingTalkTarget):
            secret = target.secret.get_secret_value() if target.secret else None
            url = dingtalk_url(url, secret, now)
            body = orjson.dumps(dingtalk_body(message_of(job)))
        else:
            assert isinstance(target, FeishuTarget)
            secret = target.secret.get_secret_value() if target.secret else None
            body = orjson.dumps(feishu_body(message_of(job), secret, now))
        # The recorded URL never carries a signature; it is the configured one.
        return str(target.url), await self._post(url, body, headers, target.type)

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], target_type: str
    ) -> AttemptResult:
        attempted_at = self._clock()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            request = await pinned_request(
                self._client, "POST", url, self._allowlist, content=body, headers=headers
            )
            # Streamed: only a bounded prefix of the answer is read, a hostile receiver
            # cannot make us buffer an endless body.
            response = await self._client.send(request, stream=True, follow_redirects=False)
            try:
                status_code = response.status_code
                raw = b""
                if 200 <= status_code < 300 and target_type != "webhook":
                    async for chunk in response.aiter_bytes():
                        raw += chunk
                        if len(raw) >= MAX_ANSWER_BYTES:
                            break
            finally:
                await response.aclose()
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            else:
                refused = bot_error(target_type, raw)
                if refused is not None:
                    status_code, error = None, refused
        except BlockedURL as blocked:
            error = f"blocked: {blocked}"
        except httpx.TimeoutException as exc:
            error = f"timeout ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            # The exception text names the failure (refused, DNS); the URL is not logged.
            error = f"{type(exc).__name__}: {exc}"[:500]
        return AttemptResult(
            attempted_at=attempted_at,
            duration_s=time.perf_counter() - started,
            status_code=status_code,
            error=error,
            retry_after_s=retry_after,
        )

    async def _email(self, job: DeliveryJob, target: EmailTarget) -> AttemptResult:
        attempted_at = self._clock()
        started = time.perf_counter()
        smtp = self._smtp
        error: str | None = None
        code: int | None = None
        if smtp.host is None:
            error = "no SMTP server configured (CLOSELOOP_ALERTS_SMTP_HOST)"
        else:
            message = email_message(job, list(target.to), smtp.sender, attempted_at.astimezone(UTC))
            try:
                await aiosmtplib.send(
                    message,
                    hostname=smtp.host,
                    port=smtp.port,
                    username=smtp.username,
                    password=smtp.password,
                    start_tls=smtp.starttls and not smtp.use_tls,
                    use_tls=smtp.use_tls,
                    timeout=self._timeout_s,
                )
                code = 250
            except aiosmtplib.SMTPResponseException as exc:
                error = f"SMTP {exc.code}: {exc.message}"[:500]
            except (aiosmtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        return AttemptResult(
            attempted_at=attempted_at,
            duration_s=time.perf_counter() - started,
            status_code=code,
            error=error,
        )
