"""Tender builders: the staff form's data and the API's body for a new tender, and the
requests that create one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from app.core.types import utcnow


def local(app, moment: datetime) -> str:
    """How a datetime-local input sends `moment` in the centre's time zone."""
    zone = ZoneInfo(app.config["BABEL_DEFAULT_TIMEZONE"])
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def iso(moment: datetime, offset_hours: int = 8) -> str:
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


# --- the staff form ---


def tender_data(app, custodians, **overrides) -> dict:
    now = utcnow()
    publication = now + timedelta(days=1)
    deadline = publication + timedelta(days=20)
    data = {
        "reference": "QH-2025-001",
        "title": "School desks",
        "description": "Desks and chairs for three schools.",
        "budget": "1000000.00",
        "bid_bond_amount": "10000.00",
        "publication_at": local(app, publication),
        "enquiry_deadline": local(app, deadline - timedelta(days=5)),
        "submission_deadline": local(app, deadline),
        "opening_at": local(app, deadline),
        "evaluation_days": "10",
        "lots-0-title": "Desks and chairs",
        "lots-0-budget": "1000000.00",
        "lots-0-ceiling_price": "990000.00",
        "custodian_ids": [str(c.id) for c in custodians],
        "custodian_threshold": "2",
    }
    data.update(overrides)
    return data


def create_tender(client, app, version, custodians, **overrides):
    return client.post(
        f"/centre/tenders/new?version={version.id}", data=tender_data(app, custodians, **overrides)
    )


# --- the API ---


def tender_body(version, custodians, **overrides) -> dict:
    now = utcnow()
    body = {
        "template_version_id": version.id,
        "reference": "HZ-2025-G-001",
        "title": "Office furniture for the city library",
        "description": "Desks, chairs and shelving.",
        "budget": "1000000.00",
        "bid_bond_amount": "10000.00",
        "publication_at": iso(now + timedelta(hours=1)),
        "enquiry_deadline": iso(now + timedelta(days=10)),
        "submission_deadline": iso(now + timedelta(days=25)),
        "opening_at": iso(now + timedelta(days=25, hours=1)),
        "custodian_ids": [c.id for c in custodians],
        "custodian_threshold": 2,
        "lots": [{"title": "Furniture", "ceiling_price": "990000.00"}],
    }
    body.update(overrides)
    return body


def create(client, headers, version, custodians, **overrides):
    return client.post(
        "/api/v1/tenders", json=tender_body(version, custodians, **overrides), headers=headers
    )
