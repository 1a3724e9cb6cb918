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
from tests.factories.accounts import token_for
from tests.factories.tenders import create, create_tender, tender_data

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

    public = published_in_full(app, tender)
    assert public.status_code == 200
    data = public.get_json()
    assert data["redraws"] == [{"vacated": expert.id, "cause": "declined"}]
    assert data["non_technical"] == ["legal"]
    replayed = replay(
        data["eligible"],
        data["size"],
        data["quotas"],
        data["seed"],
        data["redraws"],
        data["non_technical"],
    )
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


def published_in_full(app, tender, status=TenderStatus.AWARDED):
    """draw.json as it is once the result is decided (the tender's status set for the
    request only, then put back)."""
    before = tender.status
    tender.status = status
    db.session.commit()
    try:
        return app.test_client().get(f"/panels/tenders/{tender.id}/draw.json")
    finally:
        tender.status = before
        db.session.commit()


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


def _profile_state(expert):
    db.session.expire_all()
    profile = db.session.get(ExpertProfile, expert.id)
    return (profile.centre_id, profile.specialties, profile.employer, profile.available)


def test_staff_edit_only_their_own_centres_experts(app, make_user, make_centre):
    """Staff of centre B can neither take an expert of centre A into B's pool nor change
    their specialty, employer or availability; the city pool is the administrators'."""
    centre_a, centre_b = make_centre(), make_centre()
    staff_a = make_user(Role.STAFF, centre=centre_a)
    staff_b = make_user(Role.STAFF, centre=centre_b)
    admin = make_user(Role.ADMIN)
    ours, shared = make_user(Role.EXPERT), make_user(Role.EXPERT)
    registered_at_a = make_user(Role.EXPERT)
    registered_at_a.centre_id = centre_a.id
    ops.save_expert_profile(
        staff_a, ours, centre_id=centre_a.id, specialties=["civil"], employer="A", available=True
    )
    ops.save_expert_profile(
        admin, shared, centre_id=None, specialties=["economic"], employer="C", available=True
    )
    db.session.commit()
    before = {u.id: _profile_state(u) for u in (ours, shared)}

    client = app.test_client()
    AuthActions(client).login(staff_b)
    takeover = {"specialties": ["medical"], "employer": "Centre B Institute"}  # available: off
    for expert, message in (
        (ours, b"belongs to another centre"),
        (shared, b"only administrators edit the profile"),
        (registered_at_a, b"belongs to another centre"),
    ):
        response = client.post("/panels/pool", data={"email": expert.email, **takeover})
        assert response.status_code == 303
        assert message in client.get(response.headers["Location"]).data
    assert {u.id: _profile_state(u) for u in (ours, shared)} == before
    assert db.session.get(ExpertProfile, registered_at_a.id) is None
    assert not db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "panel.expert_profile_saved", AuditEvent.actor_id == staff_b.id
        )
    ).all()
    # The operation refuses the same, with stable codes.
    for expert, code in ((ours, "other_centre_expert"), (shared, "city_pool_expert")):
        with pytest.raises(OperationError) as refused:
            ops.save_expert_profile(
                staff_b, expert, centre_id=centre_b.id, specialties=[], employer="", available=False
            )
        assert (refused.value.code, refused.value.status) == (code, 403)
    db.session.rollback()
    # Staff of A still edit their own expert; administrators edit anyone's.
    ops.save_expert_profile(
        staff_a, ours, centre_id=centre_a.id, specialties=["civil"], employer="A2", available=False
    )
    with pytest.raises(OperationError):
        ops.save_expert_profile(
            staff_a, shared, centre_id=centre_a.id, specialties=[], employer="", available=True
        )
    ops.save_expert_profile(
        admin, ours, centre_id=None, specialties=["civil"], employer="City", available=True
    )
    db.session.commit()
    assert _profile_state(ours) == (None, "civil", "City", True)
    # An expert in no pool yet can join any centre's.
    free = make_user(Role.EXPERT)
    response = client.post("/panels/pool", data={"email": free.email, "available": "y"})
    assert response.status_code == 302
    assert _profile_state(free)[0] == centre_b.id


