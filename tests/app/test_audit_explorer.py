"""The audit explorer (app/supervision/explorer.py): events found by tender, person, centre,
action and time, named and labelled in words; the chain verified from the page."""

from __future__ import annotations

import json
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


# --- the same search through the API -------------------------------------------------------


def test_the_api_searches_with_the_same_filters_and_hides_who_bid(app, world, make_user):
    from flask_babel import refresh

    from tests.factories.accounts import token_for

    client, tender = app.test_client(), world["tender"]  # a bearer token, no session
    ann = make_user(Role.SUPERVISOR, full_name="Supervisor Bo")
    headers = token_for(ann)

    def search(query: str, **extra) -> dict:
        response = client.get(
            f"/api/v1/supervision/audit?{query}", headers={**headers, **extra.get("more", {})}
        )
        assert response.status_code == 200, response.text
        return response.json

    found = search("tender=ROAD-7")
    actions = [event["action"] for event in found["events"]]
    assert "tender.suspended" in actions and "bid.received" in actions
    assert {event["tender_id"] for event in found["events"]} == {tender.id}
    envelope = next(e for e in found["events"] if e["action"] == "bid.received")
    assert envelope["label"] == "An envelope arrived"
    assert envelope["actor"] == "Bidder" and envelope["role"] == ""
    text = json.dumps(found, ensure_ascii=False)
    assert "Zhang Secretive" not in text and world["bidder"].company.name not in text
    suspended = next(e for e in found["events"] if e["action"] == "tender.suspended")
    assert suspended["actor"] == "Supervisor Ann" and suspended["label"] != "tender.suspended"
    # The same tender by its number; an unknown one, and a bidder's name, match nothing.
    assert search(f"tender={tender.id}")["total"] == found["total"]
    assert search("tender=NOPE")["total"] == 0
    assert search("actor=Secretive")["total"] == 0
    # Person, centre, action and days, as on the page.
    assert search("actor=ann&action=tender.suspended")["total"] == 2
    far = search("centre=FAR&action=tender.suspended")
    assert [e["tender_id"] for e in far["events"]] == [world["other"].id]
    today = utcnow().date()
    assert search(f"to={today - timedelta(days=2)}")["total"] == 0
    assert search(f"from={today - timedelta(days=1)}&actor=ann")["total"] >= 2
    bad = client.get("/api/v1/supervision/audit?from=yesterday", headers=headers)
    assert bad.status_code == 400 and bad.json["error"] == "bad_date"
    # Labels in the caller's language (the test's app context, shared with the client's
    # requests, keeps flask-babel's locale of the previous request: forget it).
    refresh()
    korean = search("action=tender.suspended", more={"Accept-Language": "ko"})
    assert korean["events"][0]["label"] not in ("", suspended["label"], "tender.suspended")


def test_the_api_search_is_paginated_newest_first(world, make_user):
    from tests.factories.accounts import token_for

    headers = token_for(make_user(Role.ADMIN))
    client = world["client"]
    pages = [
        client.get(
            f"/api/v1/supervision/audit?action=tender.suspended&per_page=1&page={n}",
            headers=headers,
        ).json
        for n in (1, 2, 3)
    ]
    assert [(p["page"], p["pages"], p["total"]) for p in pages] == [(1, 2, 2), (2, 2, 2), (3, 2, 2)]
    first, second = pages[0]["events"], pages[1]["events"]
    assert len(first) == len(second) == 1 and pages[2]["events"] == []
    assert first[0]["seq"] > second[0]["seq"]
    assert {first[0]["tender_id"], second[0]["tender_id"]} == {
        world["tender"].id,
        world["other"].id,
    }


@pytest.mark.parametrize("role", [Role.BIDDER, Role.STAFF, Role.EXPERT, Role.CUSTODIAN])
def test_the_api_search_is_for_supervisors_and_administrators_only(world, make_user, role):
    from tests.factories.accounts import token_for

    response = world["client"].get(
        "/api/v1/supervision/audit?tender=ROAD-7", headers=token_for(make_user(role))
    )
    assert response.status_code == 403
    assert "Supervisor Ann" not in response.text
