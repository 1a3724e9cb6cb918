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

from app.bids.receipts import platform_signing_key
from app.core.errors import Conflict, OperationError
from app.evaluations.models import Evaluation, EvaluationStage
from app.extensions import db
from app.results import operations, reading
from app.results.letters import letter_of
from app.results.models import NoticeKind, ObjectionStatus, ResultNotice
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument, TenderStatus
from bidding.notices import verify_notice
from evaluation.lots import replay
from tests.app.test_evaluation_lots import lots_tender, unblinded
from tests.conftest import run_queued_jobs
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


def finalised(tender: Tender, experts) -> Evaluation:
    """The panel's result finalised and its record signed (rows, as the records job would:
    this branch's record stage does not make a record of several lots yet)."""
    evaluation = db.session.get(Evaluation, tender.id)
    evaluation.stage = EvaluationStage.FINALISED
    store_record(tender, evaluation.round)
    db.session.commit()
    return evaluation


@pytest.fixture
def lots_world(make_tender, make_user):
    tender, bidders, experts = lots_tender(make_tender, make_user, limit=1, prices=PRICES)
    unblinded(tender, experts)
    finalised(tender, experts)
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
    finalised(tender, None)
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
    finalised(tender, None)
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


def test_letters_list_each_lot_the_company_bid_for(lots_world):
    tender, bidders, _staff = awarded_world(lots_world)
    assert tender.status == TenderStatus.AWARDED
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
    page = app.test_client().get(f"/results/tenders/{tender.id}").get_data(as_text=True)
    assert 'id="lot-result-3"' in page


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
