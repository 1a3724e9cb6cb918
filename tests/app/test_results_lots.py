"""Results of a tender divided into lots: one candidates notice per lot with a winner under
the cross-lot award, a failure notice per lot without one, objections to one lot that do
not hold up another, an upheld objection sending back the lots not yet awarded (awarded lots
stand and count against their winner's limit), letters listing each lot, the results API
and OCDS per lot."""

from __future__ import annotations

import io
import json

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app.accounts import operations as account_ops
from app.bids.receipts import platform_signing_key
from app.core.errors import Conflict, OperationError
from app.evaluations.models import Evaluation, EvaluationStage
from app.evaluations.queries import evaluation_of
from app.extensions import db
from app.i18n import LANGUAGE_COOKIE
from app.results import operations, reading
from app.results.letters import letter_of
from app.results.models import NoticeKind, ObjectionStatus, ResultNotice
from app.tenders.documents import blob_store
from app.tenders.models import Lot, Tender, TenderDocument, TenderStatus
from bidding.notices import verify_notice
from evaluation.lots import replay
from tests.conftest import AuthActions, run_queued_jobs
from tests.factories.lots import finalised, lots_tender
from tests.factories.ocds import assert_valid, package_validator
from tests.factories.opening import staff_of
from tests.factories.results import close_window, store_record

# Limit 1, lot order: company 0 tops every lot and wins lot 1; lot 2 goes to company 1
# (company 2 is over lot 2's ceiling); lot 3's compliant bidders are companies 0 and 1
# (company 2 is over lot 3's ceiling), both at their limit: lot 3 has no winner and fails.
PRICES = {
    0: {"1": "500000.00", "2": "150000.00", "3": "250000.00"},
    1: {"1": "520000.00", "2": "160000.00", "3": "260000.00"},
    2: {"1": "510000.00", "2": "250000.00", "3": "350000.00"},
}


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


def next_round_finalised(tender: Tender) -> Evaluation:
    """A new round's result finalised and its record signed, as rows (the panel's scoring
    again and the records job are tested elsewhere)."""
    evaluation = db.session.get(Evaluation, tender.id)
    evaluation.stage = EvaluationStage.FINALISED
    store_record(tender, evaluation.round)
    db.session.commit()
    return evaluation


@pytest.fixture
def lots_world(make_tender, make_user):
    """Round 1 through the real operations: sealed bids per lot, the opening, the panel's
    scoring, the chair's finalisation and the signed record of the lots."""
    tender, bidders, experts = lots_tender(make_tender, make_user, limit=1, prices=PRICES)
    finalised(tender, experts)
    run_queued_jobs()  # the record's rendering and signing
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    assert reading.signed_record(tender, evaluation_of(tender)) is not None
    return tender, bidders, experts


def by_lot(tender: Tender) -> dict[str, dict]:
    return {state["lot"].reference: state for state in reading.lot_states(tender)}


def test_candidates_per_lot_and_a_lot_without_winner_fails(lots_world):
    tender, bidders, _experts = lots_world
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    assert tender.status == TenderStatus.CANDIDATES
    states = by_lot(tender)
    assert {ref: s["status"] for ref, s in states.items()} == {
        "1": "candidates",
        "2": "candidates",
        "3": "failed",
    }
    ids = [b.company_id for b in bidders]
    lot_1 = states["1"]["notice"].content
    assert lot_1["lot"]["reference"] == "1"
    assert [c["company_id"] for c in lot_1["candidates"]] == [ids[0], ids[2], ids[1]]
    assert lot_1["proposed"]["company_id"] == ids[0]
    lot_2 = states["2"]["notice"].content
    # Company 0 ranks first in lot 2 but has won its one lot: passed over, company 1 proposed.
    assert [c["company_id"] for c in lot_2["candidates"]] == [ids[0], ids[1]]
    assert lot_2["proposed"]["company_id"] == ids[1]
    assert lot_2["passed_over"][0]["won"] == ["1"]
    failure = states["3"]["notice"]
    assert failure.content["reason_code"] == "limit_reached"
    # Each lot's notice is a signed document naming its lot.
    for state in states.values():
        document = db.session.get(TenderDocument, state["notice"].document_id)
        with blob_store().open(document.sha256) as stream:
            signed = stream.read()
        body = verify_notice(signed, platform_signing_key().public_key())
        assert body["lot"] == state["lot"].reference and body["notice"] == state["notice"].id


