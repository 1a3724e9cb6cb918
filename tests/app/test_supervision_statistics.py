"""Supervision statistics (app/supervision/statistics.py): figures against hand-computed
values, the same from the page, the CSV files (read back with the csv module: numbers are
numbers, formula-like text is neutralised) and the JSON API; accessible SVG charts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask_babel import refresh

from app.accounts.models import Role
from app.audit import append_event
from app.bids.models import Bid
from app.extensions import db
from app.results.models import Objection, ResultNotice
from tests.conftest import AuthActions
from tests.factories.accounts import token_for

P = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


@pytest.fixture
def stats_world(app, make_centre, make_tender, make_user):
    centre = make_centre(code="STAT")
    bidder = make_user(Role.BIDDER)

    def tender(
        status, budget="1000000.00", bids=0, award=None, days=None, objection=False, title=None
    ):
        t = make_tender(centre=centre, status=status, keyed=False, title=title)
        t.budget = Decimal(budget)
        t.published_at = P
        for n in range(bids):
            db.session.add(
                Bid(
                    tender_id=t.id,
                    company_id=bidder.company_id,
                    submitted_by_id=bidder.id,
                    envelope_sha256=f"{t.id:032x}{n:032x}",
                    size=10,
                    received_at=P,
                    receipt="{}",
                )
            )
        if award is not None:
            candidates = ResultNotice(
                tender_id=t.id,
                kind="candidates",
                published_at=P + timedelta(days=days - 5),
                content={"candidates": [{"rank": 1, "price": award}]},
            )
            db.session.add(candidates)
            db.session.flush()
            db.session.add(
                ResultNotice(
                    tender_id=t.id,
                    kind="award",
                    published_at=P + timedelta(days=days),
                    content={"candidates": [{"rank": 1, "price": award}]},
                )
            )
            if objection:
                db.session.add(
                    Objection(
                        tender_id=t.id,
                        notice_id=candidates.id,
                        company_id=bidder.company_id,
                        filed_by_id=bidder.id,
                        text="No.",
                        status="dismissed",
                    )
                )
        db.session.commit()
        return t

    t1 = tender("awarded", bids=3, award="800000.00", days=30, objection=True)
    tender("awarded", budget="500000.00", bids=1, award="450000.00", days=20)
    failed = tender("failed", bids=1)
    tender("published")
    retender = tender("published", title='=HYPERLINK("http://evil")')
    append_event(
        "tender.retender_of",
        object_type="tender",
        object_id=retender.id,
        data={"original_id": failed.id},
    )
    db.session.commit()
    supervisor = make_user(Role.SUPERVISOR, centre_id=centre.id)
    client = app.test_client()
    AuthActions(client).login(supervisor)
    return {"client": client, "supervisor": supervisor, "t1": t1}


EXPECTED_CENTRE = {
    "centre": "STAT",
    "published": 5,
    "opened": 3,
    "bids_per_tender": Decimal("1.7"),
    "single_bid": 2,
    "single_bid_pct": Decimal("66.7"),
    "awarded": 2,
    "savings_pct": Decimal("16.7"),
    "days_to_award_mean": Decimal("25.0"),
    "days_to_award_median": Decimal("25.0"),
    "failed": 1,
    "failure_pct": Decimal("33.3"),
    "retenders": 1,
    "retender_pct": Decimal("20.0"),
    "objected": 1,
    "objection_pct": Decimal("50.0"),
}


def test_the_figures_match_hand_computed_values(app, stats_world):
    from app.supervision import monitoring, statistics

    with app.test_request_context():
        scope = monitoring.scope_for(stats_world["supervisor"])
        tables = statistics.compute(scope)
    centre, total = tables["centres"].as_dicts()
    assert centre == EXPECTED_CENTRE
    assert total == {**EXPECTED_CENTRE, "centre": "All"}
    assert tables["bids"].rows == [[1, 2, Decimal("66.7")], [3, 1, Decimal("33.3")]]
    assert tables["monthly"].rows == [
        ["STAT", "2026-03", 5, Decimal("4500000.00"), Decimal("1250000.00")]
    ]


def test_csv_files_read_back_with_types_and_the_json_api_agrees(app, stats_world):
    client = stats_world["client"]
    response = client.get("/supervision/statistics/centres.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), quoting=csv.QUOTE_NONNUMERIC)
    header, *rows = list(reader)
    assert header[0] == "centre" and rows[0][0] == "STAT"
    # Unquoted cells are numbers to a spreadsheet (QUOTE_NONNUMERIC reads them as floats).
    assert rows[0][1] == 5.0 and rows[0][3] == 1.7 and rows[0][7] == 16.7
    assert client.get("/supervision/statistics/nothing.csv").status_code == 404

    api = app.test_client().get(
        "/api/v1/supervision/statistics", headers=token_for(stats_world["supervisor"])
    )
    centre = api.get_json()["tables"]["centres"]["rows"][0]
    assert centre["savings_pct"] == "16.7" and centre["opened"] == 3
    assert api.get_json()["tables"]["monthly"]["rows"][0]["budget"] == "4500000.00"

    # A title that a spreadsheet would run as a formula is text in the dashboard's CSV.
    dashboard = client.get("/supervision/dashboard.csv").get_data(as_text=True)
    titles = [r["title"] for r in csv.DictReader(io.StringIO(dashboard.lstrip("\ufeff")))]
    assert '\'=HYPERLINK("http://evil")' in titles
    assert not any(t.startswith(("=", "+", "-", "@")) for t in titles)


def test_the_page_has_accessible_translated_charts(app, stats_world):
    client = stats_world["client"]
    page = client.get("/supervision/statistics").get_data(as_text=True)
    assert page.count('role="img"') == 8
    assert '<title id="stat-chart-title-' in page and '<desc id="stat-chart-desc-' in page
    assert "STAT: 66.7%" in page  # the description states the values
    assert "<script" not in page.split('id="charts"')[1].split("</section>")[0]
    client.get("/language/ko?next=/")
    refresh()  # the test's app context cached the locale of the requests before
    korean = client.get("/supervision/statistics").text
    refresh()
    assert '<title id="stat-chart-title-' in korean and "입찰 건당 입찰서 수" in korean
