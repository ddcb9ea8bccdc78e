"""The console's pages and form actions, mounted on the gateway under ``/console``.

Plain Starlette endpoints (left out of the OpenAPI document: they are pages, not API).
Each page resolves the visitor from the session cookie through the gateway's own key
cache, charges the key's rate limit like any API call, and reads and acts through
``AlertsApi`` with the key's upstream headers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from closeloop_gateway.auth import (
    DATABASE_ERRORS,
    DENIAL_KEY,
    PRINCIPAL_KEY,
    Principal,
    Scope,
    hash_key,
    is_well_formed,
)
from closeloop_gateway.console import views
from closeloop_gateway.console.alerts_api import AlertsApi, AlertsError, upstream_headers
from closeloop_gateway.console.assets import Assets
from closeloop_gateway.console.config import ConsoleSettings
from closeloop_gateway.console.i18n import LANGUAGES, Translator, negotiate
from closeloop_gateway.console.session import (
    COOKIE,
    DISPLAY_NAME,
    LANGUAGE_COOKIE,
    Session,
    SessionCodec,
    same_token,
)
from closeloop_gateway.errors import ProblemError
from closeloop_gateway.limits import check_declared_length
from closeloop_gateway.metrics import RATE_LIMITED
from closeloop_gateway.proxy import ALERTS, Proxy, RawRoute
from closeloop_shared.http.observability import problem
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
# Console forms carry a few notes; nothing legitimate comes near this.
MAX_FORM_BYTES = 64 * 1024
SECURITY_HEADERS = {
    # Everything the pages use is served by the gateway itself: no inline script, no CDN.
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    # Pages show customers' words: never keep them in a shared cache.
    "cache-control": "no-store",
}
ACTIONS = ("acknowledge", "resolve", "reopen", "assign", "comment", "escalate")


class SignInRequired(Exception):
    """No valid session (or its key was revoked): go to the sign-in page."""


@dataclass(frozen=True, slots=True)
class Visitor:
    principal: Principal
    session: Session
    api: AlertsApi

    @property
    def name(self) -> str:
        return self.session.display_name or self.principal.name

    @property
    def can_write(self) -> bool:
        return self.principal.allows(Scope.ALERTS_WRITE)


class Console:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.sessions = SessionCodec(
            settings.session_secret.get_secret_value(), settings.session_max_age_s
        )
        self.assets = Assets()
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            extensions=["jinja2.ext.do"],
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            asset=self.assets.url,
            duration=views.duration,
            milliseconds=views.milliseconds,
            percent=views.percent,
            number=views.number,
            # doseq: a list value repeats its field (sentiment=negative&sentiment=neutral).
            urlencode=lambda query: urlencode(query, doseq=True),
            heat_colour=views.heat_colour,
            heat_text_colour=views.heat_text_colour,
        )

    # -- who is visiting ---------------------------------------------------------------------

    async def visitor(self, request: Request) -> Visitor:
        session = self.sessions.loads(request.cookies.get(COOKIE))
        if session is None:
            raise SignInRequired
        principal = await _principal(request, session.key_hash)
        if principal is None or not principal.allows(Scope.ALERTS_READ):
            raise SignInRequired
        # Who is asking, for the gateway's access audit (as on the API routes).
        request.scope[PRINCIPAL_KEY] = principal
        _charge(request, principal)
        proxy: Proxy = request.app.state.proxy
        api = AlertsApi(proxy.upstreams[ALERTS], upstream_headers(principal, session.display_name))
        return Visitor(principal, session, api)

    # -- rendering ---------------------------------------------------------------------------

    def language(self, request: Request) -> str:
        chosen = request.cookies.get(LANGUAGE_COOKIE)
        if chosen in LANGUAGES:
            return chosen
        return negotiate(request.headers.get("accept-language"))

    def render(
        self,
        request: Request,
        template: str,
        visitor: Visitor | None = None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = self.language(request)
        body = self.templates.get_template(template).render(
            t=Translator(lang),
            lang=lang,
            visitor=visitor,
            csrf=visitor.session.csrf_token if visitor else "",
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            path=request.url.path,
            poll_interval_ms=int(self.settings.poll_interval_s * 1000),
            **context,
        )
        return HTMLResponse(body, status_code=status)

    def error(self, request: Request, status: int, code: str, detail: str) -> Response:
        """An HTML page for a browser, the shared JSON error shape for anything else."""
        if "text/html" not in request.headers.get("accept", ""):
            return problem(status, code, detail)
        return self.render(request, "error.html", status=status, code=code, detail=detail)


async def _principal(request: Request, key_hash: str) -> Principal | None:
    try:
        principal: Principal | None = await request.app.state.guard.keys.get(key_hash)
    except DATABASE_ERRORS as error:
        log.warning("console_key_lookup_failed", error=type(error).__name__)
        raise AlertsError(503, "unavailable", "Sign-in cannot be checked right now.") from None
    return principal


def _charge(request: Request, principal: Principal) -> None:
    """A page view costs what an API call costs: the key's own rate limit."""
    limiter = request.app.state.guard.limiter
    if limiter is None:
        return
    decision = limiter.acquire(principal.id)
    if not decision.allowed:
        RATE_LIMITED.inc()
        raise ProblemError(429, "rate_limited", "Too many requests for this API key; slow down.")


