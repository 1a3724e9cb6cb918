"""The evaluation of a tender divided into lots: one scoring file per lot (the lot's
reference, its own ceiling, its own opened lines), ranking per lot, then the cross-lot
award (兼投不兼中) stored with the evaluation and replayable from its record."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

import evaluation as evaluation_lib
from app.audit.models import AuditEvent
from app.core.errors import Conflict
from app.evaluations import operations, presentation, queries, scoring_file
from app.extensions import db
from app.opening.models import EvaluatedBid
from evaluation.__main__ import main as evaluation_cli
from evaluation.lots import replay
from tests.factories.lots import CEILINGS, PRICES, lots_tender, unblinded


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


def test_each_lot_is_scored_against_its_own_ceiling_and_lines(make_tender, make_user):
    tender, bidders, experts = lots_tender(make_tender, make_user, limit=None)
    evaluation = unblinded(tender, experts)
    stored = scoring_file.stored_lots(evaluation)
    assert stored["format"] == scoring_file.LOTS_FORMAT
    assert [entry["lot"] for entry in stored["lots"]] == ["1", "2", "3"]
    ids = [b.company.registration_number for b in bidders]
    for entry in stored["lots"]:
        scored = evaluation_lib.parse_json(json.dumps(entry["scoring_file"]))
        assert evaluation_lib.verify(scored) == []
        assert scored["tender"]["lot"] == entry["lot"]
        ceiling = CEILINGS.get(entry["lot"], Decimal("990000.00"))
        assert Decimal(scored["ceiling_price"]) == ceiling
        prices = {b["id"]: b["price"] for b in scored["bids"]}
        assert prices == {ids[i]: PRICES[i][entry["lot"]] for i in PRICES}
        assert scored["result"]["ranking"][0]["bid"] == ids[0]
    lot_2 = stored["lots"][1]["scoring_file"]["result"]
    compliant = {b["id"]: b["compliant"] for b in lot_2["bids"]}
    assert compliant == {ids[0]: True, ids[1]: True, ids[2]: False}  # over lot 2's ceiling
    assert ids[2] not in [r["bid"] for r in lot_2["ranking"]]
    # Without a limit each lot goes to its first-ranked bidder.
    award = stored["award"]
    assert {a["lot"]: a["winner"] for a in award["result"]["lots"]} == dict.fromkeys(
        ["1", "2", "3"], ids[0]
    )
    assert replay(award) == []


def test_the_limit_across_lots_is_applied_and_recorded(make_tender, make_user):
    tender, bidders, experts = lots_tender(make_tender, make_user, limit=1)
    evaluation = unblinded(tender, experts)
    award = scoring_file.stored_lots(evaluation)["award"]
    assert award["limit"] == 1 and award["rule"] == "lot_order"
    ids = [b.company.registration_number for b in bidders]
    winners = {a["lot"]: a["winner"] for a in award["result"]["lots"]}
    # Company 0 tops every lot but may win one: lot 1 (lot order); lot 2 goes to company 1
    # (company 2 is over lot 2's ceiling); lot 3 to the best bidder left under its limit.
    assert winners["1"] == ids[0] and winners["2"] == ids[1]
    assert winners["3"] == ids[2]
    assert replay(award) == []
    # Tampering with the recorded result is found by the replay.
    award["result"]["lots"][2]["winner"] = ids[0]
    assert replay(award) != []


def test_a_tender_of_one_lot_keeps_one_scoring_file(make_tender, make_user):
    from tests.factories.scoring import scoring_tender

    setup = scoring_tender(make_tender, make_user, ["500000.00", "520000.00", "510000.00"])
    evaluation = operations.evaluation_of(setup.tender)
    assert evaluation.lots_json is None and scoring_file.stored_lots(evaluation) is None
    assert scoring_file.score_lots(setup.tender) == []


def test_a_tie_is_drawn_within_its_own_lot(make_tender, make_user):
    tied = {i: dict(PRICES[i]) for i in PRICES}
    tied[1]["3"] = tied[0]["3"]  # companies 0 and 1 level in lot 3 only
    tender, _bidders, experts = lots_tender(make_tender, make_user, limit=None, prices=tied)
    evaluation = unblinded(tender, experts)
    assert queries.needs_lot_draw(evaluation)
    with pytest.raises(Conflict) as refused:
        operations.finalise(experts[0], tender)
    assert refused.value.code == "needs_draw"
    db.session.rollback()
    lot_3 = scoring_file.stored_lots(evaluation)["lots"][2]["scoring_file"]["result"]
    seed = lot_3["input_sha256"]
    group = next(list(g["bids"]) for tie in lot_3["ties"] for g in tie["needs_draw"])
    operations.draw_lots(experts[0], tender)
    db.session.commit()
    assert not queries.needs_lot_draw(evaluation)
    winner, second = queries.lot_draw_order(seed, group)
    stored = scoring_file.stored_lots(evaluation)
    ranks = {r["bid"]: r["rank"] for r in stored["lots"][2]["scoring_file"]["result"]["ranking"]}
    assert ranks[winner] < ranks[second]
    assert {a["lot"]: a["winner"] for a in stored["award"]["result"]["lots"]}["3"] == winner
    # Only lot 3's bids were drawn.
    drawn = db.session.scalars(select(EvaluatedBid).where(EvaluatedBid.lot_draw.is_not(None)))
    assert len(list(drawn)) == 2
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "evaluation.lot_drawn"))
    assert json.loads(event.data)["lots"] == [
        {"lot": "3", "seed": seed, "groups": [[winner, second]]}
    ]


def test_python_m_evaluation_verify_checks_every_lot_and_the_award(
    make_tender, make_user, tmp_path, capsys
):
    tender, _bidders, experts = lots_tender(make_tender, make_user, limit=1)
    evaluation = unblinded(tender, experts)
    good = tmp_path / "lots.json"
    good.write_text(evaluation.lots_json, encoding="utf-8")
    assert evaluation_cli(["verify", str(good)]) == 0
    assert "every lot (1, 2, 3) and the award" in capsys.readouterr().out
    # A lot's recorded ranking changed, and an award whose input is not the lots' rankings.
    doc = json.loads(evaluation.lots_json)
    doc["lots"][1]["scoring_file"]["result"]["ranking"].reverse()
    doc["award"]["lots"][0]["ranking"][0]["price"] = "1.00"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert evaluation_cli(["verify", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "lot 2: $.result.ranking" in out
    assert "award: its input is not the lots' rankings" in out


def test_the_review_shows_each_lots_price_working_and_each_bids_lot(app, make_tender, make_user):
    from tests.conftest import AuthActions

    tender, bidders, experts = lots_tender(make_tender, make_user, limit=1)
    data = presentation.review_data(tender)
    assert data["price"] is None
    assert [part["lot"] for part in data["lots"]] == ["1", "2", "3"]
    by_lot: dict[str, list] = {}
    for bid in data["bids"]:
        by_lot.setdefault(bid["lot"], []).append(bid)
    assert {lot: len(rows) for lot, rows in by_lot.items()} == {"1": 3, "2": 3, "3": 3}
    over = next(b for b in by_lot["2"] if b["company"] == bidders[2].company.name)
    assert over["price"] == "250000.00" and over["compliant"] is False
    # lot 2's ceiling, as money in the reader's language
    assert any("200,000.00" in r["message"] for r in over["reasons"]), over["reasons"]
    same_company = next(b for b in by_lot["1"] if b["company"] == bidders[2].company.name)
    assert same_company["compliant"] is not False  # lot 1's ceiling is 990000.00
    client = app.test_client()
    AuthActions(client).login(experts[0])
    page = client.get(f"/evaluations/tenders/{tender.id}").get_data(as_text=True)
    assert page.count('<section data-lot="') == 3
    assert page.count("Lot 2: Lot 2") == 4  # its price working and its three bids


def test_the_results_show_each_lot_and_its_winner_under_the_limit(app, make_tender, make_user):
    from tests.conftest import AuthActions

    tender, bidders, experts = lots_tender(make_tender, make_user, limit=1)
    unblinded(tender, experts)
    outcome = operations.results(experts[0], tender)
    assert [lot.lot for lot in outcome.lots] == ["1", "2", "3"]
    names = [b.company.name for b in bidders]
    assert [lot.winner.company.name for lot in outcome.lots] == names
    assert all(len(lot.lines) == 3 for lot in outcome.lots)
    # Company 0 is first in lot 2 but wins lot 1 only.
    assert outcome.lots[1].lines[0].company.name == names[0]
    client = app.test_client()
    AuthActions(client).login(experts[0])
    page = client.get(f"/scoring/tenders/{tender.id}/results").get_data(as_text=True)
    assert page.count('<section data-lot="') == 3
    assert f"Winner under the limit across lots: {names[1]}" in page


def test_a_lot_failed_at_the_opening_has_an_empty_file_and_no_winner(make_tender, make_user):
    thin = {i: {k: v for k, v in PRICES[i].items() if k != "3" or i == 0} for i in PRICES}
    tender, bidders, experts = lots_tender(make_tender, make_user, limit=None, prices=thin)
    evaluation = unblinded(tender, experts)
    stored = scoring_file.stored_lots(evaluation)
    lot_3 = stored["lots"][2]["scoring_file"]
    assert lot_3["tender"]["lot"] == "3" and lot_3["bids"] == []
    assert lot_3["result"]["ranking"] == []
    winners = {a["lot"]: a["winner"] for a in stored["award"]["result"]["lots"]}
    assert winners["3"] is None and winners["1"] == bidders[0].company.registration_number
    outcome = operations.results(experts[0], tender)
    assert outcome.lots[2].winner is None and outcome.lots[2].lines == []
