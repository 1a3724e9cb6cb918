"""The supervisors' live dashboard: across the centres a supervisor oversees, what stands
where now (app.supervision.monitoring), updated over server-sent events fed by Redis pub/sub
(every audit event, tender event and intervention is published after its commit). Without
Redis the page says it is not live and its script reloads the figures from the database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from flask import current_app, render_template, request, stream_with_context
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.models import User
from app.audit import AUDIT_CHANNEL
from app.extensions import db, redis_client
from app.permissions import Permission, require
from app.portal.queries import CATEGORIES
from app.supervision import monitoring
from app.supervision.csvfile import csv_response
from app.supervision.views import bp
from app.tenders.models import Tender
from app.tenders.operations import TENDER_CHANNEL
from app.tenders.suspension import SUPERVISION_CHANNEL
from app.web import redis_available

CHANNELS = (AUDIT_CHANNEL, TENDER_CHANNEL, SUPERVISION_CHANNEL)


def scope_from_request(centre_code: str | None = None) -> monitoring.Scope:
    require(current_user, Permission.VIEW_ALL_CENTRES)
    filters = monitoring.filters_from(request.args)
    if centre_code is not None:
        filters["centre_code"] = centre_code
    return monitoring.scope_for(current_user, **filters)


def _render(scope: monitoring.Scope, centre=None) -> str:
    return render_template(
        "supervision/dashboard.html",
        scope=scope,
        data=monitoring.snapshot(scope),
        centre=centre,
        jurisdiction=monitoring.jurisdiction(current_user),
        categories=CATEGORIES,
        periods=monitoring.PERIODS,
        waiting_label=monitoring.waiting_label,
        live=redis_available(),
        poll_seconds=current_app.config.get("DASHBOARD_POLL_SECONDS", 15),
    )


@bp.route("/")
def dashboard() -> str:
    return _render(scope_from_request())


@bp.route("/centres/<centre_code>")
def centre(centre_code: str) -> str:
    scope = scope_from_request(centre_code[:32])
    return _render(scope, centre=scope.centre)


@bp.route("/summary.json")
def summary() -> dict:
    """The dashboard's figures as JSON: the page's fallback when the stream is not live."""
    return monitoring.snapshot(scope_from_request())


@bp.route("/dashboard.csv")
def dashboard_csv() -> Response:
    scope = scope_from_request()
    data = monitoring.snapshot(scope)
    waiting = {row["id"]: row["waiting_for"] for row in data["evaluations_waiting"]}
    objections = {row["id"]: row["objections"] for row in data["objections_open"]}
    envelopes = {row["id"]: row["envelopes"] for row in data["envelopes"]}
    alerts: dict[int, list[str]] = {}
    for row in data["alerts"]:
        alerts.setdefault(row["id"], []).append(row["alert"])
    tenders = db.session.scalars(monitoring.tenders_query(scope).order_by(Tender.id))
    codes = {c.id: c.code for c in scope.centres}
    return csv_response(
        "dashboard.csv",
        [
            "tender_id",
            "reference",
            "title",
            "centre",
            "category",
            "status",
            "bid_deadline",
            "opening_at",
            "envelopes",
            "evaluation_waiting_for",
            "open_objections",
            "alerts",
        ],
        (
            [
                t.id,
                t.reference,
                t.title,
                codes.get(t.centre_id, ""),
                t.category,
                t.status,
                t.submission_deadline.isoformat(),
                t.opening_at.isoformat(),
                envelopes.get(t.id, ""),
                waiting.get(t.id, ""),
                objections.get(t.id, 0),
                " ".join(alerts.get(t.id, [])),
            ]
            for t in tenders
        ),
    )


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, sort_keys=True)}\n\n"


@bp.route("/events")
def events() -> Response:
    """Server-sent events: the figures now, then again whenever an event published on Redis
    changes them, until the stream times out (the browser reconnects). `unavailable` when
    Redis is down: the page then polls `summary.json`."""
    scope = scope_from_request()
    centre_ids = set(scope.centre_ids)
    seconds = current_app.config.get("DASHBOARD_EVENTS_SECONDS", 25)
    # The response's after-request hook ends the request's session (app.events) before the
    # stream runs: the stream loads its supervisor and scope again from plain values.
    user_id = current_user.id
    filters = monitoring.filters_from(request.args)

    def relevant(message: dict) -> bool:
        try:
            data = json.loads(message["data"])
        except (TypeError, ValueError):
            return False
        centre_id = data.get("centre_id", data.get("centre"))
        # Tender events carry no centre: recomputing costs a few counts, so they count.
        return centre_id is None or centre_id in centre_ids

    def stream() -> Iterator[str]:
        scope = monitoring.scope_for(db.session.get(User, user_id), **filters)
        pubsub = redis_client.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(*CHANNELS)
            last = monitoring.snapshot(scope)
            db.session.rollback()  # end the read: the next snapshot sees new commits
            yield "retry: 3000\n" + _sse("summary", last)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    yield ": keep-alive\n\n"
                    continue
                if not relevant(message):
                    continue
                # A burst (an opening, a deadline) becomes one update.
                while pubsub.get_message(timeout=0.05) is not None:
                    pass
                current = monitoring.snapshot(scope)
                db.session.rollback()
                if {**current, "generated_at": ""} != {**last, "generated_at": ""}:
                    last = current
                    yield _sse("summary", current)
        except Exception:  # Redis down: the page falls back to polling the database
            yield _sse("unavailable", {})
        finally:
            pubsub.close()

    response = Response(stream_with_context(stream()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
