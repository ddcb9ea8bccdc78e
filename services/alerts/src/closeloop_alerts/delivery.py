"""Webhook delivery: the dispatcher, Standard Webhooks signing and the retry policy.

Semantics (Standard Webhooks, Svix's schedule):

* at least once: a delivery is retried until a 2xx, and every retry carries the same
  ``webhook-id`` so the receiver can deduplicate; ``webhook-timestamp`` and the signature
  are fresh on every attempt;
* 2xx is delivered; 3xx is a failure (redirects are never followed); 410 Gone disables
  the target (this delivery and the ones queued behind it); anything else, a timeout or a
  connection error is retried after the next delay of the schedule (with jitter), or
  after ``Retry-After`` if the receiver asks for longer; after the last delay the delivery
  is ``failed``;
* each attempt is recorded (status code, error, duration, time) in ``delivery_attempt``.

Due deliveries are leased with ``SELECT ... FOR UPDATE SKIP LOCKED`` in a short
transaction, so replicas share the work and no lock is held during the HTTP call. A
crash mid-call lets the lease expire and the delivery is sent again (same webhook id).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.delivery_payload import (
    USER_AGENT,
    WEBHOOK_EVENT_TYPE,
    AttemptResult,
    parse_retry_after,
    render_payload,
    signed_headers,
)
from closeloop_alerts.metrics import (
    END_TO_END,
    NOTIFICATION_DURATION,
    NOTIFICATIONS,
    TARGETS_UNHEALTHY,
)
from closeloop_alerts.notifiers import Notifier, SmtpSettings
from closeloop_alerts.outbound import Allowlist
from closeloop_alerts.repository import DeliveryJob
from closeloop_alerts.routing import RoutingState
from closeloop_shared.events import utcnow
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

Outcome = Literal["delivered", "retrying", "failed", "disabled"]

__all__ = [
    "USER_AGENT",
    "WEBHOOK_EVENT_TYPE",
    "AttemptResult",
    "DeliveryDispatcher",
    "RetryPolicy",
    "make_client",
    "parse_retry_after",
    "render_payload",
    "signed_headers",
]


# --- The retry policy (sending is the Notifier's, always behind the SSRF guard) -----------------


@dataclass(frozen=True)
class RetryPolicy:
    """Delays before each attempt (the first normally 0), measured from the previous failure."""

    schedule_s: tuple[float, ...]
    jitter: float = 0.1
    max_retry_after_s: float = 86_400.0

    @property
    def max_attempts(self) -> int:
        return len(self.schedule_s)

    def decide(
        self,
        result: AttemptResult,
        attempts_made: int,
        rand: Callable[[], float] = random.random,
    ) -> tuple[Outcome, float | None]:
        """Outcome of an attempt and, when retrying, the delay in seconds before the next."""
        code = result.status_code
        if code is not None and 200 <= code < 300:
            return "delivered", None
        if code == 410:
            return "disabled", None
        if attempts_made >= self.max_attempts:
            return "failed", None
        delay = self.schedule_s[attempts_made]
        # Jitter spreads retries of many alerts that failed together (a receiver outage).
        delay *= 1.0 + self.jitter * (2.0 * rand() - 1.0)
        if result.retry_after_s is not None:
            delay = max(delay, min(result.retry_after_s, self.max_retry_after_s))
        return "retrying", max(0.0, delay)


# --- Dispatcher ---------------------------------------------------------------------------------


class DeliveryDispatcher:
    """Background task that sends due deliveries, at most ``concurrency`` at a time."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        routing: RoutingState,
        client: httpx.AsyncClient,
        policy: RetryPolicy,
        *,
        concurrency: int = 32,
        poll_interval_s: float = 1.0,
        lease_s: float = 60.0,
        allowlist: Sequence[str] = (),
        smtp: SmtpSettings | None = None,
        unhealthy_after: int = 5,
        timeout_s: float = 15.0,
        clock: Clock = system_clock,
        group_commit_s: float = 0.005,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._routing = routing
        self._client = client
        self._policy = policy
        self._concurrency = concurrency
        self._poll_interval_s = poll_interval_s
        self._lease = timedelta(seconds=lease_s)
        self._clock = clock
        self._notifier = Notifier(
            client,
            allowlist=Allowlist.parse(allowlist),
            smtp=smtp,
            timeout_s=timeout_s,
            clock=clock,
        )
        self._unhealthy_after = unhealthy_after
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        # Successful attempts are recorded together (see _record_delivered).
        self._group_commit_s = group_commit_s
        self._group: _GroupCommit | None = None
        # Targets this replica recorded healthy lately: their next successes need no health
        # write. Bounded in time, since another replica may mark one unhealthy meanwhile.
        self._known_healthy: dict[tuple[str, str], float] = {}

    def wake(self) -> None:
        """New deliveries were committed: look now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        backoff = self._poll_interval_s
        while True:
            self._wake.clear()
            free = self._concurrency - len(self._inflight)
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim_and_start(free)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("delivery_claim_failed", error=type(error).__name__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = self._poll_interval_s
            if free <= 0 or (claimed and claimed == free):
                # Saturated, or more may be due: continue as soon as a slot frees up.
                if len(self._inflight) >= self._concurrency:
                    await asyncio.wait(
                        self._inflight,
                        timeout=self._poll_interval_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def drain(self, timeout_s: float) -> None:
        """Let in-flight requests finish (stopping); the rest are retried after their lease."""
        if not self._inflight:
            return
        _, pending = await asyncio.wait(self._inflight, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _claim_and_start(self, limit: int) -> int:
        async with self._sessionmaker() as session, session.begin():
            jobs = await repository.claim_due_deliveries(
                session, limit=limit, now=self._clock(), lease=self._lease
            )
        for job in jobs:
            task = asyncio.create_task(self._deliver(job), name=f"delivery:{job.id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(jobs)

    async def _deliver(self, job: DeliveryJob) -> None:
        try:
            await self._deliver_once(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Typically the database went away while recording: the lease expires and the
            # delivery is attempted again with the same webhook id.
            log.warning(
                "delivery_record_failed", delivery_id=str(job.id), error=type(error).__name__
            )

    async def _deliver_once(self, job: DeliveryJob) -> None:
        # The current owners (file or admin API) are the source of truth: a corrected URL
        # or secret applies to retries too.
        target = self._routing.router.target(job.owner_id, job.target_key)
        if target is None or target.type != job.target_type:
            await self._finish(job, _skipped(job.url, "target no longer configured"), "failed")
            return
        owner = self._routing.router.owner(job.owner_id)
        redact = owner.redacts_pii(target) if owner is not None else True
        url, result = await self._notifier.send(job, target, redact_pii=redact)
        NOTIFICATION_DURATION.labels(job.target_type).observe(result.duration_s)
        outcome, delay = self._policy.decide(result, job.attempts + 1)
        if result.error is not None and result.error.startswith("blocked:"):
            outcome, delay = "failed", None  # a blocked address does not unblock by waiting
        next_at = result.attempted_at + timedelta(seconds=delay) if delay is not None else None
        if outcome == "delivered":
            await self._record_delivered(job, _Attempt(url, result))
            return
        await self._finish(job, _Attempt(url, result), outcome, next_at)

    async def _record_delivered(self, job: DeliveryJob, attempt: _Attempt) -> None:
        """Record a success in the next group commit and wait until it is stored.

        A transaction per delivery cost a third of the service's CPU at a few hundred
        deliveries a second; the deliveries that finish within ``group_commit_s`` of each
        other share one. Each caller still returns only once its record is committed, so
        shutdown (``drain``) and failures behave as before: if the commit fails, the lease
        expires and the delivery is attempted again with the same webhook id."""
        group = self._group
        if group is None:
            group = self._group = _GroupCommit(asyncio.get_running_loop().create_future())
            task = asyncio.create_task(self._commit_group(group), name="delivery:group-commit")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        group.records.append(
            repository.DeliveredRecord(job, _attempt_row(job, attempt, "delivered"))
        )
        await asyncio.shield(group.done)
        self._report(job, attempt, "delivered")

    async def _commit_group(self, group: _GroupCommit) -> None:
        await asyncio.sleep(self._group_commit_s)
        self._group = None  # later successes start the next group
        now = self._clock()
        expires = asyncio.get_running_loop().time()
        targets = sorted(
            {
                (record.job.owner_id, record.job.target_key)
                for record in group.records
                if self._known_healthy.get((record.job.owner_id, record.job.target_key), 0.0)
                < expires
            }
        )
        try:
            async with self._sessionmaker() as session, session.begin():
                await repository.record_delivered(session, group.records, now)
                for owner_id, target_key in targets:
                    await repository.record_target_health(
                        session,
                        owner_id=owner_id,
                        target_key=target_key,
                        ok=True,
                        unhealthy_after=self._unhealthy_after,
                        now=now,
                    )
        except Exception as error:
            group.done.set_exception(error)
            group.done.exception()  # retrieved here too: every waiter may have gone
            return
        for target in targets:
            self._known_healthy[target] = expires + _KNOWN_HEALTHY_S
        group.done.set_result(None)

    async def _finish(
        self,
        job: DeliveryJob,
        attempt: _Attempt,
        outcome: Outcome,
        next_attempt_at: datetime | None = None,
    ) -> None:
        status = "pending" if outcome == "retrying" else outcome
        now = self._clock()
        if outcome != "delivered":
            self._known_healthy.pop((job.owner_id, job.target_key), None)
        async with self._sessionmaker() as session, session.begin():
            kept = await repository.record_attempt(
                session,
                job,
                attempt=_attempt_row(job, attempt, outcome),
                status=status,
                next_attempt_at=next_attempt_at,
                now=now,
            )
            became_unhealthy = False
            if kept:
                became_unhealthy = await repository.record_target_health(
                    session,
                    owner_id=job.owner_id,
                    target_key=job.target_key,
                    ok=outcome == "delivered",
                    unhealthy_after=self._unhealthy_after,
                    now=now,
                )
                if became_unhealthy or (
                    outcome in ("failed", "disabled") and job.event != "alert.fallback"
                ):
                    # The owner cannot be reached this way: its escalation owner hears of it.
                    await self._fall_back(session, job, now)
            disabled_too = 0
            if outcome == "disabled" and kept:
                # The endpoint is gone: queued deliveries to it would only hear 410 again.
                disabled_too = await repository.disable_pending_for_target(
                    session,
                    owner_id=job.owner_id,
                    target_key=job.target_key,
                    reason=f"target answered 410 Gone to webhook {job.webhook_id}",
                    now=now,
                )
        self._report(job, attempt, outcome, kept, disabled_too, became_unhealthy)

    def _report(
        self,
        job: DeliveryJob,
        attempt: _Attempt,
        outcome: Outcome,
        kept: bool = True,
        disabled_too: int = 0,
        became_unhealthy: bool = False,
    ) -> None:
        """Metrics and log lines of a recorded attempt."""
        result = attempt.result
        NOTIFICATIONS.labels(job.target_type, outcome).inc()
        if outcome == "delivered" and job.event == "alert.raised":
            # The first notification of a new alert closes the pipeline's end-to-end clock.
            END_TO_END.labels(job.feedback.channel).observe(
                max((result.attempted_at - job.feedback.received_at).total_seconds(), 0.0)
            )
        fields = {
            "delivery_id": str(job.id),
            "alert_id": str(job.alert_id),
            "owner": job.owner_id,
            "target": job.target_key,
            "attempt": job.attempts + 1,
            "status_code": result.status_code,
            "outcome": outcome,
        }
        if outcome == "delivered":
            log.info("webhook_delivered", **fields)
        else:
            log.warning("webhook_not_delivered", error=result.error, **fields)
        if disabled_too:
            log.warning(
                "webhook_target_disabled",
                owner=job.owner_id,
                target=job.target_key,
                queued_disabled=disabled_too,
            )
        if not kept:
            log.warning("delivery_lease_lost", delivery_id=str(job.id))
        if became_unhealthy:
            TARGETS_UNHEALTHY.inc()
            log.warning("notify_target_unhealthy", owner=job.owner_id, target=job.target_key)
            self.wake()

    async def _fall_back(self, session: AsyncSession, job: DeliveryJob, now: datetime) -> None:
        # Imported here: service imports the payload helpers this module re-exports.
        from closeloop_alerts.service import delivery_rows

        backup = self._routing.router.escalation_owner(job.owner_id)
        if backup is None:
            return
        await repository.insert_deliveries(
            session, delivery_rows(job.alert_id, backup, "alert.fallback", now, timedelta())
        )


@dataclass(frozen=True)
class _Attempt:
    url: str
    result: AttemptResult


def _attempt_row(job: DeliveryJob, attempt: _Attempt, outcome: Outcome) -> dict[str, object]:
    result = attempt.result
    return {
        "number": job.attempts + 1,
        "url": attempt.url,
        "attempted_at": result.attempted_at,
        "duration_s": result.duration_s,
        "status_code": result.status_code,
        "error": result.error,
        "outcome": outcome,
    }


# How long a target recorded healthy here skips the health write on its next successes.
_KNOWN_HEALTHY_S = 5.0


@dataclass
class _GroupCommit:
    done: asyncio.Future[None]
    records: list[repository.DeliveredRecord] = field(default_factory=list)


def _skipped(url: str, reason: str) -> _Attempt:
    return _Attempt(url, AttemptResult(utcnow(), 0.0, None, reason))


def make_client(timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