Handler = Callable[[Request, Console], Awaitable[Response]]


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint around a handler: sign-in redirects, error pages, security headers."""

    async def endpoint(request: Request) -> Response:
        console: Console = request.app.state.console
        try:
            if request.method == "POST":
                _same_origin(request)
            response = await handler(request, console)
        except SignInRequired:
            response = _sign_in_first(request, console)
        except views.FilterError as error:
            response = console.error(request, 422, "invalid_request", str(error))
        except AlertsError as error:
            if error.denied is not None:
                request.scope[DENIAL_KEY] = error.denied
            response = console.error(request, error.status, error.code, error.detail)
        except ProblemError as error:
            response = console.error(request, error.status, error.code, error.detail)
        response.headers.update(SECURITY_HEADERS)
        return response

    return endpoint


def _sign_in_first(request: Request, console: Console) -> Response:
    """Where a request without a session goes.

    A link followed from another site (a Slack or e-mail notification) arrives without the
    SameSite=Strict cookie even when the person is signed in. The browser says so
    (``Sec-Fetch-Site: cross-site``): such a GET gets a page that asks for the same URL
    again from the console itself, which does carry the cookie. Only when that request has
    no session either does the person sign in, and is then sent back to the URL
    (``next``, console paths only).
    """
    here = _here(request)
    if request.method == "GET" and request.headers.get("sec-fetch-site") == "cross-site":
        return console.render(request, "continue.html", target=here)
    return RedirectResponse("/console/sign-in?" + urlencode({"next": here}), status_code=303)


def _here(request: Request) -> str:
    if request.method != "GET":
        return "/console/inbox"
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _same_origin(request: Request) -> None:
    """Refuse a cross-site form post (the SameSite=Strict cookie is the first line)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise ProblemError(403, "cross_origin", "Form posts must come from the console itself.")


async def _form(request: Request) -> FormData:
    length = request.headers.get("content-length")
    if length is None:
        # Browsers always declare a form's length; a chunked body could be any size.
        raise ProblemError(411, "length_required", "A form post needs a Content-Length.")
    check_declared_length(length.encode(), MAX_FORM_BYTES)
    return await request.form()


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _safe_next(target: str | None) -> str:
    # Only back into the console: never an open redirect to another site (no scheme or
    # host, no backslash a browser would read as "/", no control characters).
    if (
        target
        and (target == "/console" or target.startswith(("/console/", "/console?")))
        and "\\" not in target
        and not any(ord(character) < 0x20 for character in target)
    ):
        return target
    return "/console/inbox"


def _set_session(request: Request, response: Response, console: Console, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        console.sessions.dumps(session),
        max_age=console.settings.session_max_age_s,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --- sign in and out --------------------------------------------------------------------------


async def root(request: Request, console: Console) -> Response:
    return RedirectResponse("/console/inbox", status_code=303)


async def sign_in_form(request: Request, console: Console) -> Response:
    return console.render(
        request, "sign_in.html", next=_safe_next(request.query_params.get("next")), failure=None
    )


async def sign_in(request: Request, console: Console) -> Response:
    form = await _form(request)
    key = _field(form, "key") or ""
    name = _field(form, "name")
    target = _safe_next(_field(form, "next"))

    def refuse(status: int, failure: str, audit_reason: str | None = None) -> Response:
        if audit_reason is not None:
            request.scope[DENIAL_KEY] = audit_reason
        return console.render(request, "sign_in.html", status=status, next=target, failure=failure)

    if not is_well_formed(key):
        return refuse(422, "bad_key")
    if name is not None and not DISPLAY_NAME.fullmatch(name):
        return refuse(422, "bad_name")
    key_hash = hash_key(key)
    principal = await _principal(request, key_hash)
    if principal is None:
        return refuse(401, "unknown_key", "invalid")
    request.scope[PRINCIPAL_KEY] = principal
    if not principal.allows(Scope.ALERTS_READ):
        return refuse(403, "no_read_scope", "insufficient_scope")
    log.info("console_sign_in", key_id=str(principal.id), named=name is not None)
    response = RedirectResponse(target, status_code=303)
    _set_session(request, response, console, console.sessions.new(key_hash, name))
    return response


async def sign_out(request: Request, console: Console) -> Response:
    visitor = await console.visitor(request)
    form = await _form(request)
    if not same_token(visitor.session.csrf_token, _field(form, "csrf")):
        raise ProblemError(403, "csrf", "The form has expired; reload the page and try again.")
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


async def choose_language(request: Request, console: Console) -> Response:
    lang = request.query_params.get("lang")
    if lang not in LANGUAGES:
        raise views.FilterError(f"lang must be one of {', '.join(LANGUAGES)}.")
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, path="/console", samesite="lax"
    )
    return response