def test_the_pool_through_the_api(app, make_user, make_centre):
    centre_a, centre_b = make_centre(), make_centre()
    staff_a = make_user(Role.STAFF, centre=centre_a)
    staff_b = make_user(Role.STAFF, centre=centre_b)
    expert = make_user(Role.EXPERT)
    client = app.test_client()
    url = f"/api/v1/experts/{expert.id}/profile"
    body = {"specialties": ["civil"], "employer": "A Institute", "available": True}
    answer = client.put(url, json=body, headers=token_for(staff_a))
    assert answer.status_code == 200
    assert answer.get_json()["centre_id"] == centre_a.id
    before = _profile_state(expert)
    # Staff of B: refused with a stable code, nothing changed, not even the availability.
    takeover = {"specialties": ["medical"], "employer": "B", "available": False}
    answer = client.put(url, json=takeover, headers=token_for(staff_b))
    assert answer.status_code == 403
    assert answer.get_json()["error"] == "other_centre_expert"
    assert _profile_state(expert) == before
    answer = client.put(url, json={**takeover, "city_pool": True}, headers=token_for(staff_b))
    assert answer.status_code == 403 and _profile_state(expert) == before
    # The pools listed: A's staff see the expert, B's do not.
    listed = client.get("/api/v1/experts/pool", headers=token_for(staff_a)).get_json()
    assert [p["user_id"] for p in listed["experts"]] == [expert.id]
    listed = client.get("/api/v1/experts/pool", headers=token_for(staff_b)).get_json()
    assert listed["experts"] == [] and listed["total"] == 0
    # Bad input: a clear 422 (the API's validation answer), nothing stored.
    answer = client.put(url, json={"specialties": ["astrology"]}, headers=token_for(staff_a))
    assert answer.status_code == 422 and _profile_state(expert) == before
    assert (
        client.put(
            "/api/v1/experts/999999/profile", json={}, headers=token_for(staff_a)
        ).status_code
        == 404
    )


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
    draw = ops.draw_of(tender)
    # The attempt is recorded (without using the stream), so a replay finds the seat vacant.
    assert draw.redraws == [
        {
            "vacated": member.user_id,
            "cause": "declined",
            "counter": draw.counter,
            "replacement": None,
        }
    ]
    assert ops.vacant_positions(tender) == [member.position]
    replayed = replay(draw.eligible, 5, draw.quotas, draw.seed, ops.full_draw(draw)["redraws"])
    assert replayed["panel"][member.position - 1] is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.declined"))
    assert json.loads(event.data)["replacement"] is None
    assert json.loads(event.data)["vacant"] == "none_eligible"


def test_replay_json_is_404_before_the_draw_and_for_drafts(app, pool, make_tender):
    client = app.test_client()
    assert client.get(f"/panels/tenders/{pool['tender'].id}/draw.json").status_code == 404
    draft = make_tender(status="draft", keyed=False)
    assert client.get(f"/panels/tenders/{draft.id}/draw.json").status_code == 404


# --- panel size, two-thirds rule, recent service, refills ---------------------------------


def nothing_stored(tender) -> bool:
    return (
        db.session.scalar(select(PanelDraw).where(PanelDraw.tender_id == tender.id)) is None
        and db.session.scalar(select(PanelMember).where(PanelMember.tender_id == tender.id)) is None
        and db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.drawn")) is None
    )


def allow_template_size(tender, value) -> None:
    tender.template_version.yaml_text = f"key: t\npanel_min_size: {value}\n"
    db.session.commit()


