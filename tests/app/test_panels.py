"""The panel draw in the app: exclusions before drawing, the seed from the sealing record,
replay from the published data, declines and redraws, declarations, removals, and no
member names in the public replay data."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.accounts.models import Role
from app.audit.models import AuditEvent
from app.bids.operations import SEALING_RECORD_KIND
from app.core.errors import Conflict, OperationError
from app.extensions import db
from app.panels import operations as ops
from app.panels.models import ExpertProfile, MemberStatus, PanelDraw, PanelMember
from app.permissions import PermissionDenied
from app.tenders.documents import blob_store
from app.tenders.models import TenderDocument, TenderRegistration, TenderStatus
from evaluation.draw import replay, seed_from
from tests.conftest import AuthActions

ROOT = "5e" * 32


@pytest.fixture(autouse=True)
def request_context(app):
    # Refusals carry lazily translated messages: give them a request to translate in.
    with app.test_request_context():
        yield


def seal(tender, root: str = ROOT) -> None:
    """A sealing record as the sealing job leaves it (only the root matters here)."""
    stored = blob_store().put_bytes(json.dumps({"record": {"root": root}}).encode())
    db.session.add(
        TenderDocument(
            tender_id=tender.id,
            kind=SEALING_RECORD_KIND,
            title="Sealing record",
            filename="sealing-record.json",
            content_type="application/json",
            size=stored.size,
            sha256=stored.sha256,
        )
    )
    tender.status = TenderStatus.CLOSED
    db.session.commit()


@pytest.fixture
def pool(make_centre, make_user, make_company, make_tender):
    centre, other = make_centre(), make_centre()
    tender = make_tender(centre=centre, keyed=False)
    staff = make_user(Role.STAFF, centre=centre)
    bidder_company = make_company(centre=centre, name="Acme Construction Ltd")
    registered = make_company(centre=centre, name="Beta Works")
    db.session.add(
        TenderRegistration(tender_id=tender.id, company_id=registered.id, registered_by_id=staff.id)
    )
    from app.bids.models import Bid
    from app.core.types import utcnow

    db.session.add(
        Bid(
            tender_id=tender.id,
            company_id=bidder_company.id,
            submitted_by_id=staff.id,
            envelope_sha256="b" * 64,
            size=1,
            received_at=utcnow(),
            receipt="{}",
        )
    )
    db.session.commit()

    def expert(centre_id, specialties="", employer="Independent", available=True):
        user = make_user(Role.EXPERT)
        db.session.add(
            ExpertProfile(
                user_id=user.id,
                centre_id=centre_id,
                specialties=specialties,
                employer=employer,
                available=available,
            )
        )
        db.session.commit()
        return user

    eligible = [expert(centre.id, "civil" if i < 3 else "economic") for i in range(6)]
    eligible.append(expert(None, "civil,economic"))  # the shared city pool
    excluded = [
        expert(other.id, "civil"),  # another centre's pool
        expert(centre.id, "civil", available=False),
        expert(centre.id, "civil", employer="  ACME construction ltd "),
        expert(centre.id, "civil"),
    ]
    ops.declare_relationship(excluded[-1], registered, "shareholder")
    db.session.commit()
    return {"tender": tender, "staff": staff, "eligible": eligible, "excluded": excluded}


def test_exclusions_come_before_the_draw(pool):
    ids = [c.id for c in ops.eligible_experts(pool["tender"])]
    assert ids == sorted(u.id for u in pool["eligible"])


def test_the_draw_is_seeded_by_the_sealing_record_and_replayable(pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    draw = ops.draw_tender_panel(staff, tender, 5, {"civil": 2})
    db.session.commit()
    assert bytes.fromhex(draw.seed) == seed_from(ROOT, draw.seed_inputs["draw_time"])
    assert draw.seed_inputs["merkle_root"] == ROOT
    members = ops.members_of(tender)
    assert [m.position for m in members] == [1, 2, 3, 4, 5]
    ids = [m.user_id for m in members]
    assert set(ids) <= {u.id for u in pool["eligible"]}
    civil = {u.id for u in pool["eligible"][:3]} | {pool["eligible"][-1].id}
    assert len(set(ids) & civil) >= 2
    assert replay(draw.eligible, draw.size, draw.quotas, draw.seed)["panel"] == ids
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.drawn"))
    assert event is not None
    with pytest.raises(Conflict):
        ops.draw_tender_panel(staff, tender, 5, {})


def test_the_draw_is_refused_when_it_cannot_be_fair(pool, make_user):
    tender, staff = pool["tender"], pool["staff"]
    with pytest.raises(Conflict, match="closed or opened"):
        ops.draw_tender_panel(staff, tender, 5, {})
    tender.status = TenderStatus.CLOSED
    db.session.commit()
    with pytest.raises(Conflict, match="sealing record"):
        ops.draw_tender_panel(staff, tender, 5, {})
    seal(tender)
    with pytest.raises(OperationError, match="odd"):
        ops.draw_tender_panel(staff, tender, 4, {})
    with pytest.raises(OperationError, match="odd"):
        ops.draw_tender_panel(staff, tender, 3, {})
    with pytest.raises(Conflict, match="cannot be drawn"):
        ops.draw_tender_panel(staff, tender, 9, {})
    with pytest.raises(Conflict, match="cannot be drawn"):
        ops.draw_tender_panel(staff, tender, 5, {"legal": 1})
    with pytest.raises(OperationError, match="Unknown specialty"):
        ops.draw_tender_panel(staff, tender, 5, {"astrology": 1})
    other_staff = make_user(Role.STAFF)
    with pytest.raises(PermissionDenied):
        ops.draw_tender_panel(other_staff, tender, 5, {})
    assert db.session.scalar(select(PanelDraw)) is None


def test_decline_redraws_and_the_public_json_replays_it(app, pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {"civil": 2})
    db.session.commit()
    # An open seat: a quota seat's redraw may find no specialist left (and is refused).
    first = ops.members_of(tender)[-1]
    expert = first.user
    client = app.test_client()
    AuthActions(client).login(expert)
    page = client.get("/panels/invitations")
    assert page.status_code == 200 and tender.reference.encode() in page.data
    response = client.post(f"/panels/tenders/{tender.id}/decline", data={"reason": "Abroad"})
    assert response.status_code == 302
    members = ops.members_of(tender)
    declined = next(m for m in members if m.user_id == expert.id)
    replacement = next(
        m for m in members if m.position == first.position and m.status == MemberStatus.INVITED
    )
    assert declined.status == MemberStatus.DECLINED and declined.declined_reason == "Abroad"
    assert replacement.user_id != expert.id
    assert replacement.drawn_for == first.drawn_for

    public = app.test_client().get(f"/panels/tenders/{tender.id}/draw.json")
    assert public.status_code == 200
    data = public.get_json()
    assert data["redraws"] == [{"declined": expert.id}]
    replayed = replay(data["eligible"], data["size"], data["quotas"], data["seed"], data["redraws"])
    current = [
        m.user_id
        for m in sorted(members, key=lambda m: m.position)
        if m.status != MemberStatus.DECLINED
    ]
    assert replayed["panel"] == current
    for user in pool["eligible"]:
        assert user.full_name.encode() not in public.data
        assert user.email.encode() not in public.data
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.declined"))


def test_declaration_before_anything_and_removal_with_a_reason(app, pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    first, second = ops.members_of(tender)[:2]
    client = app.test_client()
    AuthActions(client).login(first.user)
    assert not ops.may_see_tender(first.user, tender)
    assert client.post(f"/panels/tenders/{tender.id}/accept").status_code == 302
    response = client.post(f"/panels/tenders/{tender.id}/declare", data={"no_conflict": "y"})
    assert response.status_code == 302
    db.session.refresh(first)
    assert first.conflict_declared_at is not None
    assert ops.may_see_tender(first.user, tender)
    declared = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "panel.conflict_declared")
    )
    assert declared is not None

    # Declaring a conflict removes the member at once.
    ops.accept_invitation(second.user, tender)
    ops.declare_conflict(second.user, tender, False, "My brother directs a bidder.")
    db.session.commit()
    assert second.status == MemberStatus.REMOVED

    # A conflict discovered later: staff remove with a reason, through the page.
    staff_client = app.test_client()
    AuthActions(staff_client).login(staff)
    page = staff_client.get(f"/panels/tenders/{tender.id}")
    assert page.status_code == 200 and draw_seed(tender).encode() in page.data
    response = staff_client.post(
        f"/panels/tenders/{tender.id}/remove",
        data={"member": first.id, "reason": "Shareholder of a bidder."},
    )
    assert response.status_code == 302
    db.session.refresh(first)
    assert first.status == MemberStatus.REMOVED
    assert first.removed_reason == "Shareholder of a bidder."
    assert not ops.may_see_tender(first.user, tender)
    removed = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "panel.member_removed")
    )
    assert json.loads(removed.data)["reason"] == "Shareholder of a bidder."


def draw_seed(tender) -> str:
    return ops.draw_of(tender).seed


def test_staff_draw_through_the_page(app, pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    client = app.test_client()
    AuthActions(client).login(staff)
    page = client.get(f"/panels/tenders/{tender.id}")
    assert page.status_code == 200 and b"quota_civil" in page.data
    response = client.post(
        f"/panels/tenders/{tender.id}/draw", data={"size": "5", "quota_civil": "1"}
    )
    assert response.status_code == 302
    assert db.session.scalar(select(PanelMember).where(PanelMember.tender_id == tender.id))
    response = client.post(f"/panels/tenders/{tender.id}/draw", data={"size": "5"})
    assert response.status_code == 303  # already drawn: refused with a message


def test_staff_put_experts_in_their_centre_pool(app, make_user, make_centre):
    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    expert = make_user(Role.EXPERT)
    client = app.test_client()
    AuthActions(client).login(staff)
    response = client.post(
        "/panels/pool",
        data={
            "email": expert.email,
            "specialties": ["civil", "economic"],
            "employer": "Design Institute",
            "available": "y",
        },
    )
    assert response.status_code == 302
    profile = db.session.get(ExpertProfile, expert.id)
    assert profile.centre_id == centre.id
    assert profile.specialty_set == {"civil", "economic"}
    assert b"Design Institute" in client.get("/panels/pool").data
    # Only administrators manage the shared city pool.
    response = client.post(
        "/panels/pool", data={"email": expert.email, "city_pool": "y", "available": "y"}
    )
    assert response.status_code == 403
    assert db.session.get(ExpertProfile, expert.id).centre_id == centre.id


def test_a_decline_with_no_specialist_left_leaves_the_seat_vacant(pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {"civil": 4})  # every civil expert is drawn
    db.session.commit()
    member = next(m for m in ops.members_of(tender) if m.drawn_for == "civil")
    assert ops.decline_invitation(member.user, tender, "Ill") is None
    db.session.commit()
    assert member.status == MemberStatus.DECLINED
    assert len(ops.members_of(tender)) == 5
    assert ops.draw_of(tender).redraws == []
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.declined"))
    assert json.loads(event.data)["replacement"] is None


def test_replay_json_is_404_before_the_draw_and_for_drafts(app, pool, make_tender):
    client = app.test_client()
    assert client.get(f"/panels/tenders/{pool['tender'].id}/draw.json").status_code == 404
    draft = make_tender(status="draft", keyed=False)
    assert client.get(f"/panels/tenders/{draft.id}/draw.json").status_code == 404