# --- the inbox --------------------------------------------------------------------------------


async def _inbox_rows(
    visitor: Visitor, console: Console, filters: views.InboxFilters, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None, datetime]:
    page_size = str(console.settings.inbox_page_size)
    # Every filter is applied by the alerts service, in its database: the page is exact.
    listed = await visitor.api.get(
        "/v1/alerts", {**filters.upstream_query(), "limit": page_size, "cursor": cursor}
    )
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = listed["items"]
    for alert in rows:
        alert["sla_view"] = views.sla_of(alert, now)
    return rows, listed.get("next_cursor"), now


async def inbox(request: Request, console: Console) -> Response:
    visitor = await console.visitor(request)
    filters = views.parse_filters(request.query_params)
    cursor = request.query_params.get("cursor")
    if cursor is not None and len(cursor) > 512:
        raise views.FilterError("cursor is too long.")
    rows, next_cursor, now = await _inbox_rows(visitor, console, filters, cursor)
    template = "_rows.html" if request.url.path.endswith("/rows") else "inbox.html"
    return console.render(
        request,
        template,
        visitor,
        rows=rows,
        filters=filters,
        query=filters.query(),
        next_cursor=next_cursor,
        now=now,
        statuses=views.STATUSES,
        priorities=views.PRIORITIES,
        channels=views.CHANNELS,
        sla_states=views.SLA_STATES,
        stages=views.JOURNEY_STAGES,
    )


# --- the feedback list ------------------------------------------------------------------------


async def feedback(request: Request, console: Console) -> Response:
    """Stored feedback, filtered as the dashboard's KPI groups: where its feedback numbers
    (volume, sentiment mix, NPS, CSAT, CES, heat map, daily bars) link to."""
    visitor = await console.visitor(request)
    filters = views.parse_feedback_filters(
        request.query_params, request.query_params.getlist("sentiment")
    )
    cursor = request.query_params.get("cursor")
    if cursor is not None and len(cursor) > 512:
        raise views.FilterError("cursor is too long.")
    # Every filter is applied by the alerts service, in its database: the page is exact.
    listed = await visitor.api.get(
        "/v1/feedback",
        {
            **filters.upstream_query(),
            "limit": str(console.settings.inbox_page_size),
            "cursor": cursor,
        },
    )
    return console.render(
        request,
        "feedback.html",
        visitor,
        items=listed["items"],
        filters=filters,
        query=filters.query(),
        next_cursor=listed.get("next_cursor"),
        channels=views.CHANNELS,
        stages=(*views.JOURNEY_STAGES, views.NONE_VALUE),
        sentiments=views.SENTIMENTS,
        rating_types=views.RATING_TYPES,
    )


# --- one alert --------------------------------------------------------------------------------


def _alert_id(request: Request) -> str:
    try:
        return str(uuid.UUID(request.path_params["alert_id"]))
    except ValueError:
        raise AlertsError(404, "alert_not_found", "There is no such alert.") from None