def test_an_objection_on_lot_2_does_not_hold_up_lot_1(lots_world):
    tender, bidders, _experts = lots_world
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    lot_1, lot_2 = tender.lot_by_reference("1"), tender.lot_by_reference("2")
    # One lot must be named; a company objects only to a lot it bid for.
    with pytest.raises(OperationError) as refused:
        operations.file_objection(bidders[2], tender, "Which lot?", [])
    assert refused.value.code == "lot"
    db.session.rollback()
    with pytest.raises(Conflict) as refused:  # lot 3 failed: no candidates to object to
        operations.file_objection(bidders[1], tender, "Lot 3", [], tender.lot_by_reference("3"))
    assert refused.value.code == "no_notice"
    db.session.rollback()
    objection = operations.file_objection(bidders[2], tender, "Our price is compliant.", [], lot_2)
    db.session.commit()
    assert objection.notice_id == by_lot(tender)["2"]["notice"].id
    # The same company may object to lot 1 too (one open objection per lot).
    operations.file_objection(bidders[2], tender, "And lot 1.", [], lot_1)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        operations.file_objection(bidders[2], tender, "Again.", [], lot_2)
    assert refused.value.code == "objection_open"
    db.session.rollback()
    [on_lot_1] = [o for o in reading.open_objections(tender) if o.id != objection.id]
    operations.decide_objection(staff, on_lot_1, ObjectionStatus.DISMISSED, "Lot 1 is right.")
    db.session.commit()

    close_window(tender)
    with pytest.raises(Conflict) as refused:
        operations.publish_award(staff, tender, lot_2)
    assert refused.value.code == "objection_open"
    db.session.rollback()
    award = operations.publish_award(staff, tender)  # every lot ready: lot 1 only
    db.session.commit()
    assert award.lot_id == lot_1.id and award.kind == NoticeKind.AWARD
    assert award.content["winner"]["company_id"] == bidders[0].company_id
    assert tender.status == TenderStatus.CANDIDATES  # lot 2 waits for its objection
    with pytest.raises(Conflict) as refused:  # lot 1 is awarded: fail lots one by one
        operations.declare_failed(staff, tender, "other", "Everything.")
    assert refused.value.code == "lot_awarded"
    db.session.rollback()
    assert {r: s["status"] for r, s in by_lot(tender).items()} == {
        "1": "awarded",
        "2": "candidates",
        "3": "failed",
    }

    # Upheld: lot 2 goes back to evaluation; lot 1's award and lot 3's failure stand.
    operations.decide_objection(staff, objection, ObjectionStatus.UPHELD, "Recheck lot 2.")
    operations.reopen_evaluation(staff, tender, "Objection to lot 2 upheld")
    db.session.commit()
    assert tender.status == TenderStatus.EVALUATING
    assert {r: s["status"] for r, s in by_lot(tender).items()} == {
        "1": "awarded",
        "2": "pending",
        "3": "failed",
    }
    # The new round finds company 1 not compliant in lot 2: only company 0 is ranked there,
    # and its award of lot 1 counts against its limit of one lot, so lot 2 fails.
    evaluation = db.session.get(Evaluation, tender.id)
    assert evaluation.round == 2
    document = json.loads(evaluation.lots_json)
    ranking = document["lots"][1]["scoring_file"]["result"]["ranking"]
    document["lots"][1]["scoring_file"]["result"]["ranking"] = [
        r for r in ranking if r["bid"] == bidders[0].company.registration_number
    ]
    evaluation.lots_json = json.dumps(document)
    next_round_finalised(tender)
    [notice] = operations.publish_lot_candidates(
        staff, tender, evaluation, reading.signed_record(tender, evaluation)
    )
    db.session.commit()
    assert notice.lot_id == lot_2.id and notice.content["reason_code"] == "limit_reached"
    assert tender.status == TenderStatus.AWARDED  # every lot decided, one awarded
    # Lot 1's award notice was kept, not republished.
    assert db.session.get(ResultNotice, award.id).superseded_at is None