def test_panel_size_follows_the_template(pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    assert ops.panel_size_rule(tender) == (5, 5)
    for size in (1, 3, 4, 6):
        with pytest.raises(OperationError, match="odd number of members, at least 5"):
            ops.draw_tender_panel(staff, tender, size, {})
    assert nothing_stored(tender)
    allow_template_size(tender, 7)
    assert ops.panel_size_rule(tender) == (7, 7)
    with pytest.raises(OperationError, match="at least 7"):
        ops.draw_tender_panel(staff, tender, 5, {})
    allow_template_size(tender, 4)  # not a valid template value: the rule stays at 5
    assert ops.panel_size_rule(tender) == (5, 5)
    allow_template_size(tender, 3)
    assert ops.panel_size_rule(tender) == (3, 5)
    with pytest.raises(OperationError, match="odd number of members, at least 3"):
        ops.draw_tender_panel(staff, tender, 4, {})
    assert nothing_stored(tender)
    draw = ops.draw_tender_panel(staff, tender, 3, {})
    db.session.commit()
    assert draw.size == 3 and len(ops.members_of(tender)) == 3


def test_the_default_size_is_five(pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    assert ops.draw_tender_panel(staff, tender).size == 5


def test_template_validation_of_panel_min_size():
    from app.tender_templates import load_template
    from app.tender_templates.validation import validate_template

    with open("app/tender_templates/builtin/goods.yaml", encoding="utf-8") as handle:
        doc = load_template(handle.read())
    assert validate_template(doc) == []
    for good in (3, 5, 7, 9):
        assert validate_template({**doc, "panel_min_size": good}) == []
    for bad in (1, 2, 4, 6, 53, "5"):
        errors = validate_template({**doc, "panel_min_size": bad})
        assert [e.path for e in errors] == ["panel_min_size"], bad


def make_lawyers(pool, count):
    """Turn `count` of the eligible experts into lawyers only (no technical specialty)."""
    for user in pool["eligible"][:count]:
        db.session.get(ExpertProfile, user.id).specialties = "legal"
    db.session.commit()


def test_quotas_that_break_the_two_thirds_rule_are_refused(pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    with pytest.raises(OperationError, match="At least 4 of the 5 seats") as caught:
        ops.draw_tender_panel(staff, tender, 5, {"legal": 2})
    assert caught.value.code == "two_thirds"
    assert "at most 1" in str(caught.value.message)
    allow_template_size(tender, 3)
    with pytest.raises(OperationError, match="At least 2 of the 3 seats"):
        ops.draw_tender_panel(staff, tender, 3, {"legal": 2})
    assert nothing_stored(tender)


def test_free_seats_still_satisfy_the_two_thirds_rule(pool):
    tender, staff = pool["tender"], pool["staff"]
    make_lawyers(pool, 2)  # 2 lawyers, 5 technical or economic experts
    seal(tender)
    draw = ops.draw_tender_panel(staff, tender, 5, {"legal": 1})
    db.session.commit()
    members = ops.members_of(tender)
    lawyers = {u.id for u in pool["eligible"][:2]}
    by_seat = {m.drawn_for for m in members}
    assert by_seat == {"legal", "technical_economic"}
    assert sum(m.user_id not in lawyers for m in members) >= 4
    assert [m.drawn_for for m in members].count("technical_economic") == 4
    replayed = replay(draw.eligible, 5, draw.quotas, draw.seed)
    assert replayed["panel"] == [m.user_id for m in members]
    assert replayed["drawn_for"] == [m.drawn_for for m in members]


def test_a_pool_without_enough_technical_experts_is_refused(pool):
    tender, staff = pool["tender"], pool["staff"]
    make_lawyers(pool, 4)  # 4 lawyers, 3 technical or economic experts: 4 are needed
    seal(tender)
    with pytest.raises(Conflict, match="needs 4 more technical or economic experts") as caught:
        ops.draw_tender_panel(staff, tender, 5, {})
    assert "only 3 are eligible" in str(caught.value.message)
    assert caught.value.code == "cannot_draw"
    assert nothing_stored(tender)


def serve(tender, user, status=MemberStatus.ACCEPTED, days_ago=10) -> None:
    """A past panel of `tender` with `user` on it, drawn `days_ago` days ago."""
    from datetime import timedelta

    from app.core.types import utcnow

    db.session.add(
        PanelDraw(
            tender_id=tender.id,
            size=5,
            quotas={},
            seed="00" * 32,
            seed_inputs={},
            eligible=[],
            redraws=[],
            counter=0,
            drawn_at=utcnow() - timedelta(days=days_ago),
            drawn_by_id=user.id,
        )
    )
    db.session.add(PanelMember(tender_id=tender.id, user_id=user.id, position=1, status=status))
    db.session.commit()


def test_recent_service_for_the_same_procuring_entity_excludes(app, pool, make_tender):
    tender, eligible = pool["tender"], pool["eligible"]
    tender.procuring_entity = "City Library"
    db.session.commit()
    sat = eligible[0]
    serve(make_tender(keyed=False, procuring_entity="  city   LIBRARY "), sat)
    serve(make_tender(keyed=False, procuring_entity="City Library"), eligible[1], days_ago=200)
    serve(make_tender(keyed=False, procuring_entity="City Hospital"), eligible[2])
    serve(
        make_tender(keyed=False, procuring_entity="City Library"),
        eligible[3],
        status=MemberStatus.REMOVED,
    )
    serve(
        make_tender(keyed=False, procuring_entity="City Library"),
        eligible[4],
        MemberStatus.DECLINED,
    )
    ids, excluded = ops.screen_experts(tender)
    assert sat.id not in {c.id for c in ids}
    assert {"id": sat.id, "reasons": ["recent_service"]} in excluded
    assert {c.id for c in ids} == {u.id for u in eligible} - {sat.id}
    # The period is configurable: 250 days reach the older panel too.
    app.config["PANEL_COOLDOWN_DAYS"] = 250
    ids, _ = ops.screen_experts(tender)
    assert {c.id for c in ids} == {u.id for u in eligible} - {sat.id, eligible[1].id}
    app.config["PANEL_COOLDOWN_DAYS"] = 180
    # No procuring entity: nobody is excluded for recent service.
    tender.procuring_entity = ""
    db.session.commit()
    assert {c.id for c in ops.eligible_experts(tender)} == {u.id for u in eligible}


def test_the_draw_records_every_exclusion_with_its_reasons(app, pool, make_tender):
    tender, staff, eligible, excluded = (
        pool["tender"],
        pool["staff"],
        pool["eligible"],
        pool["excluded"],
    )
    tender.procuring_entity = "City Library"
    db.session.commit()
    serve(make_tender(keyed=False, procuring_entity="City Library"), eligible[-1])
    seal(tender)
    draw = ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    assert draw.excluded == sorted(
        [
            {"id": excluded[2].id, "reasons": ["bidder_employer"]},
            {"id": excluded[3].id, "reasons": ["bidder_relationship"]},
            {"id": eligible[-1].id, "reasons": ["recent_service"]},
        ],
        key=lambda e: e["id"],
    )
    assert eligible[-1].id not in {e["id"] for e in draw.eligible}
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.drawn"))
    assert json.loads(event.data)["excluded"] == draw.excluded
    public = published_in_full(app, tender).get_json()
    assert public["excluded"] == {
        "bidder_employer": 1,
        "bidder_relationship": 1,
        "recent_service": 1,
    }
    client = app.test_client()
    AuthActions(client).login(staff)
    page = client.get(f"/panels/tenders/{tender.id}").data.decode()
    assert "recently sat on a panel for the same procuring entity" in page
    assert excluded[2].full_name in page


def current_panel(tender) -> list[int | None]:
    """The seat holders now, by position (None: vacant)."""
    draw = ops.draw_of(tender)
    holders = {
        m.position: m.user_id
        for m in ops.members_of(tender)
        if m.status in (MemberStatus.INVITED, MemberStatus.ACCEPTED)
    }
    return [holders.get(p) for p in range(1, draw.size + 1)]


def replay_published(app, tender) -> dict:
    data = published_in_full(app, tender).get_json()
    return replay(
        data["eligible"],
        data["size"],
        data["quotas"],
        data["seed"],
        data["redraws"],
        data["non_technical"],
    )


def test_a_declared_conflict_refills_the_seat_and_replays(app, pool, make_user):
    tender, staff = pool["tender"], pool["staff"]
    # Civil experts to spare, so the seat can be refilled whatever the draw took.
    for _ in range(4):
        spare = make_user(Role.EXPERT)
        db.session.add(
            ExpertProfile(user_id=spare.id, centre_id=tender.centre_id, specialties="civil")
        )
    db.session.commit()
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {"civil": 1})
    db.session.commit()
    member = ops.members_of(tender)[0]
    client = app.test_client()
    AuthActions(client).login(member.user)
    assert client.post(f"/panels/tenders/{tender.id}/accept").status_code == 302
    response = client.post(
        f"/panels/tenders/{tender.id}/declare",
        data={"statement": "I advised a bidder last year."},
        follow_redirects=True,
    )
    assert b"you have left the panel" in response.data
    db.session.refresh(member)
    assert member.status == MemberStatus.REMOVED
    draw = ops.draw_of(tender)
    refill = ops.refill_of(draw, member)
    assert refill["cause"] == "conflict" and refill["replacement"] is not None
    replacement = ops.member_of_id(tender, refill["replacement"])
    assert replacement.position == member.position
    assert replacement.drawn_for == member.drawn_for == "civil"
    assert replacement.status == MemberStatus.INVITED
    assert "civil" in db.session.get(ExpertProfile, replacement.user_id).specialty_set
    assert draw.counter > refill["counter"]
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "panel.conflict_declared")
    )
    assert json.loads(event.data)["replacement"] == replacement.user_id
    assert json.loads(event.data)["counter"] == refill["counter"]
    assert replay_published(app, tender)["panel"] == current_panel(tender)


