"""Blind technical scoring: the expert's sheet (bounds, steps, reasons, drafts, locking),
the chair's view (progress only until every sheet is locked), outliers and their reasons,
reopening, members removed for a conflict, unblinding, finalising, the pages, the API and
the charts."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

import evaluation as evaluation_lib
from app.accounts.models import Role
from app.accounts.operations import create_api_token
from app.audit import verify_chain
from app.audit.models import AuditEvent
from app.core.errors import Conflict, OperationError
from app.evaluations import charts, operations, queries, scoring_file
from app.evaluations.models import EvaluationStage, ScoreSheet, TechnicalScore
from app.evaluations.signals import evaluation_finalised
from app.extensions import db
from app.panels.operations import member_of, remove_member
from app.records.operations import request_record_on_finalise
from app.tenders.models import TenderStatus
from tests.conftest import AuthActions
from tests.factories.evaluations import opened_tender, seat_panel
from tests.factories.opening import staff_of
from tests.factories.scoring import fill_sheet, lock, middle, scoring_tender

PRICES = ["500000.00", "520000.00", "510000.00"]


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


@pytest.fixture
def setup(make_tender, make_user):
    return scoring_tender(make_tender, make_user, PRICES)


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def score_count() -> int:
    return db.session.scalar(select(func.count()).select_from(TechnicalScore))


def criteria(setup) -> dict[str, scoring_file.Criterion]:
    return {c.key: c for c in scoring_file.criteria_of(setup.tender)}


# --- the sheet ------------------------------------------------------------------------------


def test_scores_outside_bounds_or_step_or_without_reason_are_refused(setup):
    tender, expert = setup.tender, setup.experts[1]
    code = setup.codes()[0]
    spec = criteria(setup)["specification_compliance"]  # max 25, step 0.5
    good = operations.ScoreEntry(code, "quality_assurance", "5")
    for bad, fragment in [
        ("25.5", "from 0 to 25"),
        ("-1", "from 0 to 25"),
        ("12.25", "steps of 0.5"),
        ("1e1", "from 0 to 25"),
        ("twelve", "from 0 to 25"),
    ]:
        with pytest.raises(operations.ScoresRefused) as refused:
            operations.save_scores(
                expert, tender, [good, operations.ScoreEntry(code, spec.key, bad)]
            )
        assert fragment in str(refused.value.message)
        assert (code, spec.key) in refused.value.problems
        db.session.rollback()
    for extreme in ("0", "25"):
        with pytest.raises(operations.ScoresRefused) as refused:
            operations.save_scores(expert, tender, [operations.ScoreEntry(code, spec.key, extreme)])
        assert "needs a written reason" in str(refused.value.message)
        db.session.rollback()
    with pytest.raises(operations.ScoresRefused):
        operations.save_scores(expert, tender, [operations.ScoreEntry("T-ZZZ", spec.key, "1")])
    db.session.rollback()
    with pytest.raises(operations.ScoresRefused) as refused:
        operations.save_scores(expert, tender, [good, good])
    assert "given twice" in str(refused.value.message)
    db.session.rollback()
    # Nothing of a refused batch was stored, not even its good entries.
    assert score_count() == 0
    assert db.session.scalar(select(func.count()).select_from(ScoreSheet)) == 0
    assert "scoring.draft_saved" not in actions()


def test_drafts_save_partially_then_lock_once(setup):
    tender, expert = setup.tender, setup.experts[1]
    code = setup.codes()[0]
    spec = criteria(setup)["specification_compliance"]
    operations.save_scores(
        expert,
        tender,
        [
            operations.ScoreEntry(code, spec.key, "12,5"),  # a decimal comma is accepted
            operations.ScoreEntry(code, "training", "5", "Full programme with manuals."),
        ],
    )
    db.session.commit()
    view = operations.my_sheet(expert, tender)
    assert view.filled == 2 and view.total == 3 * 5
    assert view.bid(code).scores[spec.key].score == "12.5"
    # Incomplete: refused, nothing locked.
    with pytest.raises(OperationError) as refused:
        operations.lock_sheet(expert, tender)
    assert refused.value.code == "incomplete"
    db.session.rollback()
    # Clearing a draft score: an empty field.
    operations.save_scores(expert, tender, [operations.ScoreEntry(code, spec.key, "")])
    db.session.commit()
    assert operations.my_sheet(expert, tender).filled == 1
    fill_sheet(expert, tender)
    lock(expert, tender)
    assert queries.sheet_of(expert, tender).locked_at is not None
    with pytest.raises(Conflict) as refused:
        operations.lock_sheet(expert, tender)
    assert refused.value.code == "sheet_locked"
    db.session.rollback()
    before = [(s.criterion, s.score) for s in queries.sheet_of(expert, tender).scores]
    with pytest.raises(Conflict):
        operations.save_scores(expert, tender, [operations.ScoreEntry(code, spec.key, "1")])
    db.session.rollback()
    assert [(s.criterion, s.score) for s in queries.sheet_of(expert, tender).scores] == before
    assert actions().count("scoring.sheet_locked") == 1
    assert verify_chain() is None


def test_lock_needs_reasons_at_zero_and_max(setup):
    tender, expert = setup.tender, setup.experts[1]
    code = setup.codes()[0]
    fill_sheet(expert, tender, {(code, "training"): "0"})
    # Remove the reason behind the storage's back is impossible through save: check lock
    # refuses a sheet whose extreme score somehow lacks one (e.g. written before the rule).
    score = next(s for s in queries.sheet_of(expert, tender).scores if s.score == "0")
    score.reason = ""
    db.session.commit()
    with pytest.raises(OperationError) as refused:
        operations.lock_sheet(expert, tender)
    assert refused.value.code == "reason_missing"
    db.session.rollback()
    assert queries.sheet_of(expert, tender).locked_at is None


def test_outsiders_get_404_and_only_the_chair_sees_progress(setup, make_user):
    tender = setup.tender
    stranger = make_user(Role.EXPERT)
    staff = staff_of(tender)
    for user in (stranger, staff):
        for call in (
            lambda u: operations.my_sheet(u, tender),
            lambda u: operations.save_scores(u, tender, []),
            lambda u: operations.lock_sheet(u, tender),
            lambda u: operations.technical_part(u, tender, setup.codes()[0]),
        ):
            with pytest.raises(OperationError) as refused:
                call(user)
            assert refused.value.status == 404
            db.session.rollback()
    with pytest.raises(OperationError) as refused:
        operations.progress(setup.experts[1], tender)
    assert refused.value.status == 403
    db.session.rollback()
    with pytest.raises(OperationError):
        operations.unblind(setup.experts[1], tender)
    db.session.rollback()


def test_chair_sees_progress_but_no_scores_until_all_lock(setup):
    tender, chair = setup.tender, setup.chair
    fill_sheet(setup.experts[1], tender)
    lock(setup.experts[1], tender)
    fill_sheet(chair, tender)
    progress = operations.progress(chair, tender)
    assert [(p.member.position, p.filled, p.locked_at is not None) for p in progress] == [
        (1, 15, False),
        (2, 15, True),
        (3, 0, False),
    ]
    with pytest.raises(Conflict) as refused:
        operations.panel_scores(chair, tender)
    assert refused.value.code == "not_all_locked"
    db.session.rollback()
    with pytest.raises(Conflict):
        operations.unblind(chair, tender)
    db.session.rollback()


def test_review_stage_shows_nothing(make_tender, make_user):
    opened = opened_tender(make_tender, make_user, PRICES)
    experts = seat_panel(make_user, opened.tender, 3)
    operations.start_evaluation(staff_of(opened.tender), opened.tender)
    db.session.commit()
    for call in (operations.my_sheet, operations.lock_sheet):
        with pytest.raises(OperationError) as refused:
            call(experts[1], opened.tender)
        assert refused.value.status == 404
        db.session.rollback()


# --- outliers, reopening, removal -----------------------------------------------------------


def lock_all(setup, overrides_by_seat=None):
    for seat, expert in enumerate(setup.experts, start=1):
        fill_sheet(expert, setup.tender, (overrides_by_seat or {}).get(seat))
        lock(expert, setup.tender)


def test_outliers_are_flagged_and_need_reasons_before_unblinding(setup):
    tender, chair = setup.tender, setup.chair
    code = setup.codes()[1]
    # Spec: middle is 12.5; seat 3 gives 22 (mean 15.67, 6.33 > 30 % of 25 = 7.5? no) ->
    # give 25 (mean 16.67, distance 8.33 > 7.5): an outlier, and a maximum (reason given).
    lock_all(setup, {3: {(code, "specification_compliance"): "25"}})
    data = operations.panel_scores(chair, tender)
    flagged = [
        (e, c, k)
        for c, by in data.scores.items()
        for k, by_e in by.items()
        for e, s in by_e.items()
        if s.outlier
    ]
    assert flagged == [("E3", code, "specification_compliance")]
    assert queries.open_outliers(tender) == [("E3", code, "specification_compliance")]
    with pytest.raises(Conflict) as refused:
        operations.unblind(chair, tender)
    assert refused.value.code == "outlier_reasons"
    db.session.rollback()
    # Only the author, only for a flagged score, and a reason is needed.
    with pytest.raises(Conflict):
        operations.give_outlier_reason(
            setup.experts[1], tender, code, "specification_compliance", "Because."
        )
    db.session.rollback()
    with pytest.raises(OperationError) as refused:
        operations.give_outlier_reason(
            setup.experts[2], tender, code, "specification_compliance", " "
        )
    assert refused.value.code == "no_reason"
    db.session.rollback()
    operations.give_outlier_reason(
        setup.experts[2], tender, code, "specification_compliance", "Exceeds every item."
    )
    db.session.commit()
    score = operations.panel_scores(chair, tender).scores[code]["specification_compliance"]["E3"]
    assert score.score == "25" and score.outlier_reason == "Exceeds every item."
    assert "scoring.outlier_reason" in actions()
    operations.unblind(chair, tender)
    db.session.commit()
    scored = json.loads(queries.evaluation_of(tender).scoring_json)
    # The outlier's reason went into the scoring file with the extreme score's reason.
    flags = [f for f in scored["result"]["flags"] if f["code"] == "outlier_score"]
    assert flags and flags[0]["reason"] == "Reasoned. / Exceeds every item."


def test_reopen_is_audited_and_flags_recomputed(setup):
    tender, chair = setup.tender, setup.chair
    code = setup.codes()[0]
    lock_all(setup, {2: {(code, "quality_assurance"): "10"}})  # mean 6.67, 10: distance 3.33 > 3
    assert queries.open_outliers(tender) == [("E2", code, "quality_assurance")]
    with pytest.raises(OperationError) as refused:
        operations.reopen_sheet(chair, tender, 2, "  ")
    assert refused.value.code == "no_reason"
    db.session.rollback()
    with pytest.raises(OperationError) as refused:
        operations.reopen_sheet(setup.experts[1], tender, 2, "Please reconsider.")
    assert refused.value.status == 403
    db.session.rollback()
    operations.reopen_sheet(chair, tender, 2, "E2 asked to correct a typing error.")
    db.session.commit()
    sheet = queries.sheet_of(setup.experts[1], tender)
    assert sheet.locked_at is None and sheet.reopened_count == 1
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "scoring.sheet_reopened")
    ).one()
    assert json.loads(event.data)["reason"] == "E2 asked to correct a typing error."
    assert json.loads(event.data)["seat"] == 2
    with pytest.raises(Conflict):  # not every sheet is locked any more
        operations.panel_scores(chair, tender)
    db.session.rollback()
    operations.save_scores(
        setup.experts[1], tender, [operations.ScoreEntry(code, "quality_assurance", "5")]
    )
    db.session.commit()
    lock(setup.experts[1], tender)
    assert queries.open_outliers(tender) == []
    with pytest.raises(Conflict):  # an open sheet cannot be reopened
        operations.reopen_sheet(chair, tender, 9, "No such seat.")
    db.session.rollback()
    operations.unblind(chair, tender)
    db.session.commit()
    assert queries.evaluation_of(tender).stage == EvaluationStage.UNBLINDED


def test_removed_members_scores_are_excluded(make_tender, make_user):
    setup = scoring_tender(make_tender, make_user, PRICES, size=5)
    tender, chair = setup.tender, setup.chair
    code = setup.codes()[0]
    spec = "specification_compliance"
    # Seats 4 and 5 give the maximum: with five sheets the mean is 17.5 and 25 is exactly
    # 7.5 (30 % of 25) away, no outlier; without seat 5 the mean is 15.625: E4 is one.
    for seat, expert in enumerate(setup.experts, start=1):
        fill_sheet(expert, tender, {(code, spec): "25"} if seat >= 4 else None)
        if seat != 5:
            lock(expert, tender)
    assert not queries.all_locked(tender)
    remove_member(
        staff_of(tender),
        tender,
        member_of(setup.experts[4], tender),
        "Works for a bidder's parent company.",
    )
    db.session.commit()
    # The removed member sees nothing any more, and the four others are complete.
    with pytest.raises(OperationError) as refused:
        operations.my_sheet(setup.experts[4], tender)
    assert refused.value.status == 404
    db.session.rollback()
    assert queries.all_locked(tender)
    data = operations.panel_scores(chair, tender)
    db.session.commit()
    assert [e for e, _ in data.experts] == ["E1", "E2", "E3", "E4"]
    assert queries.open_outliers(tender) == [("E4", code, spec)]
    with pytest.raises(Conflict):
        operations.unblind(chair, tender)
    db.session.rollback()
    operations.give_outlier_reason(setup.experts[3], tender, code, spec, "Meets every item.")
    db.session.commit()
    operations.unblind(chair, tender)
    db.session.commit()
    scored = json.loads(queries.evaluation_of(tender).scoring_json)
    assert scored["result"]["panel"] == ["E1", "E2", "E3", "E4"]
    assert all("E5" not in (b.get("technical") or {}) for b in scored["bids"])


# --- unblinding and finalising --------------------------------------------------------------


def test_unblind_ranks_audits_once_and_finalise_runs_hooks(setup):
    tender, chair = setup.tender, setup.chair
    lock_all(setup)
    with pytest.raises(OperationError) as refused:
        operations.unblind(setup.experts[1], tender)
    assert refused.value.status == 403
    db.session.rollback()
    with pytest.raises(Conflict):  # not before unblinding
        operations.finalise(chair, tender)
    db.session.rollback()
    evaluation = operations.unblind(chair, tender)
    db.session.commit()
    assert evaluation.stage == EvaluationStage.UNBLINDED and evaluation.unblinded_at
    scored = evaluation_lib.parse_json(evaluation.scoring_json)
    assert evaluation_lib.verify(scored) == []
    assert evaluation.scoring_sha256 == evaluation_lib.input_sha256(scored)
    assert evaluation.scoring_sha256 == scored["result"]["input_sha256"]
    # The same bids, keyed by bidder id; technical scores from the three sheets.
    ids = sorted(b.company.registration_number for b in setup.opened.bidders)
    assert sorted(b["id"] for b in scored["bids"]) == ids
    assert all(set(b["technical"]) == {"E1", "E2", "E3"} for b in scored["bids"])
    assert scored["result"]["ranking"][0]["rank"] == 1
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "evaluation.unblinded")
    ).all()
    assert len(events) == 1
    data = json.loads(events[0].data)
    assert data["mapping_sha256"] == queries.mapping_digest(tender)
    assert data["scoring_sha256"] == evaluation.scoring_sha256
    with pytest.raises(Conflict):
        operations.unblind(chair, tender)
    db.session.rollback()
    outcome = operations.results(setup.experts[2], tender)
    assert len(outcome.candidates) == 3
    assert [line.rank for line in outcome.lines] == [1, 2, 3]
    # The lowest price wins here (equal technical scores).
    assert outcome.candidates[0].data["price"] == "500000.00"

    calls = []

    def receiver(sender, actor, evaluation):
        calls.append((actor, sender, evaluation))

    # Only this receiver: the record job's own (connected by the app factory) is tested in
    # tests/app/test_records.py.
    evaluation_finalised.disconnect(request_record_on_finalise)
    try:
        with evaluation_finalised.connected_to(receiver):
            with pytest.raises(OperationError):
                operations.finalise(setup.experts[1], tender)
            db.session.rollback()
            operations.finalise(chair, tender)
            db.session.commit()
    finally:
        evaluation_finalised.connect(request_record_on_finalise)
    assert queries.evaluation_of(tender).stage == EvaluationStage.FINALISED
    assert len(calls) == 1 and calls[0][0].id == chair.id and calls[0][1].id == tender.id
    assert actions()[-1] == "evaluation.finalised"
    assert db.session.get(type(tender), tender.id).status == TenderStatus.EVALUATING
    assert verify_chain() is None


def test_codes_decide_nothing_scores_follow_the_code(setup):
    """A bid scored higher by every expert ranks above one equal in everything else."""
    tender = setup.tender
    evaluated = {e.bid_id: e.code for e in setup.evaluated()}
    # Bids 0 and 2 cost 500000 and 510000: give bid 2 much better technical scores.
    strong = evaluated[setup.opened.bids[2].id]
    overrides = {(strong, "specification_compliance"): "24"}
    lock_all(setup, {1: overrides, 2: overrides, 3: overrides})
    operations.unblind(setup.chair, tender)
    db.session.commit()
    outcome = operations.results(setup.chair, tender)
    assert outcome.candidates[0].code == strong


# --- pages and API --------------------------------------------------------------------------


def test_pages_save_refuse_and_lock(setup, app):
    tender, expert = setup.tender, setup.experts[1]
    client = app.test_client()
    AuthActions(client).login(expert)
    code = setup.codes()[0]
    page = client.get(f"/scoring/tenders/{tender.id}")
    assert page.status_code == 200 and code in page.get_data(as_text=True)
    page = client.get(f"/scoring/tenders/{tender.id}/bids/{code}")
    assert page.status_code == 200
    fields = {f"score_{c.key}": middle(c) for c in scoring_file.criteria_of(tender)}
    fields["score_training"] = "5"  # the maximum, without a reason
    response = client.post(f"/scoring/tenders/{tender.id}/bids/{code}", data=fields)
    assert response.status_code == 400
    assert "needs a written reason" in response.get_data(as_text=True)
    assert score_count() == 0
    fields["reason_training"] = "Complete training plan."
    response = client.post(f"/scoring/tenders/{tender.id}/bids/{code}", data=fields)
    assert response.status_code == 302
    assert score_count() == 5
    document = client.get(f"/scoring/tenders/{tender.id}/bids/{code}/document")
    assert document.status_code == 200 and document.data.startswith(b"%PDF-")
    assert document.headers["Content-Disposition"] == f'inline; filename="{code}.pdf"'
    assert document.headers["Cache-Control"] == "private, no-store"
    assert "object-src 'self'" in document.headers["Content-Security-Policy"]
    assert "object-src 'none'" in page.headers["Content-Security-Policy"]
    assert client.get(f"/scoring/tenders/{tender.id}/panel").status_code == 403
    response = client.post(f"/scoring/tenders/{tender.id}/lock")
    assert response.status_code == 303  # incomplete: refused with a message
    assert queries.sheet_of(expert, tender).locked_at is None
    fill_sheet(expert, tender)
    assert client.post(f"/scoring/tenders/{tender.id}/lock").status_code == 302
    assert queries.sheet_of(expert, tender).locked_at is not None
    page = client.get(f"/scoring/tenders/{tender.id}/bids/{code}")
    assert 'name="score_training"' not in page.get_data(as_text=True)  # read-only now
    assert client.get(f"/scoring/tenders/{tender.id}/results").status_code == 409


def test_chair_pages_unblind_and_results(setup, app):
    tender, chair = setup.tender, setup.chair
    lock_all(setup)
    client = app.test_client()
    AuthActions(client).login(chair)
    page = client.get(f"/scoring/tenders/{tender.id}/panel")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in text and "<title" in text
    response = client.post(f"/scoring/tenders/{tender.id}/unblind")
    assert response.status_code == 302
    page = client.get(f"/scoring/tenders/{tender.id}/results")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for bidder in setup.opened.bidders:
        assert bidder.company.name in text
    for code in setup.codes():
        assert code in text
    assert "Benchmark" in text
    staff = app.test_client()
    AuthActions(staff).login(staff_of(tender))
    assert staff.get(f"/scoring/tenders/{tender.id}/results").status_code == 200
    assert client.post(f"/scoring/tenders/{tender.id}/finalise").status_code == 302
    assert queries.evaluation_of(tender).stage == EvaluationStage.FINALISED


def test_api_mirrors_the_sheet(setup, app):
    tender, expert, chair = setup.tender, setup.experts[1], setup.chair
    client = app.test_client()

    def headers(user):
        token = create_api_token(user, "api")
        db.session.commit()
        return {"Authorization": f"Bearer {token}"}

    mine, chairs = headers(expert), headers(chair)
    base = f"/api/v1/tenders/{tender.id}/scoring"
    sheet = client.get(f"{base}/sheet", headers=mine)
    assert sheet.status_code == 200
    body = sheet.get_json()
    assert [b["code"] for b in body["bids"]] == setup.codes()
    document = client.get(body["bids"][0]["document_url"], headers=mine)
    assert document.status_code == 200 and document.data.startswith(b"%PDF-")
    assert document.headers["Content-Disposition"] == f'inline; filename="{setup.codes()[0]}.pdf"'
    assert "object-src 'self'" in document.headers["Content-Security-Policy"]
    assert client.get(body["bids"][0]["document_url"]).status_code == 401
    code = setup.codes()[0]
    refused = client.put(
        f"{base}/sheet",
        headers=mine,
        json={"scores": [{"code": code, "criterion": "training", "score": "5.25"}]},
    )
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_score"
    assert refused.get_json()["detail"][0]["code"] == code
    assert score_count() == 0
    entries = [
        {"code": c, "criterion": k.key, "score": middle(k)}
        for c in setup.codes()
        for k in scoring_file.criteria_of(tender)
    ]
    saved = client.put(f"{base}/sheet", headers=mine, json={"scores": entries})
    assert saved.status_code == 200 and saved.get_json()["filled"] == 15
    progress = client.get(f"{base}/progress", headers=chairs)
    assert progress.status_code == 200
    assert [m["filled"] for m in progress.get_json()["members"]] == [0, 15, 0]
    assert "scores" not in progress.get_json()
    assert client.get(f"{base}/progress", headers=mine).status_code == 403
    assert client.post(f"{base}/sheet/lock", headers=mine).status_code == 200
    assert client.post(f"{base}/sheet/lock", headers=mine).status_code == 409
    fill_sheet(chair, tender)
    lock(chair, tender)
    fill_sheet(setup.experts[2], tender)
    lock(setup.experts[2], tender)
    progress = client.get(f"{base}/progress", headers=chairs).get_json()
    assert progress["scores"][code]["training"]["E2"]["score"] == middle(
        criteria(setup)["training"]
    )
    reopened = client.post(
        f"{base}/reopen", headers=chairs, json={"seat": 2, "reason": "Typo in a score."}
    )
    assert reopened.status_code == 200
    assert client.post(f"{base}/unblind", headers=chairs).status_code == 409
    assert client.post(f"{base}/sheet/lock", headers=mine).status_code == 200
    unblinded = client.post(f"{base}/unblind", headers=chairs)
    assert unblinded.status_code == 200
    assert unblinded.get_json()["stage"] == "unblinded"
    results = client.get(f"{base}/results", headers=mine).get_json()
    assert len(results["candidates"]) == 3
    assert {line["bidder_id"] for line in results["ranking"]} == {
        b.company.registration_number for b in setup.opened.bidders
    }
    assert client.post(f"{base}/finalise", headers=mine).status_code == 403
    assert client.post(f"{base}/finalise", headers=chairs).status_code == 200
    outsider = client.get(f"{base}/sheet", headers=headers(staff_of(tender)))
    assert outsider.status_code == 403


# --- charts ---------------------------------------------------------------------------------


def test_charts_escape_text_and_carry_title_and_desc():
    svg = charts.price_chart_svg(
        [("<script>alert(1)</script>", Decimal("100.00")), ("B & Co", Decimal("120.50"))],
        Decimal("100.00"),
        title="Prices <b>",
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "B &amp; Co" in svg
    assert "<title id=" in svg and "<desc id=" in svg and 'role="img"' in svg
    assert "style=" not in svg and "stroke-dasharray" in svg
    spread = charts.score_spread_svg(
        [("T-7QK", {"E1": Decimal("5"), "E2": Decimal("6"), "E3": Decimal("10")}, {"E3"})],
        Decimal("10"),
        title="Quality",
    )
    assert "E3 10 (outlier)" in spread and "style=" not in spread
    # three dots and one outlier ring in the plot, each with its tooltip
    assert len(re.findall(r"<circle [^>]*><title>", spread)) == 4
    # a legend: each expert, the mean and the outlier ring
    assert spread.count('<g class="legend-item"') == 5


def test_a_full_tie_is_separated_by_a_replayable_lot_draw(make_tender, make_user):
    """Two identical bids (same price, same fields, same technical scores): the tie-breaks
    cannot separate them, finalising is refused until the chair draws lots; the draw is
    HMAC-SHA256 keyed with the input hash, recorded, and recomputes the ranking."""
    tied = scoring_tender(make_tender, make_user, [PRICES[0], PRICES[0], PRICES[1]])
    tender, chair = tied.tender, tied.chair
    lock_all(tied)
    evaluation = operations.unblind(chair, tender)
    db.session.commit()
    assert queries.needs_lot_draw(evaluation)
    with pytest.raises(Conflict) as refused:
        operations.finalise(chair, tender)
    assert refused.value.code == "needs_draw"
    db.session.rollback()
    with pytest.raises(OperationError):
        operations.draw_lots(tied.experts[1], tender)  # the chair only
    db.session.rollback()
    seed = evaluation.scoring_sha256
    group = next(
        list(g["bids"])
        for tie in json.loads(evaluation.scoring_json)["result"]["ties"]
        for g in tie["needs_draw"]
    )
    operations.draw_lots(chair, tender)
    db.session.commit()
    assert not queries.needs_lot_draw(evaluation)
    scored = evaluation_lib.parse_json(evaluation.scoring_json)
    assert evaluation_lib.verify(scored) == []
    ranks = {r["bid"]: r["rank"] for r in scored["result"]["ranking"]}
    winner, second = queries.lot_draw_order(seed, group)
    assert ranks[winner] < ranks[second]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "evaluation.lot_drawn"))
    assert json.loads(event.data)["groups"] == [[winner, second]]
    with pytest.raises(Conflict):
        operations.draw_lots(chair, tender)  # nothing left to draw
    db.session.rollback()
    operations.finalise(chair, tender)
    db.session.commit()
