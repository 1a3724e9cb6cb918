"""The statistics page: charts (server-rendered SVG) and tables, each table as CSV."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from flask import abort, render_template
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.portal.queries import CATEGORIES
from app.supervision import monitoring, statistics
from app.supervision.charts import bar_chart_svg
from app.supervision.csvfile import csv_response
from app.supervision.live import scope_from_request
from app.supervision.views import bp


def _charts(tables: dict[str, statistics.Table]) -> list[Markup]:
    monthly: dict[str, int] = defaultdict(int)
    for row in tables["monthly"].as_dicts():
        monthly[row["month"]] += row["tenders"]
    by_centre = tables["centres"].as_dicts()

    def per_centre(key: str) -> list[tuple[str, Decimal | int | None]]:
        return [(row["centre"], row[key]) for row in by_centre]

    charts = [
        bar_chart_svg(
            _("Tenders published by month"),
            _("Number of tenders published in each month."),
            [(month, monthly[month]) for month in sorted(monthly)],
        ),
        bar_chart_svg(
            _("Bids per tender"),
            _("Number of tenders past their opening that received each number of bids."),
            [(_("%(n)s bids", n=row["bids"]), row["tenders"]) for row in tables["bids"].as_dicts()],
        ),
        bar_chart_svg(
            _("Single-bid share by centre"),
            _("Share of the tenders past their opening that received exactly one bid."),
            per_centre("single_bid_pct"),
            "%",
        ),
        bar_chart_svg(
            _("Savings against budget by centre"),
            _("One minus the awarded value over the budget, for the awarded tenders."),
            per_centre("savings_pct"),
            "%",
        ),
        bar_chart_svg(
            _("Days from publication to award by centre"),
            _("Mean number of days from publication to the award notice."),
            per_centre("days_to_award_mean"),
        ),
        bar_chart_svg(
            _("Failure rate by centre"),
            _("Failed tenders over the tenders that ended (awarded or failed)."),
            per_centre("failure_pct"),
            "%",
        ),
        bar_chart_svg(
            _("Re-tender rate by centre"),
            _("Tenders that re-tender a failed one, over the tenders published."),
            per_centre("retender_pct"),
            "%",
        ),
        bar_chart_svg(
            _("Objection rate by centre"),
            _("Tenders with an objection over the tenders whose candidates were published."),
            per_centre("objection_pct"),
            "%",
        ),
    ]
    # Our own escaped SVG text (app.supervision.charts).
    return [Markup(chart) for chart in charts]  # noqa: S704


@bp.route("/statistics")
def statistics_page() -> str:
    scope = scope_from_request()
    tables = statistics.compute(scope)
    return render_template(
        "supervision/statistics.html",
        scope=scope,
        tables=tables,
        charts=_charts(tables),
        jurisdiction=monitoring.jurisdiction(current_user),
        categories=CATEGORIES,
        periods=monitoring.PERIODS,
    )


@bp.route("/statistics/<table>.csv")
def statistics_csv(table: str) -> Response:
    scope = scope_from_request()
    tables = statistics.compute(scope)
    if table not in tables:
        abort(404)
    found = tables[table]
    return csv_response(f"{table}.csv", [key for key, _label in found.columns], found.rows)