def test_staff_removal_refills_the_seat_and_voids_the_scores(app, pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    first, second = ops.members_of(tender)[:2]
    ops.accept_invitation(second.user, tender)
    ops.decline_invitation(first.user, tender, "Travelling")  # one refill first
    db.session.commit()
    client = app.test_client()
    AuthActions(client).login(staff)
    response = client.post(
        f"/panels/tenders/{tender.id}/remove",
        data={"member": second.id, "reason": "Director of a bidder's parent company."},
        follow_redirects=True,
    )
    assert b"A replacement has been drawn for the seat" in response.data
    db.session.refresh(second)
    assert second.status == MemberStatus.REMOVED
    draw = ops.draw_of(tender)
    assert [r["cause"] for r in draw.redraws] == ["declined", "removed"]
    assert None not in current_panel(tender)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.member_removed"))
    data = json.loads(event.data)
    assert data["scores_void"] is True and "void" in data["note"]
    assert data["replacement"] == current_panel(tender)[second.position - 1]
    assert replay_published(app, tender)["panel"] == current_panel(tender)
    # A declined expert holds no seat: there is nothing to remove.
    with pytest.raises(Conflict, match="declined"):
        ops.remove_member(staff, tender, first, "Anything")


def test_when_nobody_is_left_the_removed_members_seat_stays_vacant(app, pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 7, {})  # all 7 eligible experts are drawn
    db.session.commit()
    member = ops.members_of(tender)[3]
    client = app.test_client()
    AuthActions(client).login(staff)
    response = client.post(
        f"/panels/tenders/{tender.id}/remove",
        data={"member": member.id, "reason": "Shareholder of a bidder."},
        follow_redirects=True,
    )
    assert b"The seat stays vacant" in response.data
    assert ops.vacant_positions(tender) == [4]
    assert b"Seat 4 is vacant." in client.get(f"/panels/tenders/{tender.id}").data
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "panel.member_removed"))
    assert json.loads(event.data)["vacant"] == "none_eligible"
    replayed = replay_published(app, tender)
    assert replayed["panel"] == current_panel(tender)
    assert replayed["panel"][3] is None