async def _render_alert(
    request: Request,
    console: Console,
    visitor: Visitor,
    alert_id: str,
    *,
    status: int = 200,
    failure: AlertsError | None = None,
    done: str | None = None,
) -> Response:
    detail = await visitor.api.get(f"/v1/alerts/{alert_id}")
    t = Translator(console.language(request))
    feedback = detail["feedback"]
    sentiment = detail.get("sentiment") or {}
    topics = sentiment.get("topics") or []
    # Urgency cues first: where a cue and a topic overlap, the cue is marked.
    cues = views.urgency_cues(
        sentiment.get("urgency_cues") or [],
        lambda kind: t("cue_urgency", kind=t("urgency_cue_" + kind, default=kind)),
    ) + views.topic_cues(topics, lambda topic: t("cue_topic", topic=topic))
    attributes = feedback.get("attributes") or {}
    turns = attributes.get("transcript")
    if not isinstance(turns, list):
        turns = []
    transcript = [
        {"role": str(turn.get("role", "")), "text": views.highlight(str(turn.get("text")), cues)}
        for turn in turns
        if isinstance(turn, dict) and turn.get("text")
    ]
    related = await _related(visitor.api, feedback["id"])
    return console.render(
        request,
        "alert.html",
        visitor,
        status=status,
        alert=detail,
        feedback=feedback,
        sentiment=sentiment,
        topics=topics,
        emotions=views.emotions_of(sentiment),
        urgency_cues=[cue.partition(":") for cue in sentiment.get("urgency_cues") or []],
        highlighted={cue.kind for cue in cues},
        text=views.highlight(feedback.get("text") or "", cues),
        transcript=transcript,
        related=related,
        sla=views.sla_of(detail, datetime.now(UTC)),
        failure=failure,
        done=done if done in ACTIONS else None,
    )


RELATED_LIMIT = 20


async def _related(api: AlertsApi, feedback_id: str) -> dict[str, Any] | None:
    """The customer's other feedback, or None when the alerts service has none to show."""
    try:
        related: dict[str, Any] = await api.get(
            f"/v1/feedback/{feedback_id}/related", {"limit": str(RELATED_LIMIT)}
        )
    except AlertsError as error:
        # The item itself out of the team's sight (a spike's item), or an older alerts
        # service without the route: the page shows the alert without the section.
        if error.status in (403, 404):
            return None
        raise
    return related


async def alert_page(request: Request, console: Console) -> Response:
    visitor = await console.visitor(request)
    return await _render_alert(
        request, console, visitor, _alert_id(request), done=request.query_params.get("done")
    )


def _action_body(action: str, form: FormData) -> tuple[str, dict[str, Any] | None]:
    """The alerts API path suffix and JSON body for a console form."""
    note = _field(form, "note")
    if action == "acknowledge":
        return "acknowledge", None
    if action == "resolve":
        body = {"note": note}
        for name in ("root_cause", "customer_reply"):
            value = _field(form, name)
            if value is not None:
                body[name] = value
        return "resolve", body
    if action == "reopen":
        return "reopen", {"note": note}
    if action == "comment":
        return "comments", {"text": _field(form, "text")}
    if action == "assign":
        values = {name: _field(form, name) for name in ("assignee", "owner", "note")}
        return "assign", {name: value for name, value in values.items() if value is not None}
    values = {"note": note, "to_owner": _field(form, "to_owner")}
    return "escalate", {name: value for name, value in values.items() if value is not None}


async def alert_action(request: Request, console: Console) -> Response:
    visitor = await console.visitor(request)
    alert_id = _alert_id(request)
    action = request.path_params["action"]
    if action not in ACTIONS:
        raise AlertsError(404, "not_found", "There is no such action.")
    form = await _form(request)
    if not same_token(visitor.session.csrf_token, _field(form, "csrf")):
        raise ProblemError(403, "csrf", "The form has expired; reload the page and try again.")
    if not visitor.can_write:
        raise ProblemError(403, "forbidden", "This API key lacks the 'alerts:write' scope.")
    suffix, body = _action_body(action, form)
    try:
        await visitor.api.post(f"/v1/alerts/{alert_id}/{suffix}", body)
    except AlertsError as failure:
        if failure.status not in (409, 422):
            raise
        # The page again, with what went wrong next to the forms, and the status saying so.
        return await _render_alert(
            request, console, visitor, alert_id, status=failure.status, failure=failure
        )
    return RedirectResponse(f"/console/alerts/{alert_id}?done={action}", status_code=303)


# --- the dashboard ----------------------------------------------------------------------------

DIMENSIONS = ("channel", "touchpoint", "journey_stage")
HEAT_MAP = "journey_stage_touchpoint"


async def _kpis(api: AlertsApi, span: views.Range, group_by: str) -> dict[str, Any]:
    start, end = span.bounds()
    report: dict[str, Any] = await api.get(
        "/v1/kpis", {"from": start, "to": end, "group_by": group_by}
    )
    return report


