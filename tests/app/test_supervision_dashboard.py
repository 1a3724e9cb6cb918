"""The supervisors' live dashboard (app/supervision/live.py, monitoring.py): the centre
hierarchy decides what a supervisor sees; envelopes are counted, never named, before the
opening (a crawl of every output); the live stream hears a new envelope; without Redis the
page says it is not live and the figures still come from the database."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from app.accounts.models import Role
from app.clock.models import ClockAlert
from app.core.types import utcnow
from app.extensions import db
from app.tenders.suspension import suspend_tender
from tests.conftest import AuthActions
from tests.factories.accounts import token_for
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc


def envelope(tender, bidder, price="900.00") -> bytes:
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    return lib_seal(key, tid(tender), uscc(bidder), price=price)


@pytest.fixture
def hierarchy(app, make_centre, make_tender, make_user):
    city = make_centre(code="CITY", level="city", name="Harbour City")
    county = make_centre(code="EAST", level="county", parent=city, name="East County")
    other = make_centre(code="WEST", level="county", parent=city, name="West County")
    town = make_centre(code="EAST-T1", level="township", parent=county, name="Riverside")
    tenders = {
        centre.code: make_tender(centre=centre, title=f"Works at {centre.name}")
        for centre in (city, county, other, town)
    }
    return {
        "centres": {"city": city, "county": county, "other": other, "town": town},
        "tenders": tenders,
        "city_supervisor": make_user(Role.SUPERVISOR, centre_id=city.id),
        "county_supervisor": make_user(Role.SUPERVISOR, centre_id=county.id),
    }


def signed_in(app, user):
    client = app.test_client()
    AuthActions(client).login(user)
    return client


def test_a_city_supervisor_sees_its_counties_and_townships_a_county_one_only_its_own(
    app, hierarchy
):
    city_view = signed_in(app, hierarchy["city_supervisor"]).get("/supervision/summary.json")
    assert {c["code"] for c in city_view.get_json()["centres"]} == {
        "CITY",
        "EAST",
        "WEST",
        "EAST-T1",
    }
    county = signed_in(app, hierarchy["county_supervisor"])
    data = county.get("/supervision/summary.json").get_json()
    assert {c["code"] for c in data["centres"]} == {"EAST", "EAST-T1"}
    assert {row["centre"] for row in data["envelopes"]} == {"EAST", "EAST-T1"}
    assert data["stages"]["published"] == 2
    # Another county's page, or a filter on it, is not found; a township of its own is.
    assert county.get("/supervision/centres/WEST").status_code == 404
    assert county.get("/supervision/?centre=WEST").status_code == 404
    assert county.get("/supervision/?category=nonsense").status_code == 400
    town = county.get("/supervision/centres/EAST-T1")
    assert town.status_code == 200
    assert b"Works at Riverside" in town.data and b"Works at East County" not in town.data
    # Filters: category and period.
    assert (
        county.get("/supervision/summary.json?category=works").get_json()["totals"]["tenders"] == 0
    )
    assert county.get("/supervision/summary.json?period=today").get_json()["totals"]["tenders"] == 2


def test_the_dashboard_lists_what_waits_with_links(app, hierarchy):
    tender = hierarchy["tenders"]["EAST"]
    tender.submission_deadline = utcnow() + timedelta(minutes=30)
    tender.opening_at = utcnow() + timedelta(minutes=90)
    db.session.add(
        ClockAlert(
            kind="opening_not_started",
            tender_id=tender.id,
            centre_id=tender.centre_id,
            due_at=utcnow() - timedelta(minutes=1),
        )
    )
    db.session.commit()
    with app.test_request_context():
        suspend_tender(hierarchy["city_supervisor"], hierarchy["tenders"]["EAST-T1"], "Look.")
        db.session.commit()
    client = signed_in(app, hierarchy["county_supervisor"])
    data = client.get("/supervision/summary.json").get_json()
    link = f"/supervision/tenders/{tender.id}"
    assert [r["url"] for r in data["alerts"]] == [link]
    assert data["alerts"][0]["alert_title"] == "Opening not started after its time"
    today = {r["url"] for r in data["deadlines_today"]}
    # Today in the platform's zone: the deadline in 30 minutes may fall after midnight there.
    assert today <= {link}
    assert [r["id"] for r in data["suspended"]] == [hierarchy["tenders"]["EAST-T1"].id]
    page = client.get("/supervision/").get_data(as_text=True)
    assert f'href="{link}"' in page and "Opening not started after its time" in page


def test_no_bidder_identity_reaches_the_dashboard_before_the_opening(
    app, hierarchy, make_user, monkeypatch
):
    """A crawl of every output a supervisor gets before the opening: page, per-centre page,
    tender page and timeline, JSON, CSV, the live stream and the API."""
    monkeypatch.setitem(app.config, "DASHBOARD_EVENTS_SECONDS", 0)
    tender = hierarchy["tenders"]["EAST"]
    bidder = registered_bidder(make_user, tender)
    with app.test_request_context():
        bid = submit(tender, bidder, envelope(tender, bidder))
    company = bidder.company
    secrets = {
        company.name,
        company.registration_number,
        bidder.full_name,
        bidder.email,
        bid.envelope_sha256,
        bid.envelope_sha256[:12],
    }
    supervisor = hierarchy["city_supervisor"]
    client = signed_in(app, supervisor)
    outputs = {}
    for url in (
        "/supervision/",
        "/supervision/centres/EAST",
        "/supervision/summary.json",
        "/supervision/dashboard.csv",
        "/supervision/events",
        f"/supervision/tenders/{tender.id}",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        outputs[url] = response.get_data(as_text=True)
    api = app.test_client().get("/api/v1/supervision/dashboard", headers=token_for(supervisor))
    assert api.status_code == 200
    outputs["api"] = api.get_data(as_text=True)
    for url, text in outputs.items():
        for secret in secrets:
            assert secret not in text, (url, secret)
        assert f'"size": {bid.size}' not in text and f'"size":{bid.size}' not in text
    # The count is there, everywhere.
    assert json.loads(outputs["/supervision/summary.json"])["totals"]["envelopes"] == 1
    assert f'data-envelopes="{tender.id}">1<' in outputs["/supervision/"]
    assert "An envelope arrived" in outputs[f"/supervision/tenders/{tender.id}"]
    rows = list(csv.DictReader(io.StringIO(outputs["/supervision/dashboard.csv"].lstrip("\ufeff"))))
    assert {r["reference"]: r["envelopes"] for r in rows}[tender.reference] == "1"
    assert "event: summary" in outputs["/supervision/events"]


def test_the_stream_sends_a_new_envelope_count(app, hierarchy, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "DASHBOARD_EVENTS_SECONDS", 5)
    tender = hierarchy["tenders"]["EAST-T1"]
    bidder = registered_bidder(make_user, tender)
    client = signed_in(app, hierarchy["county_supervisor"])
    response = client.get("/supervision/events", buffered=False)
    chunks = iter(response.response)
    first = next(chunks).decode()
    assert "event: summary" in first
    start = json.loads(first.split("data: ", 1)[1])
    assert start["totals"]["envelopes"] == 0
    with app.test_request_context():
        submit(tender, bidder, envelope(tender, bidder))
    for chunk in chunks:
        text = chunk.decode()
        if text.startswith("event: summary"):
            data = json.loads(text.split("data: ", 1)[1])
            counts = {row["id"]: row["envelopes"] for row in data["envelopes"]}
            assert counts[tender.id] == 1
            break
    else:
        pytest.fail("no summary after the envelope arrived")
    response.close()


def test_without_redis_the_page_says_it_is_not_live_and_the_figures_still_come(
    app, hierarchy, redis_down
):
    client = signed_in(app, hierarchy["county_supervisor"])
    page = client.get("/supervision/").get_data(as_text=True)
    assert 'data-live="0"' in page
    assert "Not live: the figures are refreshed from the database every 15 seconds." in page
    assert "supervision_live.js" in page
    summary = client.get("/supervision/summary.json")
    assert summary.status_code == 200 and summary.get_json()["stages"]["published"] == 2
    stream = client.get("/supervision/events").get_data(as_text=True)
    assert "event: unavailable" in stream


@pytest.fixture
def redis_down(app):
    """Point the app at a port where no Redis listens (an outage)."""
    import redis as redis_lib

    from app import web

    original = app.extensions["fairbid_redis"]
    app.extensions["fairbid_redis"] = redis_lib.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    web._redis_state.update(checked=0.0, ok=True)
    yield
    app.extensions["fairbid_redis"] = original
    web._redis_state.update(checked=0.0, ok=True)


def test_csv_cells_that_look_like_formulas_are_neutralised():
    from app.supervision.csvfile import csv_text

    text = csv_text(
        ["name", "amount"],
        [['=HYPERLINK("http://x")', 5], ["+1", -3], ["-2+3", 1.5], ["@SUM(A1)", 0], ["ok", 2]],
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1:] == [
        ['\'=HYPERLINK("http://x")', "5"],
        ["'+1", "-3"],
        ["'-2+3", "1.5"],
        ["'@SUM(A1)", "0"],
        ["ok", "2"],
    ]


def test_an_administrator_places_a_supervisor_at_a_centre(app, make_user, make_centre):
    from app.accounts import operations as account_ops
    from app.core.errors import OperationError

    admin, county = make_user(Role.ADMIN), make_centre(level="county")
    with app.test_request_context():
        placed = account_ops.create_user(
            admin,
            email="county-supervisor@example.com",
            full_name="County Supervisor",
            role=Role.SUPERVISOR,
            centre_id=county.id,
            password="a long enough passphrase 42",
        )
        db.session.commit()
        assert placed.centre_id == county.id
        everywhere = account_ops.create_user(
            admin,
            email="city-supervisor@example.com",
            full_name="Any Supervisor",
            role=Role.SUPERVISOR,
            centre_id=None,
            password="a long enough passphrase 42",
        )
        assert everywhere.centre_id is None
        with pytest.raises(OperationError):
            account_ops.create_user(
                admin,
                email="nowhere@example.com",
                full_name="Nowhere",
                role=Role.SUPERVISOR,
                centre_id=999999,
                password="a long enough passphrase 42",
            )
        db.session.rollback()
        # An expert belongs to no centre, whatever the form sent.
        expert = account_ops.create_user(
            admin,
            email="expert-x@example.com",
            full_name="Expert X",
            role=Role.EXPERT,
            centre_id=county.id,
            password="a long enough passphrase 42",
        )
        assert expert.centre_id is None