def test_no_refill_once_scoring_has_locked(app, pool):
    from app.evaluations.models import Evaluation, EvaluationStage

    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    first, second = ops.members_of(tender)[:2]
    evaluation = Evaluation(tender_id=tender.id, stage=EvaluationStage.SCORING)
    db.session.add(evaluation)
    db.session.commit()
    assert not ops.scoring_locked(tender)
    ops.remove_member(staff, tender, first, "Conflict found during scoring.")
    db.session.commit()
    assert ops.vacant_positions(tender) == []  # refilled while scoring is open
    evaluation.stage = EvaluationStage.UNBLINDED
    db.session.commit()
    assert ops.scoring_locked(tender)
    counter = ops.draw_of(tender).counter
    client = app.test_client()
    AuthActions(client).login(staff)
    response = client.post(
        f"/panels/tenders/{tender.id}/remove",
        data={"member": second.id, "reason": "Conflict found after unblinding."},
        follow_redirects=True,
    )
    assert b"seats are no longer refilled" in response.data
    db.session.refresh(second)
    draw = ops.draw_of(tender)
    assert ops.vacant_positions(tender) == [second.position]
    assert draw.counter == counter and len(draw.redraws) == 1
    assert ops.refill_of(draw, second) is None
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "panel.member_removed")
        .order_by(AuditEvent.seq)  # a table's rows come in no set order without it
    ).all()
    assert json.loads(events[-1].data)["vacant"] == "scoring_locked"
    assert json.loads(events[-1].data)["scores_void"] is True
    # The replay shows who was drawn for each seat; the vacancy is the members' status.
    assert replay_published(app, tender)["panel"][second.position - 1] == second.user_id