def test_a_new_round_keeps_the_awarded_lot_and_replays(lots_world):
    tender, bidders, _experts = lots_world
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    lot_1, lot_2 = tender.lot_by_reference("1"), tender.lot_by_reference("2")
    objection = operations.file_objection(bidders[2], tender, "Lot 2 is wrong.", [], lot_2)
    close_window(tender)
    operations.publish_award(staff, tender, lot_1)
    operations.decide_objection(staff, objection, ObjectionStatus.UPHELD, "Recheck.")
    operations.reopen_evaluation(staff, tender, "Objection to lot 2 upheld")
    db.session.commit()
    evaluation = db.session.get(Evaluation, tender.id)
    next_round_finalised(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    notice = by_lot(tender)["2"]["notice"]
    assert notice.kind == NoticeKind.CANDIDATES and notice.content["round"] == evaluation.round
    assert notice.content["proposed"]["company_id"] == bidders[1].company_id
    award = notice.content["award"]
    assert award["kept"] == ["1"] and award["fallback"] is None
    assert [lot["lot"] for lot in award["lots"]] == ["1", "2"]  # the awarded lot first
    assert replay(award) == []
    close_window(tender)
    operations.publish_award(staff, tender)
    db.session.commit()
    assert tender.status == TenderStatus.AWARDED


def awarded_world(lots_world):
    tender, bidders, _experts = lots_world
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    close_window(tender)
    operations.publish_award(staff, tender)
    db.session.commit()
    return tender, bidders, staff


def test_letters_list_each_lot_the_company_bid_for(lots_world, outbox):
    tender, bidders, _staff = awarded_world(lots_world)
    assert tender.status == TenderStatus.AWARDED
    # The award e-mail names each lot awarded and its winner.
    [told] = [m for m in outbox.messages() if m.to == [bidders[2].email] and "- Lot" in m.body]
    assert f"- Lot 1: Lot 1: {bidders[0].company.name}\n" in told.body
    assert f"- Lot 2: Lot 2: {bidders[1].company.name}\n" in told.body
    run_queued_jobs()
    texts = {}
    for user in bidders:
        letter = letter_of(tender, user.company_id)
        document = db.session.get(TenderDocument, letter.document_id)
        with blob_store().open(document.sha256) as stream:
            data = stream.read()
        texts[user.company_id] = "".join(
            page.extract_text() for page in PdfReader(io.BytesIO(data)).pages
        )
    winner_0, winner_1, loser = (texts[b.company_id] for b in bidders)
    assert "Lot 1: Lot 1" in winner_0 and "Lot 3: Lot 3" in winner_0
    assert "This lot is awarded to your company." in winner_0
    assert "This lot has failed." in winner_0  # lot 3
    assert "Lot 2: Lot 2" in winner_1 and "This lot is awarded to your company." in winner_1
    assert "This lot is awarded to your company." not in loser
    assert f"This lot is awarded to {bidders[0].company.name}." in loser
    assert "not compliant" in loser  # over lot 2's and lot 3's ceilings


def test_results_api_shows_each_lot(app, lots_world):
    tender, _bidders, _staff = awarded_world(lots_world)
    body = app.test_client().get(f"/api/v1/tenders/{tender.id}/results").get_json()
    lots = {entry["lot"]: entry for entry in body["lots"]}
    assert {ref: entry["status"] for ref, entry in lots.items()} == {
        "1": "awarded",
        "2": "awarded",
        "3": "failed",
    }
    assert lots["3"]["notice"]["reason"]
    assert lots["1"]["open_objections"] == 0
    client = app.test_client()
    for url in (f"/results/tenders/{tender.id}", f"/tenders/{tender.id}"):
        page = client.get(url).get_data(as_text=True)
        assert 'id="lot-result-3"' in page and "lot-failed" in page, url


def test_ocds_has_one_award_per_lot_and_each_lots_outcome(app, lots_world):
    from app.api.ocds import tender_package

    tender, bidders, _staff = awarded_world(lots_world)
    package = tender_package(tender)
    assert_valid(package_validator(), package)
    last = package["releases"][-1]
    lots = {lot["id"]: lot["status"] for lot in last["tender"]["lots"]}
    assert lots == {"1": "complete", "2": "complete", "3": "unsuccessful"}
    assert last["tender"]["status"] == "complete"
    assert last["tender"]["lotDetails"] == {"maximumLotsAwardedPerSupplier": 1}
    active = [a for a in last["awards"] if a["status"] == "active"]
    assert sorted((a["relatedLots"], a["suppliers"][0]["name"]) for a in active) == [
        (["1"], bidders[0].company.name),
        (["2"], bidders[1].company.name),
    ]
    assert all(len(a["relatedLots"]) == 1 for a in last["awards"])
    statistics = last["bids"]["statistics"]
    per_lot = {(s["measure"], s.get("relatedLot")): s["value"] for s in statistics}
    assert per_lot[("bids", "1")] == 3 and per_lot[("bids", "3")] == 3
    assert per_lot[("validBids", "1")] == 3
    assert per_lot[("validBids", "2")] == 2  # company 2 is over lot 2's ceiling
    assert per_lot[("lowestValidBidValue", "2")] == 150000
    details = last["bids"]["details"]
    assert all(len(d["relatedLots"]) == 1 for d in details)
    assert len(details) == 9


def test_a_tender_of_one_lot_has_no_lot_results(results_world):
    w = results_world
    operations.publish_candidates(w.staff, w.tender)
    db.session.commit()
    notice = db.session.scalar(select(ResultNotice).where(ResultNotice.tender_id == w.tender.id))
    assert notice.lot_id is None
    assert reading.lot_states(w.tender) == []
    with pytest.raises(OperationError) as refused:
        operations.resolve_lot(w.tender, "1")
    assert refused.value.code == "lot"


def test_pages_object_to_and_award_one_lot(app, lots_world):
    tender, bidders, _experts = lots_world
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    bidder = app.test_client()
    AuthActions(bidder).login(bidders[2])
    page = bidder.get(f"/results/tenders/{tender.id}/bidder").get_data(as_text=True)
    assert 'id="object-lot-1"' in page and 'id="object-lot-2"' in page
    assert 'id="object-lot-3"' not in page  # lot 3 failed
    response = bidder.post(
        f"/results/tenders/{tender.id}/objections",
        data={"text": "Our lot 2 price is within the ceiling.", "lot": "2"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    [objection] = reading.open_objections(tender)
    assert objection.notice_id == by_lot(tender)["2"]["notice"].id
    page = bidder.get(f"/results/tenders/{tender.id}/bidder").get_data(as_text=True)
    assert 'id="object-lot-2"' not in page and 'id="object-lot-1"' in page

    close_window(tender)
    manager = app.test_client()
    AuthActions(manager).login(staff)
    page = manager.get(f"/results/tenders/{tender.id}/manage").get_data(as_text=True)
    assert 'id="award-lot-1"' in page and 'id="award-lot-2"' not in page
    refused = manager.post(f"/results/tenders/{tender.id}/award", data={"lot": "2"})
    assert refused.status_code == 303  # back to the page with the reason
    db.session.expire_all()
    assert by_lot(tender)["2"]["status"] == "candidates"  # refused: its objection is open
    assert manager.post(f"/results/tenders/{tender.id}/award", data={"lot": "1"}).status_code == 302
    db.session.expire_all()
    assert by_lot(tender)["1"]["status"] == "awarded"
    assert by_lot(tender)["2"]["status"] == "candidates"


def test_a_lot_failed_at_the_opening_fails_and_staff_fail_one_lot(make_tender, make_user):
    # Lot 3 has one envelope (fewer than the minimum): failed at the opening.
    prices = {i: {k: v for k, v in PRICES[i].items() if k != "3" or i == 0} for i in PRICES}
    tender, bidders, experts = lots_tender(make_tender, make_user, limit=None, prices=prices)
    finalised(tender, experts)
    run_queued_jobs()
    db.session.expire_all()
    tender = db.session.get(Tender, tender.id)
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    states = by_lot(tender)
    assert states["3"]["notice"].content["reason_code"] == "too_few_bids"
    # Without a limit each lot goes to its first-ranked bidder.
    assert states["2"]["notice"].content["proposed"]["company_id"] == bidders[0].company_id
    # Staff fail lot 2 on its own; lot 1 goes on.
    notice = operations.declare_failed(
        staff, tender, "other", "The lot is withdrawn.", tender.lot_by_reference("2")
    )
    db.session.commit()
    assert notice.lot_id == tender.lot_by_reference("2").id
    assert {r: s["status"] for r, s in by_lot(tender).items()} == {
        "1": "candidates",
        "2": "failed",
        "3": "failed",
    }
    assert tender.status == TenderStatus.CANDIDATES
    with pytest.raises(Conflict) as refused:
        operations.declare_failed(staff, tender, "other", "Again.", tender.lot_by_reference("2"))
    assert refused.value.code == "lot_decided"
    db.session.rollback()
    close_window(tender)
    operations.publish_award(staff, tender)
    db.session.commit()
    assert tender.status == TenderStatus.AWARDED
    with pytest.raises(Conflict) as refused:  # awarded: nothing left to fail
        operations.declare_failed(staff, tender, "other", "Everything.")
    assert refused.value.code == "status"


def test_api_objects_to_awards_and_fails_one_lot(app, lots_world):
    tender, bidders, _experts = lots_world
    client = app.test_client()

    def bearer(user):
        token = account_ops.create_api_token(user, "results")
        db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    staff, bidder = bearer(staff_of(tender)), bearer(bidders[2])
    base = f"/api/v1/tenders/{tender.id}"
    assert client.post(f"{base}/results/candidates", headers=staff).status_code == 201
    response = client.post(f"{base}/objections", headers=bidder, json={"text": "Which lot?"})
    assert response.status_code == 400 and response.get_json()["error"] == "lot"
    response = client.post(f"{base}/objections", headers=bidder, json={"text": "x", "lot": "9"})
    assert response.status_code == 400 and response.get_json()["error"] == "lot"
    response = client.post(f"{base}/objections", headers=bidder, json={"text": "No", "lot": "2"})
    assert response.status_code == 201 and response.get_json()["lot"] == "2"
    close_window(tender)
    response = client.post(f"{base}/results/award?lot=2", headers=staff)
    assert response.status_code == 409 and response.get_json()["error"] == "objection_open"
    response = client.post(f"{base}/results/award?lot=1", headers=staff)
    assert response.status_code == 201
    lots = {entry["lot"]: entry for entry in response.get_json()["lots"]}
    assert lots["1"]["status"] == "awarded" and lots["1"]["notice"]["lot"] == "1"
    assert lots["2"]["status"] == "candidates" and lots["2"]["open_objections"] == 1
    response = client.post(
        f"{base}/results/failure",
        headers=staff,
        json={"reason_code": "other", "text": "Withdrawn.", "lot": "2"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "awarded"  # every lot decided: lot 1 awarded, lots 2 and 3 failed
    assert [entry["status"] for entry in body["lots"]] == ["awarded", "failed", "failed"]


def _lot_file(*ranked: tuple[str, str, str]) -> dict:
    """A scored lot file as the award reads it: (bidder id, price, total), best first."""
    return {
        "result": {
            "bids": [{"id": bid, "price": price, "total": total} for bid, price, total in ranked],
            "ranking": [{"bid": bid, "rank": n} for n, (bid, _p, _t) in enumerate(ranked, 1)],
        }
    }


@pytest.mark.parametrize(
    ("rule", "fallback", "winner_2"),
    [("lot_order", None, None), ("max_total_score", "lot_order", None)],
)
def test_round_award_keeps_an_awarded_lot_under_every_rule(make_tender, rule, fallback, winner_2):
    # Limit 1. Lot 1 was awarded to C (total 50). In the new round only C is compliant in
    # lot 2, with a higher total (90): max_total_score alone would rather give C lot 2 and
    # leave lot 1 without its winner; the kept award wins, by lot order, and says so.
    tender = make_tender(keyed=False)
    db.session.add(Lot(tender_id=tender.id, number=2, title="Lot 2"))
    tender.max_lots_won = 1
    tender.lot_award_rule = rule
    db.session.flush()
    db.session.refresh(tender)
    lot_1 = tender.lot_by_reference("1")
    db.session.add(
        ResultNotice(
            tender_id=tender.id,
            lot_id=lot_1.id,
            kind=NoticeKind.AWARD,
            content={"winner": {"bid": "C", "price": "100.00", "total": "50.00"}},
        )
    )
    files = [
        {"lot": "1", "scoring_file": _lot_file(("C", "100.00", "50.00"))},
        {"lot": "2", "scoring_file": _lot_file(("C", "100.00", "90.00"))},
    ]
    evaluation = Evaluation(
        tender_id=tender.id,
        stage=EvaluationStage.FINALISED,
        round=2,
        lots_json=json.dumps({"lots": files, "award": {}}),
    )
    db.session.add(evaluation)
    db.session.commit()
    award, kept = operations.round_award(tender, evaluation)
    assert kept == ["1"] and award["fallback"] == fallback
    winners = {entry["lot"]: entry["winner"] for entry in award["result"]["lots"]}
    assert winners == {"1": "C", "2": winner_2}
    assert replay(award) == []


def test_a_lot_failed_before_the_candidates_wins_nobody_a_place(lots_world):
    tender, bidders, _experts = lots_world
    staff = staff_of(tender)
    # Staff fail lot 1 while the tender is under evaluation: company 0 no longer wins it,
    # so under the limit of one lot it wins lot 2, and lot 3 goes to company 1.
    operations.declare_failed(staff, tender, "other", "Withdrawn.", tender.lot_by_reference("1"))
    operations.publish_candidates(staff, tender)
    db.session.commit()
    states = by_lot(tender)
    assert states["1"]["status"] == "failed"
    proposed = {r: states[r]["notice"].content["proposed"]["company_id"] for r in ("2", "3")}
    assert proposed == {"2": bidders[0].company_id, "3": bidders[1].company_id}
    assert replay(states["2"]["notice"].content["award"]) == []


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("ko", ("이 로트의 낙찰 예정자", "후보자 공시됨", "이 로트의 낙찰 공고", "유찰")),
        ("zh_Hans", ("本标段拟中标人", "已公示中标候选人", "发布本标段的中标公告", "流标")),
    ],
)
def test_the_lot_results_read_in_korean_and_chinese(app, lots_world, language, words):
    tender, _bidders, _experts = lots_world
    staff = staff_of(tender)
    operations.publish_candidates(staff, tender)
    db.session.commit()
    close_window(tender)
    client = app.test_client()
    AuthActions(client).login(staff)
    client.set_cookie(LANGUAGE_COOKIE, language)
    with app.app_context():  # a fresh `g`: the test's own context chose English already
        page = client.get(f"/results/tenders/{tender.id}/manage").get_data(as_text=True)
    for word in words:
        assert word in page
    for english in ("Proposed winner", "candidates published", "Publish the award of this"):
        assert english not in page


def test_a_cancelled_lot_has_no_result(lots_world):
    tender, _bidders, _experts = lots_world
    staff = staff_of(tender)
    # (An addendum cancels a lot before the deadline; its row is all the results read.)
    tender.lot_by_reference("3").cancelled_at = tender.submission_deadline
    db.session.commit()
    operations.publish_candidates(staff, tender)
    db.session.commit()
    assert sorted(by_lot(tender)) == ["1", "2"]
    assert (
        db.session.scalar(
            select(ResultNotice).where(ResultNotice.lot_id == tender.lot_by_reference("3").id)
        )
        is None
    )
    close_window(tender)
    operations.publish_award(staff, tender)
    db.session.commit()
    assert tender.status == TenderStatus.AWARDED  # every competing lot is awarded