async def _heat_map(api: AlertsApi, span: views.Range) -> dict[str, Any] | None:
    """Negative share per journey stage × touchpoint, if the alerts service can group so."""
    try:
        report = await _kpis(api, span, HEAT_MAP)
    except AlertsError as error:
        if error.status == 422:
            return None
        raise
    cells: dict[tuple[str, str], Mapping[str, Any]] = {}
    for group in report["groups"]:
        stage, _, touchpoint = str(group["key"]).partition("|")
        cells[(stage, touchpoint)] = group
    stages = sorted({stage for stage, _ in cells}, key=_stage_order)
    touchpoints = sorted({touchpoint for _, touchpoint in cells})
    return {"stages": stages, "touchpoints": touchpoints, "cells": cells}


def _stage_order(stage: str) -> tuple[int, str]:
    known = views.JOURNEY_STAGES
    return (known.index(stage) if stage in known else len(known), stage)


async def dashboard(request: Request, console: Console) -> Response:
    visitor = await console.visitor(request)
    today = datetime.now(UTC).date()
    span = views.parse_range(request.query_params, today)
    this_week = views.Range(span.end - timedelta(days=6), span.end)
    last_week = views.Range(this_week.start - timedelta(days=7), this_week.start - timedelta(1))
    buckets = span.buckets()
    api = visitor.api
    (
        by_dimension,
        topics_now,
        topics_before,
        trend,
        heat_map,
        open_page,
        acknowledged_page,
        recent,
    ) = await asyncio.gather(
        asyncio.gather(*(_kpis(api, span, dimension) for dimension in DIMENSIONS)),
        _kpis(api, this_week, "topic"),
        _kpis(api, last_week, "topic"),
        asyncio.gather(*(_kpis(api, bucket, "channel") for bucket in buckets)),
        _heat_map(api, span),
        api.get("/v1/alerts", {"status": "open", "limit": "200"}),
        api.get("/v1/alerts", {"status": "acknowledged", "limit": "200"}),
        api.get("/v1/alerts", {"limit": "200"}),
    )
    reports = dict(zip(DIMENSIONS, by_dimension, strict=True))
    total = reports["channel"]["total"]
    spikes = [
        alert
        for alert in recent["items"]
        if alert.get("kind") == "spike" and span.covers(views.parse_time(alert["created_at"]))
    ][:5]
    bars = views.trend_bars(
        [
            (bucket, report["total"]["sentiment"])
            for bucket, report in zip(buckets, trend, strict=True)
        ]
    )
    range_query = {"from": span.start.isoformat(), "to": span.end.isoformat()}
    return console.render(
        request,
        "dashboard.html",
        visitor,
        span=span,
        today=today,
        total=total,
        reports=reports,
        dimensions=DIMENSIONS,
        open_count=len(open_page["items"]),
        open_more=open_page.get("next_cursor") is not None,
        acknowledged_count=len(acknowledged_page["items"]),
        acknowledged_more=acknowledged_page.get("next_cursor") is not None,
        rising=views.rising_topics(topics_now["groups"], topics_before["groups"]),
        this_week=this_week,
        spikes=spikes,
        bars=bars,
        chart=views,
        heat_map=heat_map,
        range_query=range_query,
        presets=[(days, (today - timedelta(days=days - 1)).isoformat()) for days in (1, 7, 30, 90)],
    )


def install_console(app: FastAPI, settings: ConsoleSettings | None = None) -> Console:
    console = Console(settings or ConsoleSettings())
    app.state.console = console
    routes: list[tuple[str, Handler, list[str]]] = [
        ("/console", root, ["GET"]),
        ("/console/sign-in", sign_in_form, ["GET"]),
        ("/console/sign-in", sign_in, ["POST"]),
        ("/console/sign-out", sign_out, ["POST"]),
        ("/console/language", choose_language, ["GET"]),
        ("/console/inbox", inbox, ["GET"]),
        ("/console/inbox/rows", inbox, ["GET"]),
        ("/console/alerts/{alert_id}", alert_page, ["GET"]),
        ("/console/alerts/{alert_id}/{action}", alert_action, ["POST"]),
        ("/console/feedback", feedback, ["GET"]),
        ("/console/dashboard", dashboard, ["GET"]),
    ]
    for path, handler, methods in routes:
        # RawRoute: matched like an API route (so the access audit sees its template),
        # served as a plain Starlette endpoint.
        app.router.routes.append(
            RawRoute(path, page(handler), methods=methods, include_in_schema=False)
        )
    app.router.add_route(
        "/console/static/{version}/{name}",
        console.assets.serve,
        methods=["GET"],
        include_in_schema=False,
    )
    return console