def test_bad_removals_change_nothing(pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    member = ops.members_of(tender)[0]
    redraws = list(ops.draw_of(tender).redraws)
    with pytest.raises(OperationError, match="reason"):
        ops.remove_member(staff, tender, member, "   ")
    db.session.rollback()
    assert member.status == MemberStatus.INVITED
    assert ops.draw_of(tender).redraws == redraws
    assert len(ops.members_of(tender)) == 5


def test_procuring_entity_through_the_api(client, make_user, make_centre):
    from app.tenders.models import Tender
    from app.tenders.template_ops import sync_builtin_templates

    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    custodians = [make_user(Role.CUSTODIAN, centre=centre) for _ in range(2)]
    version = {t.key: t for t in sync_builtin_templates()}["goods"].latest
    db.session.commit()
    headers = token_for(staff)
    response = create(client, headers, version, custodians, procuring_entity=" City  Library ")
    assert response.status_code == 201, response.json
    assert response.json["procuring_entity"] == "City Library"
    tender_id = response.json["id"]
    response = client.patch(
        f"/api/v1/tenders/{tender_id}", json={"procuring_entity": "x" * 301}, headers=headers
    )
    assert response.status_code in (400, 422)
    assert db.session.get(Tender, tender_id).procuring_entity == "City Library"
    response = client.patch(
        f"/api/v1/tenders/{tender_id}", json={"procuring_entity": "City Museum"}, headers=headers
    )
    assert response.status_code == 200 and response.json["procuring_entity"] == "City Museum"


def test_procuring_entity_through_the_staff_form(app, client, make_user, make_centre):
    from app.tenders.models import Tender
    from app.tenders.template_ops import sync_builtin_templates

    centre = make_centre()
    staff = make_user(Role.STAFF, centre=centre)
    custodians = [make_user(Role.CUSTODIAN, centre=centre) for _ in range(2)]
    version = {t.key: t for t in sync_builtin_templates()}["goods"].latest
    db.session.commit()
    AuthActions(client).login(staff)
    assert (
        b'name="procuring_entity"' in client.get(f"/centre/tenders/new?version={version.id}").data
    )
    response = create_tender(client, app, version, custodians, procuring_entity="City Library")
    assert response.status_code == 302
    tender = db.session.scalar(select(Tender).where(Tender.reference == "QH-2025-001"))
    assert tender.procuring_entity == "City Library"
    assert b"City Library" in client.get(f"/centre/tenders/{tender.id}/edit").data
    data = tender_data(app, custodians, procuring_entity="City Museum")
    assert client.post(f"/centre/tenders/{tender.id}/edit", data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).procuring_entity == "City Museum"
    data = tender_data(app, custodians, procuring_entity="x" * 301)
    assert client.post(f"/centre/tenders/{tender.id}/edit", data=data).status_code == 400
    db.session.expire_all()
    assert db.session.get(Tender, tender.id).procuring_entity == "City Museum"


def _integers(value, path=""):
    """Every integer of a JSON value with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _integers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _integers(item, f"{path}[]")
    elif isinstance(value, int) and not isinstance(value, bool):
        yield path, value


def test_draw_json_is_a_commitment_until_the_result(app, pool, make_user, tmp_path, capsys):
    """Before the award or failure notice, anyone (anonymous, a bidder, a member of the
    panel, the centre's staff) gets only the commitment: no expert id, nothing to replay.
    With the failure (or award) notice the full draw is published; it replays, and the
    commitment published earlier (before a refill, too) checks against it."""
    from app.results import operations as results_ops
    from evaluation.__main__ import main

    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    members = ops.members_of(tender)
    callers = {"anonymous": app.test_client()}
    for name, user in (
        ("bidder", make_user(Role.BIDDER)),
        ("expert", members[0].user),
        ("staff", staff),
    ):
        callers[name] = app.test_client()
        AuthActions(callers[name]).login(user)
    url = f"/panels/tenders/{tender.id}/draw.json"
    expert_ids = {u.id for u in pool["eligible"] + pool["excluded"]}

    def commitment_for_everyone() -> dict:
        answers = [c.get(url) for c in callers.values()]
        assert all(a.status_code == 200 for a in answers)
        bodies = [a.get_json() for a in answers]
        assert all(b == bodies[0] for b in bodies)
        body = bodies[0]
        assert body["state"] == "commitment"
        assert not {"eligible", "redraws", "excluded", "nonce"} & set(body)
        allowed = {".tender_id", ".size", ".redraw_count"}
        assert {p for p, _ in _integers(body)} <= allowed | {f".quotas.{k}" for k in body["quotas"]}
        text = answers[0].get_data(as_text=True)
        for user_id in expert_ids:
            assert f'"id": {user_id}' not in text and f'"vacated": {user_id}' not in text
        return body

    before_refill = commitment_for_everyone()
    assert before_refill["redraw_count"] == 0
    # A member declines: the commitment moves on (one refill), still naming nobody.
    ops.decline_invitation(members[-1].user, tender, "Abroad")
    db.session.commit()
    after_refill = commitment_for_everyone()
    assert after_refill["redraw_count"] == 1
    assert after_refill["outcome_sha256"] != before_refill["outcome_sha256"]
    assert after_refill["eligible_sha256"] == before_refill["eligible_sha256"]
    # The commitment is not a replayable draw.
    earlier = tmp_path / "commitment.json"
    earlier.write_text(json.dumps(before_refill))
    assert main(["draw-replay", str(earlier)]) == 2
    assert "is a commitment, not the full draw" in capsys.readouterr().err

    # The failure notice publishes the full draw, to every caller alike.
    tender.status = TenderStatus.OPENED
    db.session.commit()
    results_ops.declare_failed(staff, tender, "other", "Every bid was non-compliant.")
    db.session.commit()
    answers = [c.get(url).get_json() for c in callers.values()]
    assert all(a == answers[0] for a in answers)
    full = answers[0]
    assert full["state"] == "full" and len(full["nonce"]) == 64
    assert {e["id"] for e in full["eligible"]} == {u.id for u in pool["eligible"]}
    assert full["redraws"] == [{"vacated": members[-1].user_id, "cause": "declined"}]
    path = tmp_path / "draw.json"
    path.write_text(json.dumps(full))
    for commitment_file, published in (
        (earlier, before_refill),
        (tmp_path / "later.json", after_refill),
    ):
        commitment_file.write_text(json.dumps(published))
        assert main(["draw-replay", str(path), "--commitment", str(commitment_file)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["seed_matches_inputs"] and out["commitment_matches"]
        assert out["panel"] == current_panel(tender)
    # A full file that is not the draw committed to is caught: one eligible expert left out
    # (and the refill dropped, so the forgery still replays whoever was drawn first).
    forged = dict(full, eligible=full["eligible"][1:], redraws=[])
    path.write_text(json.dumps(forged))
    assert main(["draw-replay", str(path), "--commitment", str(earlier)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["commitment_matches"]
    assert any(d.startswith("eligible_sha256") for d in out["commitment_differences"])
    # And a full file with another salt (as one would need to pass off another draw).
    path.write_text(json.dumps(dict(full, nonce="00" * 32)))
    assert main(["draw-replay", str(path), "--commitment", str(earlier)]) == 1
    capsys.readouterr()


def test_draw_json_is_full_with_the_award_notice(app, pool):
    tender, staff = pool["tender"], pool["staff"]
    seal(tender)
    ops.draw_tender_panel(staff, tender, 5, {})
    db.session.commit()
    client = app.test_client()
    url = f"/panels/tenders/{tender.id}/draw.json"
    assert client.get(url).get_json()["state"] == "commitment"
    for status in (TenderStatus.OPENED, TenderStatus.EVALUATING, TenderStatus.CANDIDATES):
        tender.status = status
        db.session.commit()
        assert client.get(url).get_json()["state"] == "commitment", status
    tender.status = TenderStatus.AWARDED  # as publish_award leaves it
    db.session.commit()
    full = client.get(url).get_json()
    assert full["state"] == "full"
    replayed = replay(full["eligible"], 5, full["quotas"], full["seed"], full["redraws"])
    assert replayed["panel"] == current_panel(tender)
