"""What the public portal reads: announcement search, a public tender, feed entries.

Nothing here writes. Drafts never leave this module: every query filters on
PUBLIC_STATUSES, so a view cannot forget it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import NamedTuple
from urllib.parse import urlencode

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, Select, String, bindparam, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from app.centres.models import TradingCentre
from app.core.formatting import platform_timezone
from app.errors import abort_with
from app.extensions import db
from app.tenders.models import PUBLIC_STATUSES, DocumentKind, Tender, TenderStatus

NO_TENDER = _l("There is no published tender with this number.")
PER_PAGE = 20
MAX_PAGE = 10_000
MAX_TEXT = 200
FEED_SIZE = 50

# The tender categories of the template schema (app/tender_templates/template.schema.json).
CATEGORIES = {
    "goods": _l("Goods"),
    "works": _l("Works"),
    "services": _l("Services"),
    "asset_sale": _l("Asset and land-use right sale"),
}
# Public statuses in lifecycle order, for the search form.
PUBLIC_STATUS_ORDER = [status for status in TenderStatus if status in PUBLIC_STATUSES]

_CENTRE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,31}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadQuery(ValueError):
    """A search parameter the portal cannot use; the message is shown to the user."""

    def __init__(self, message) -> None:
        super().__init__(str(message))
        self.message = message


@dataclass(frozen=True)
class TenderQuery:
    """A validated, normalised announcement search. Equal searches are equal objects, so
    `canonical()` is a cache key and the query string of a stable URL."""

    text: str = ""
    centre: str = ""
    category: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    def params(self, page: int | None = None) -> dict[str, str]:
        """Non-empty parameters in a fixed order (page omitted when 1)."""
        values = {
            "q": self.text,
            "centre": self.centre,
            "category": self.category,
            "status": self.status,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        page = self.page if page is None else page
        if page != 1:
            values["page"] = str(page)
        return {key: value for key, value in values.items() if value}

    def canonical(self) -> str:
        return urlencode(self.params())

    @property
    def filtered(self) -> bool:
        return bool({key for key in self.params() if key != "page"})


def parse_query(args) -> TenderQuery:
    """Validate request arguments; raises BadQuery with a message for the user. Unknown
    parameters are ignored (and so never split the cache)."""
    text = " ".join((args.get("q") or "").split())
    if len(text) > MAX_TEXT:
        raise BadQuery(_l("Search for at most %(n)d characters.", n=MAX_TEXT))
    centre = (args.get("centre") or "").strip().upper()
    if centre and not _CENTRE_CODE.match(centre):
        raise BadQuery(_l("There is no trading centre with the code “%(code)s”.", code=centre[:40]))
    category = (args.get("category") or "").strip()
    if category and category not in CATEGORIES:
        raise BadQuery(
            _l(
                "Unknown category “%(value)s”: choose one of %(choices)s.",
                value=category[:40],
                choices=", ".join(CATEGORIES),
            )
        )
    status = (args.get("status") or "").strip()
    if status and status not in PUBLIC_STATUSES:
        raise BadQuery(
            _l(
                "Unknown status “%(value)s”: choose one of %(choices)s.",
                value=status[:40],
                choices=", ".join(PUBLIC_STATUS_ORDER),
            )
        )
    date_from = _parse_date(args.get("from"), _l("From"))
    date_to = _parse_date(args.get("to"), _l("To"))
    if date_from and date_to and date_from > date_to:
        raise BadQuery(_l("The start of the date range is after its end."))
    raw_page = (args.get("page") or "1").strip()
    if not raw_page.isascii() or not raw_page.isdigit():
        raise BadQuery(_l("The page number must be a whole number from 1."))
    page = int(raw_page)
    if not 1 <= page <= MAX_PAGE:
        raise BadQuery(_l("The page number must be between 1 and %(n)d.", n=MAX_PAGE))
    return TenderQuery(text, centre, category, status, date_from, date_to, page)


def _parse_date(value: str | None, label) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        if not _ISO_DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(
            _l("%(field)s: write a date as YYYY-MM-DD, e.g. 2025-04-01.", field=label)
        ) from None


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=platform_timezone()).astimezone(UTC)


class ListedTender(NamedTuple):
    """What a row of the announcement list shows of a tender, and nothing else (the row
    cache, app.portal.rows, keys each rendered row by these values). Centres have no time
    zone of their own yet (app.core.formatting.centre_timezone): when they get one, it
    belongs here too. A named tuple, not a dataclass: the row cache hashes and compares
    twenty of these per page, which a tuple does in C (a frozen dataclass's generated
    `__hash__`/`__eq__` were Python calls: 78 → 49 µs for a page's row lookups)."""

    id: int
    reference: str
    title: str
    centre_name: str
    category: str
    status: str
    published_at: datetime | None
    submission_deadline: datetime


_LISTED_COLUMNS = (
    Tender.id,
    Tender.reference,
    Tender.title,
    TradingCentre.name,
    Tender.category,
    Tender.status,
    Tender.published_at,
    Tender.submission_deadline,
)


@dataclass
class TenderPage:
    items: list[ListedTender]
    total: int
    page: int
    per_page: int = PER_PAGE
    centre: TradingCentre | None = field(default=None)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def centre_by_code(code: str) -> TradingCentre | None:
    return db.session.scalar(select(TradingCentre).where(TradingCentre.code == code))


_CENTRE_CHOICES = select(TradingCentre.code, TradingCentre.name).order_by(TradingCentre.code)


def centre_choices(generation: str | None = None) -> tuple[tuple[str, str], ...]:
    """The search form's centres: (code, name) pairs in code order (what
    `app.centres.operations.all_centres` lists), without loading ORM objects.

    With the portal cache's `generation` (app.core.cache: creating a centre bumps it, and
    centres are never renamed or removed), the pairs are read once per generation and worker
    instead of by every missed list page (a statement per page: issue 18), and for no longer
    than a cached page lives (PORTAL_CACHE_SECONDS: a change made outside the service, e.g. in
    the database, shows as late as in the cached pages). Without a generation (Redis
    unavailable), they are read each time."""
    if generation is None:
        return _read_centre_choices()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    kept = app.extensions.get("fairbid_centre_choices")
    now = monotonic()
    if kept is None or kept[0] != generation or now >= kept[1]:
        lifetime = app.config["PORTAL_CACHE_SECONDS"]
        kept = (generation, now + lifetime, _read_centre_choices())
        app.extensions["fairbid_centre_choices"] = kept
    return kept[2]


def _read_centre_choices() -> tuple[tuple[str, str], ...]:
    rows = db.session.connection().execute(_CENTRE_CHOICES)
    return tuple((code, name) for code, name in rows)


def search_tenders(query: TenderQuery) -> TenderPage:
    """Public tenders matching `query`, newest publication first (id breaks ties, so pages
    never overlap): the count, and the page's rows as `ListedTender` values (the shown
    columns only, no ORM objects: issue 18, bench/README.md)."""
    centre = None
    if query.centre:
        centre = centre_by_code(query.centre)
        if centre is None:
            raise BadQuery(
                _l("There is no trading centre with the code “%(code)s”.", code=query.centre)
            )
    offset = (query.page - 1) * PER_PAGE
    params: dict[str, object] = {"offset": offset}
    if centre is not None:
        params["centre_id"] = centre.id
    if query.category:
        params["category"] = query.category
    if query.status:
        params["status"] = query.status
    if query.date_from:
        params["date_from"] = _start_of_day(query.date_from)
    if query.date_to:
        params["date_to"] = _start_of_day(query.date_to + timedelta(days=1))
    if query.text:
        params["pattern"] = "%" + _escape_like(query.text) + "%"
    count, listed = _search_statements(frozenset(params))
    # Plain rows through the session's connection (its transaction; no ORM loading, no
    # autoflush: nothing is written before a list is read). The page's rows carry the
    # count as a last column: an uncorrelated subquery, evaluated once per statement (a
    # window count made SQLite visit every match for each row: bench/README.md, "cache
    # missed"), so a page is one statement, not two.
    connection = db.session.connection()
    rows = connection.execute(listed, params).all()
    if rows:
        total = rows[0][-1]
    elif offset == 0:
        total = 0
    else:
        # Past the last page (no rows, as `db.paginate(error_out=False)` gave): the count
        # says how many there are.
        total = connection.execute(count, params).scalar() or 0
    items = [ListedTender._make(row[:-1]) for row in rows]
    return TenderPage(items=items, total=total, page=query.page, centre=centre)


@functools.cache
def _search_statements(filters: frozenset[str]) -> tuple[Select, Select]:
    """The count and the page's statement for a set of filters, with bound parameters: built
    once per combination (building them was a tenth of a missed list page; SQLAlchemy then
    finds the compiled form by the statement's own memoised cache key)."""
    conditions = [Tender.status.in_(sorted(PUBLIC_STATUSES))]
    if "centre_id" in filters:
        conditions.append(Tender.centre_id == bindparam("centre_id"))
    if "category" in filters:
        conditions.append(Tender.category == bindparam("category"))
    if "status" in filters:
        conditions.append(Tender.status == bindparam("status"))
    if "date_from" in filters:
        conditions.append(Tender.published_at >= bindparam("date_from"))
    if "date_to" in filters:
        conditions.append(Tender.published_at < bindparam("date_to"))
    if "pattern" in filters:
        pattern = bindparam("pattern", type_=String)
        conditions.append(
            or_(
                Tender.title.ilike(pattern, escape="\\"),
                Tender.reference.ilike(pattern, escape="\\"),
            )
        )
    count = select(func.count()).select_from(Tender).where(*conditions)
    listed = (
        select(*_LISTED_COLUMNS, count.scalar_subquery().correlate(None))
        .join(TradingCentre, Tender.centre_id == TradingCentre.id)
        .where(*conditions)
        .order_by(Tender.published_at.desc(), Tender.id.desc())
        .limit(PER_PAGE)
        .offset(bindparam("offset", type_=Integer))
    )
    return count, listed


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def portal_tender(tender_id: int) -> Tender:
    """A tender the public may see, with what its portal page shows loaded (the audience of
    `app.tenders.access.public_tender`, eagerly loaded); a draft or an unknown id is a 404
    that says so."""
    tender = db.session.scalar(
        select(Tender)
        .where(Tender.id == tender_id, Tender.status.in_(sorted(PUBLIC_STATUSES)))
        .options(
            joinedload(Tender.centre),
            selectinload(Tender.lots),
            selectinload(Tender.documents),
            selectinload(Tender.enquiries),
            selectinload(Tender.addenda),
        )
    )
    if tender is None:
        abort_with(404, NO_TENDER)
    return tender


def answered_enquiries(tender: Tender) -> list:
    return [enquiry for enquiry in tender.enquiries if enquiry.answered_at is not None]


def current_documents(tender: Tender) -> list:
    """What a bidder downloads now: superseded renderings of the tender document drop out;
    attachments and addendum documents stay. Only the tender's own documents: records,
    notices and letters have their own pages and their own access rules."""
    public = {kind.value for kind in DocumentKind}
    return [
        document
        for document in tender.documents
        if document.superseded_at is None and document.kind in public
    ]


def feed_tenders(
    *, centre: TradingCentre | None = None, category: str | None = None
) -> list[Tender]:
    stmt = select(Tender).where(Tender.status.in_(sorted(PUBLIC_STATUSES)))
    if centre is not None:
        stmt = stmt.where(Tender.centre_id == centre.id)
    if category is not None:
        stmt = stmt.where(Tender.category == category)
    stmt = (
        stmt.options(joinedload(Tender.centre), selectinload(Tender.addenda))
        .order_by(Tender.published_at.desc(), Tender.id.desc())
        .limit(FEED_SIZE)
    )
    return list(db.session.scalars(stmt))
