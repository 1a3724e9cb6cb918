"""The audit explorer (app/supervision/explorer.py): events found by tender, person, centre,
action and time, named and labelled in words; the chain verified from the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from app.accounts.models import Role
from app.core.types import utcnow
from app.extensions import db
from app.tenders.suspension import suspend_tender
from tests.conftest import AuthActions
from tests.factories.bids import lib_seal, public_key, registered_bidder, submit, tid, uscc


@pytest.fixture
def world(app, make_tender, make_user, make_centre):
    tender = make_tender(reference="ROAD-7")
    other = make_tender(centre=make_centre(code="FAR"), reference="PARK-2")
    ann = make_user(Role.SUPERVISOR, full_name="Supervisor Ann")
    bidder = registered_bidder(make_user, tender)
    bidder.full_name = "Zhang Secretive"
    db.session.commit()
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    with app.test_request_context():
        submit(tender, bidder, lib_seal(key, tid(tender), uscc(bidder)))
        suspend_tender(ann, tender, "Looking into it.")
        suspend_tender(ann, other, "Elsewhere.")
        db.session.commit()
    client = app.test_client()
    AuthActions(client).login(ann)
    return {"tender": tender, "other": other, "client": client, "bidder": bidder}


def test_search_by_tender_shows_names_and_words_and_hides_who_bid(world):
    client, tender = world["client"], world["tender"]
    page = client.get("/supervision/audit?tender=ROAD-7").get_data(as_text=True)
    assert "Suspended by the supervision authority" in page
    assert "Supervisor Ann" in page
    assert "An envelope arrived" in page
    assert "Zhang Secretive" not in page and world["bidder"].company.name not in page
    assert "Elsewhere" not in page and f">{world['other'].id}</a>" not in page
    assert f'href="/supervision/tenders/{tender.id}"' in page
    # The same tender by its number; an unknown one matches nothing.
    assert "An envelope arrived" in client.get(f"/supervision/audit?tender={tender.id}").text
    assert "No event matches." in client.get("/supervision/audit?tender=NOPE").text


def test_search_by_person_centre_action_and_time(world):
    client = world["client"]
    by_person = client.get("/supervision/audit?actor=ann").text
    assert by_person.count("<code>tender.suspended</code>") == 2
    # A bidder is found through its tender only, never by name.
    assert "No event matches." in client.get("/supervision/audit?actor=Secretive").text
    by_centre = client.get("/supervision/audit?centre=FAR&action=tender.suspended").text
    assert by_centre.count("<code>tender.suspended</code>") == 1
    today = utcnow().date()
    assert (
        "No event matches." in client.get(f"/supervision/audit?to={today - timedelta(days=2)}").text
    )
    assert (
        "Supervisor Ann"
        in client.get(
            f"/supervision/audit?from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
        ).text
    )
    bad = client.get("/supervision/audit?from=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text


def test_the_chain_is_verified_from_the_page_and_its_head_shown(world):
    client = world["client"]
    page = client.get("/supervision/audit").text
    assert 'id="chain-head"' in page
    verified = client.post("/supervision/audit/verify").text
    assert "Every link holds" in verified
