"""Statistics of the centres a supervisor oversees, for one scope (centre, category, period
of publication: app.supervision.monitoring.Scope). Three tables, each a header and rows of
plain values (str, int, Decimal), the same for the page, its charts, the CSV files and the
JSON API:

- `monthly`: tenders published and their value by centre and month (budget; awarded value).
- `bids`: how many tenders received 0, 1, 2, … bids (tenders past their opening).
- `centres`: per centre and in total: tenders opened, bids per tender, single-bid tenders and
  their share, savings against the budget of the awarded tenders (1 − awarded / budget,
  over the tenders with both), days from publication to award (mean and median), failures
  and the failure rate (failed / ended), re-tenders and their rate (re-tenders / published),
  objections and the objection rate (tenders with an objection / tenders with candidates).

Counts only, no bidder: nothing here names who bid.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from types import SimpleNamespace
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.audit import AuditEvent
from app.bids.models import Bid, BidStatus
from app.extensions import db
from app.portal.ocds import notice_entries
from app.results.models import NoticeKind, Objection, ResultNotice
from app.supervision.monitoring import Scope, tenders_query
from app.tenders.models import Tender, TenderStatus

PAST_OPENING = frozenset(
    {
        TenderStatus.OPENED,
        TenderStatus.EVALUATING,
        TenderStatus.CANDIDATES,
        TenderStatus.AWARDED,
        TenderStatus.FAILED,
    }
)
ONE_DP = Decimal("0.1")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Table:
    key: str
    title: Any  # a lazy string
    columns: list[tuple[str, Any]]  # (key, label)
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        keys = [key for key, _label in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]

    def json(self) -> dict[str, Any]:
        return {
            "title": str(self.title),
            "columns": [{"key": k, "label": str(label)} for k, label in self.columns],
            "rows": [{k: _json_value(v) for k, v in row.items()} for row in self.as_dicts()],
        }


def _json_value(value: Any) -> Any:
    # Money and rates stay exact: decimal strings, as everywhere in the API.
    return format(value, "f") if isinstance(value, Decimal) else value


def _pct(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(ONE_DP, ROUND_HALF_UP)


def _price(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError, TypeError):
        return None


def _award_value(notice: ResultNotice) -> Decimal | None:
    prices = [
        _price(entry.get("price"))
        for entry in notice_entries(SimpleNamespace(kind="award", content=notice.content))
    ]
    prices = [p for p in prices if p is not None]
    return sum(prices, Decimal(0)) if prices else None


def compute(scope: Scope) -> dict[str, Table]:
    tenders = list(db.session.scalars(tenders_query(scope).order_by(Tender.id)))
    ids = [t.id for t in tenders]
    codes = {c.id: c.code for c in scope.centres}

    awards = {
        n.tender_id: n
        for n in db.session.scalars(
            select(ResultNotice)
            .where(
                ResultNotice.tender_id.in_(ids),
                ResultNotice.kind == NoticeKind.AWARD,
                ResultNotice.superseded_at.is_(None),
            )
            .order_by(ResultNotice.published_at)
        )
    }
    with_candidates = set(
        db.session.scalars(
            select(ResultNotice.tender_id).where(
                ResultNotice.tender_id.in_(ids), ResultNotice.kind == NoticeKind.CANDIDATES
            )
        )
    )
    with_objections = set(
        db.session.scalars(select(Objection.tender_id).where(Objection.tender_id.in_(ids)))
    )
    bid_counts = dict(
        db.session.execute(
            select(Bid.tender_id, func.count(Bid.id))
            .where(Bid.tender_id.in_(ids), Bid.status == BidStatus.SUBMITTED)
            .group_by(Bid.tender_id)
        ).all()
    )
    retenders = set()
    for object_id, data in db.session.execute(
        select(AuditEvent.object_id, AuditEvent.data).where(
            AuditEvent.action == "tender.retender_of",
            AuditEvent.object_type == "tender",
            AuditEvent.object_id.in_([str(i) for i in ids]),
        )
    ):
        if isinstance(json.loads(data).get("original_id"), int):
            retenders.add(int(object_id))

    # Monthly: tenders and value by centre and month of publication.
    monthly: dict[tuple[str, str], list[Any]] = {}
    for tender in tenders:
        published = tender.published_at or tender.publication_at
        key = (codes.get(tender.centre_id, ""), published.strftime("%Y-%m"))
        row = monthly.setdefault(key, [key[0], key[1], 0, Decimal("0.00"), Decimal("0.00")])
        row[2] += 1
        row[3] += tender.budget or Decimal(0)
        award = awards.get(tender.id)
        value = _award_value(award) if award is not None else None
        row[4] += value or Decimal(0)
    monthly_rows = [monthly[key] for key in sorted(monthly)]
    for row in monthly_rows:
        row[3], row[4] = row[3].quantize(CENT), row[4].quantize(CENT)

    # Bids per tender, past the opening.
    opened = [t for t in tenders if t.status in PAST_OPENING]
    distribution = Counter(bid_counts.get(t.id, 0) for t in opened)
    bids_rows = [
        [n, distribution[n], _pct(distribution[n], len(opened))] for n in sorted(distribution)
    ]

    # Per centre, then in total.
    groups: dict[str, list[Tender]] = defaultdict(list)
    for tender in tenders:
        groups[codes.get(tender.centre_id, "")].append(tender)
    centre_rows = [
        _centre_row(
            code, groups[code], bid_counts, awards, retenders, with_candidates, with_objections
        )
        for code in [c.code for c in scope.centres]
        if groups.get(code)
    ]
    if tenders:
        centre_rows.append(
            _centre_row(
                str(_l("All")),
                tenders,
                bid_counts,
                awards,
                retenders,
                with_candidates,
                with_objections,
            )
        )
    return {
        "monthly": Table(
            "monthly",
            _l("Tenders and value by centre and month"),
            [
                ("centre", _l("Centre")),
                ("month", _l("Month")),
                ("tenders", _l("Tenders published")),
                ("budget", _l("Budget total")),
                ("awarded_value", _l("Awarded value")),
            ],
            monthly_rows,
        ),
        "bids": Table(
            "bids",
            _l("Bids per tender"),
            [
                ("bids", _l("Bids")),
                ("tenders", _l("Tenders")),
                ("share_pct", _l("Share (%)")),
            ],
            bids_rows,
        ),
        "centres": Table(
            "centres",
            _l("Competition and outcomes by centre"),
            [
                ("centre", _l("Centre")),
                ("published", _l("Tenders published")),
                ("opened", _l("Tenders opened")),
                ("bids_per_tender", _l("Bids per tender")),
                ("single_bid", _l("Single-bid tenders")),
                ("single_bid_pct", _l("Single-bid share (%)")),
                ("awarded", _l("Awarded")),
                ("savings_pct", _l("Savings against budget (%)")),
                ("days_to_award_mean", _l("Days from publication to award (mean)")),
                ("days_to_award_median", _l("Days from publication to award (median)")),
                ("failed", _l("Failed")),
                ("failure_pct", _l("Failure rate (%)")),
                ("retenders", _l("Re-tenders")),
                ("retender_pct", _l("Re-tender rate (%)")),
                ("objected", _l("Tenders with an objection")),
                ("objection_pct", _l("Objection rate (%)")),
            ],
            centre_rows,
        ),
    }


def _centre_row(
    label: str,
    tenders: list[Tender],
    bid_counts: dict[int, int],
    awards: dict[int, ResultNotice],
    retenders: set[int],
    with_candidates: set[int],
    with_objections: set[int],
) -> list[Any]:
    opened = [t for t in tenders if t.status in PAST_OPENING]
    bids = [bid_counts.get(t.id, 0) for t in opened]
    single = sum(1 for n in bids if n == 1)
    awarded = [t for t in tenders if t.status == TenderStatus.AWARDED and t.id in awards]
    budget = awarded_total = Decimal(0)
    days = []
    for tender in awarded:
        notice = awards[tender.id]
        value = _award_value(notice)
        if value is not None and tender.budget:
            budget += tender.budget
            awarded_total += value
        start = tender.published_at or tender.publication_at
        days.append(Decimal((notice.published_at - start).total_seconds()) / 86400)
    savings = _pct(budget - awarded_total, budget) if budget else None
    failed = sum(1 for t in tenders if t.status == TenderStatus.FAILED)
    ended = failed + len([t for t in tenders if t.status == TenderStatus.AWARDED])
    candidates = [t for t in tenders if t.id in with_candidates]
    objected = sum(1 for t in candidates if t.id in with_objections)
    return [
        label,
        len(tenders),
        len(opened),
        (Decimal(sum(bids)) / len(bids)).quantize(ONE_DP, ROUND_HALF_UP) if bids else None,
        single,
        _pct(single, len(opened)),
        len(awarded),
        savings,
        (sum(days, Decimal(0)) / len(days)).quantize(ONE_DP, ROUND_HALF_UP) if days else None,
        Decimal(median(days)).quantize(ONE_DP, ROUND_HALF_UP) if days else None,
        failed,
        _pct(failed, ended),
        sum(1 for t in tenders if t.id in retenders),
        _pct(sum(1 for t in tenders if t.id in retenders), len(tenders)),
        objected,
        _pct(objected, len(candidates)),
    ]
