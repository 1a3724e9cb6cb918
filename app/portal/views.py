"""The public portal: announcements, tender pages, document downloads, feeds. No sign-in
needed except to download documents.

The announcement list, by cost (bench/README.md, "Portal list"):
- a signed-out visitor at an address Flask already answered gets the stored whole page from
  Redis before Flask runs (app.core.page_cache.SignedOutPages: one MGET, the server time
  filled in);
- otherwise the public fragment (search form and results) comes from Redis (app.core.cache),
  keyed on the locale and the normalised query, and the layout around it is rendered per
  request for a signed-in visitor (navigation, CSRF token, messages) or taken from the
  per-worker shell for a signed-out one (app.portal.layout);
- a missed fragment renders its rows from the per-worker cache of rows keyed by everything a
  row shows (app.portal.rows), after one statement of app.portal.queries (the page and its
  total; the form's centres are read once per cache generation and worker).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable
from typing import Any

from babel import Locale
from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask_babel import get_locale, get_translations
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from app.accounts.models import Role
from app.audit import export as audit_export
from app.bids import sealing_script
from app.bids.operations import sealing_summary
from app.core import cache, page_cache
from app.core.boundary import transactional
from app.core.formatting import centre_time, centre_time_formatter, centre_timezone, file_size
from app.core.forms import ButtonForm
from app.core.types import timestamp, utcnow
from app.core.urls import public_url
from app.custody.operations import envelope_tender_id
from app.errors import abort_with
from app.extensions import db, login_manager
from app.i18n import page_gettext
from app.portal import bundle, feeds
from app.portal import layout as layout_shell
from app.portal.queries import (
    CATEGORIES,
    NO_TENDER,
    PUBLIC_STATUS_ORDER,
    BadQuery,
    ListedTender,
    answered_enquiries,
    centre_by_code,
    centre_choices,
    current_documents,
    feed_tenders,
    parse_query,
    portal_tender,
    search_tenders,
)
from app.portal.rows import RowCache
from app.results import operations as result_operations
from app.tenders.documents import open_document, send_document
from app.tenders.forms import EnquiryForm
from app.tenders.labels import STATUS_LABELS
from app.tenders.models import PUBLIC_STATUSES, Tender, TenderDocument, TenderStatus
from app.tenders.participation import (
    bond_status,
    can_download,
    record_download,
    registration_of,
)
from app.tenders.suspension import active_suspension, suspensions_of
from app.web import redis_available

log = logging.getLogger(__name__)
bp = Blueprint("portal", __name__)

ATOM = "application/atom+xml; charset=utf-8"
# The live tender page polls while the tender may still change on its own (the clock closes
# it, then seals it); a sealing record can exist from the close on.
LIVE_STATUSES = (TenderStatus.PUBLISHED, TenderStatus.CLOSED)
SEALABLE_STATUSES = PUBLIC_STATUSES - {TenderStatus.PUBLISHED, TenderStatus.CANCELLED}


@bp.context_processor
def portal_helpers() -> dict[str, Any]:
    return {
        "CATEGORIES": CATEGORIES,
        "STATUS_LABELS": STATUS_LABELS,
        "centre_time": centre_time,
        "iso": timestamp,
        "file_size": file_size,
    }


@bp.route("/tenders/")
def tenders() -> Response:
    try:
        query = parse_query(request.args)
    except BadQuery as error:
        abort_with(400, error.message)
    babel_locale = get_locale()
    locale = str(babel_locale)
    canonical = query.canonical()
    fragment_parts = ("tenders", locale, canonical)
    # A signed-out visitor's whole page is cached too (app.core.page_cache) when the address
    # is the query's canonical one (the layout's language links carry the address; other
    # spellings would split the cache), e.g. `/tenders/` itself.
    whole = request.query_string.decode("latin-1") == canonical
    whole = whole and page_cache.anonymous_visitor()
    page_parts = ("tenders-page", locale, request.script_root, canonical)
    if not redis_available():
        (cached, key), (page, page_key) = (None, None), (None, None)
    elif whole:
        (cached, key), (page, page_key) = cache.get_many(fragment_parts, page_parts)
    else:
        (cached, key), (page, page_key) = cache.get_many(fragment_parts)[0], (None, None)
    if page is not None:
        # The signed-out page layer answers the same requests from now on (page_cache).
        page_cache.note_whole_page_served(page_key.key, locale)
        response = Response(page_cache.fill(page))
        response.headers["X-Portal-Cache"] = "hit"
        return response
    # The request's translations resolved once per template, not at each `_()`.
    gettext = page_gettext()
    if cached is None:
        try:
            results = search_tenders(query)
        except BadQuery as error:
            abort_with(400, error.message)
        # The labels translated once for the page, not at each row (a missed page's CPU
        # went there: issue 18, bench/README.md); the rows from the row cache.
        # The language and its catalogue, looked up once for the page's labels and parts.
        language = (locale, get_translations())
        labels = _labels(language)
        centre = results.centre
        fragment = _render_shared(
            "portal/_tender_list.html",
            query=query,
            results=results,
            rows=_rows(results.items, labels, babel_locale),
            # The parts every search shows alike, rendered once per worker and content.
            choices=_shared_part(
                "portal/_search_choices.html",
                language,
                labels,
                gettext,
                centres=centre_choices(key.generation if key is not None else None),
                centre=query.centre,
                category=query.category,
                status=query.status,
            ),
            head=_shared_part("portal/_list_head.html", language, labels, gettext),
            feeds=_shared_part(
                "portal/_list_feeds.html",
                language,
                labels,
                gettext,
                centre_code=centre.code if centre else None,
                centre_name=centre.name if centre else None,
            ),
            **gettext,
        )
    else:
        fragment = cached
    # The fragment is our own autoescaped template output (Redis is the deployment's own,
    # trusted store), so it goes into the layout as it is.
    layout = {
        "template": "portal/tenders.html",
        "fragment": Markup(fragment),  # noqa: S704
        **gettext,
    }
    marked = None
    if whole and page_key is not None:
        # The signed-out layout from its shell (app.portal.layout), else rendered.
        marked = layout_shell.marked_page(fragment, redis_available(), gettext)
        marked = marked or page_cache.render_marked(**layout)
    if marked is None:
        html = render_template(layout.pop("template"), **layout)
    else:
        html = page_cache.fill(marked)
    cache.store_many(
        *([(key, fragment)] if cached is None else []),
        *([(page_key, marked)] if marked is not None else []),
    )
    response = Response(html)
    # For operators and the benchmark: whether Redis served the fragment.
    response.headers["X-Portal-Cache"] = "miss" if cached is None else "hit"
    return response


_LABELS: dict[tuple, dict[str, dict[str, str]]] = {}


def _labels(key: tuple) -> dict[str, dict[str, str]]:
    """The category and status labels translated, once per language and catalogue (`key`:
    the request's locale as text and its catalogue object; the same translations give the
    same labels)."""
    labels = _LABELS.get(key)
    if labels is None:
        if len(_LABELS) > 32:
            _LABELS.clear()
        labels = _LABELS[key] = {
            "CATEGORIES": {value: str(label) for value, label in CATEGORIES.items()},
            "STATUS_LABELS": {value: str(label) for value, label in STATUS_LABELS.items()},
        }
    return labels


def _render_shared(template_name: str, **context: Any) -> str:
    """A template of the shared (cached) list, rendered with the given context and Jinja's
    globals only: not through `render_template`, whose context processors add who is signed
    in (`current_user`), the stage helpers and the like, which nothing shared may show (and
    which were a tenth of the fragment's render: issue 18)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return app.jinja_env.get_template(template_name).render(**context)


PART_CACHE_SIZE = 512


def _shared_part(
    template_name: str,
    language: tuple,
    labels: dict[str, dict[str, str]],
    gettext: dict,
    **values: Hashable,
) -> Markup:
    """A part of the list every search with the same `values` shows alike (the form's
    choices, the table head, the feed links), kept per worker in a bounded LRU like the rows
    (app.portal.rows). The key holds everything the part shows: the template, the language
    and its catalogue (`language`: the labels and `_()` are functions of these two), the script
    root (its links) and `values`, the only variables the part is given, so nothing outside
    the key can reach the cached HTML."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    parts = app.extensions.get("fairbid_portal_parts")
    if parts is None:
        parts = app.extensions["fairbid_portal_parts"] = RowCache(PART_CACHE_SIZE)
    template = app.jinja_env.get_template(template_name)
    key = (template, *language, request.script_root, tuple(values.items()))

    def render(key: tuple) -> str:
        statuses = [(status, labels["STATUS_LABELS"][status]) for status in PUBLIC_STATUS_ORDER]
        return template.render(**dict(key[-1]), statuses=statuses, **labels, **gettext)

    return parts.rows([key], render)[0]


ROW_TEMPLATE = "portal/_tender_row.html"


def _rows(
    items: list[ListedTender], labels: dict[str, dict[str, str]], locale: Locale
) -> list[Markup]:
    """The list's rows, rendered or from the worker's row cache (app.portal.rows). The key
    holds everything the row template reads: the listed values, the language (labels,
    dates), the zone the dates are written in, the script root (the link) and the template
    itself (a reloaded template in development makes new keys)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    row_cache = app.extensions.get("fairbid_portal_rows")
    if row_cache is None:
        row_cache = app.extensions["fairbid_portal_rows"] = RowCache(
            app.config["PORTAL_ROW_CACHE_SIZE"]
        )
    template = app.jinja_env.get_template(ROW_TEMPLATE)
    page = (template, str(locale), app.config["BABEL_DEFAULT_TIMEZONE"], request.script_root)
    formatter = None

    def render(key: tuple) -> str:
        nonlocal formatter
        # Babel's patterns looked up once for the page's missing rows.
        formatter = formatter or centre_time_formatter(locale)
        return template.render(tender=key[-1], centre_time=formatter, iso=timestamp, **labels)

    return row_cache.rows([(*page, item) for item in items], render)


@bp.route("/tenders/<int:tender_id>")
def tender(tender_id: int) -> str:
    tender = portal_tender(tender_id)
    now = utcnow()
    suspension = active_suspension(tender.id)
    participation = None
    if current_user.is_authenticated and current_user.role == Role.BIDDER:
        registration = registration_of(tender, current_user.company_id)
        bidding_open = tender.status == TenderStatus.PUBLISHED and suspension is None
        participation = {
            "registration": registration,
            "bond": bond_status(tender, registration),
            # The bidder area handles both forms and comes back here.
            "register_form": ButtonForm(formdata=None)
            if registration is None and bidding_open and now < tender.submission_deadline
            else None,
            "enquiry_form": EnquiryForm(formdata=None)
            if registration is not None and bidding_open and now <= tender.enquiry_deadline
            else None,
        }
    return render_template(
        "portal/tender.html",
        tender=tender,
        now=now,
        timezone=centre_timezone(tender.centre),
        documents=current_documents(tender),
        enquiries=answered_enquiries(tender),
        addenda=sorted(tender.addenda, key=lambda addendum: addendum.number, reverse=True),
        participation=participation,
        may_download=current_user.is_authenticated and can_download(current_user, tender),
        bidding_open=tender.status == TenderStatus.PUBLISHED and suspension is None,
        suspension=suspension,
        suspensions=suspensions_of(tender),
        sealing_integrity=_sealing_integrity(),
        sealing=sealing_summary(tender),
        live=tender.status in LIVE_STATUSES,
        poll_seconds=current_app.config["PORTAL_STATUS_POLL_SECONDS"],
    )


@bp.route("/tenders/<int:tender_id>/status.json")
def tender_status(tender_id: int) -> Response:
    """What the tender page's live script (static/js/tender_live.js) polls: the status
    label in the reader's language, the deadline, the server time and, once made, the
    sealing record's Merkle root and where to download it. Cheap: one row by primary key
    and, only after sealing, the record's summary (immutable, kept in Redis when it is up,
    computed otherwise). `final` tells the script to stop polling."""
    tender = db.session.scalar(
        select(Tender).where(Tender.id == tender_id, Tender.status.in_(sorted(PUBLIC_STATUSES)))
    )
    if tender is None:
        abort_with(404, NO_TENDER)
    sealing = _public_sealing(tender) if tender.status in SEALABLE_STATUSES else None
    final = sealing is not None or tender.status not in LIVE_STATUSES
    body = {
        "id": tender.id,
        "status": str(tender.status),
        "label": str(STATUS_LABELS.get(tender.status, tender.status)),
        "deadline": timestamp(tender.submission_deadline),
        "server_now": timestamp(utcnow()),
        "bidding_open": tender.status == TenderStatus.PUBLISHED,
        "sealing": sealing,
        "final": final,
    }
    response = jsonify(body)
    # Shared caches may keep it a moment (less than one poll); the label follows the
    # language cookie or Accept-Language.
    seconds = current_app.config["PORTAL_STATUS_POLL_SECONDS"]
    max_age = 60 if final else max(1, int(seconds) // 2)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.vary.update(("Accept-Language", "Cookie"))
    return response


def _public_sealing(tender: Tender) -> dict | None:
    """The sealing record as the page shows it (None before sealing)."""
    cached, key = cache_lookup(("sealing", str(tender.id), str(get_locale())))
    if cached is not None:
        return json.loads(cached)
    summary = sealing_summary(tender)
    if summary is None:
        return None
    public = {
        "root": summary["root"],
        "count": summary["count"],
        "sealed_at": summary["sealed_at"],
        "text": str(
            _(
                "At the deadline the platform sealed %(count)d bid(s) under this Merkle root "
                "(signed record made %(at)s UTC); each bidder can check its receipt is "
                "included.",
                count=summary["count"],
                at=summary["sealed_at"],
            )
        ),
        "url": url_for("api.sealing_record", tender_id=tender.id),
    }
    cache.store(key, json.dumps(public))
    return public


def _sealing_integrity() -> str | None:
    """The published hash of the browser sealing script, so anyone can check the code
    that seals bids (None when the bundle has not been built)."""
    try:
        return sealing_script.integrity()
    except sealing_script.SealingScriptMissing:
        return None


@bp.route("/tenders/<int:tender_id>/documents/<int:document_id>")
@transactional
def download_document(tender_id: int, document_id: int) -> Response:
    """A GET that writes: the download is recorded (committed once the file opens; a file
    that does not open records nothing)."""
    tender = portal_tender(tender_id)
    document = db.session.get(TenderDocument, document_id)
    if document is None or document.tender_id != tender.id:
        abort_with(404, _l("This tender has no such document."))
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role != Role.BIDDER and not can_download(current_user, tender):
        abort_with(
            403,
            _l(
                "Only companies registered for this tender, and the staff who oversee it, "
                "may download its documents."
            ),
        )
    record_download(current_user, document)  # the access check: 403 with its reason
    return send_document(document, open_document(document))


@bp.route("/feeds/centre/<centre_code>.atom")
def centre_feed(centre_code: str) -> Response:
    centre = centre_by_code(centre_code) or abort_with(
        404, _l("There is no trading centre with this code.")
    )

    def build() -> bytes:
        return feeds.build_feed(
            title=str(_l("Tenders of %(centre)s", centre=centre.name)),
            feed_url=public_url(".centre_feed", centre_code=centre.code),
            page_url=public_url(".tenders", centre=centre.code),
            tenders=feed_tenders(centre=centre),
            tender_url=_tender_url,
            empty_updated=centre.created_at,
        )

    return _cached_feed(("centre", centre.code), build)


@bp.route("/feeds/category/<category>.atom")
def category_feed(category: str) -> Response:
    if category not in CATEGORIES:
        abort_with(404, _l("There is no such tender category."))

    def build() -> bytes:
        return feeds.build_feed(
            title=str(_l("Tenders: %(category)s", category=CATEGORIES[category])),
            feed_url=public_url(".category_feed", category=category),
            page_url=public_url(".tenders", category=category),
            tenders=feed_tenders(category=category),
            tender_url=_tender_url,
        )

    return _cached_feed(("category", category), build)


def cache_lookup(parts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """`cache.get_cached`, skipped while Redis is known to be down: redis-py retries a
    refused connection with backoff (seconds per command), so asking on every request
    would make the outage slow every page; `redis_available` asks once per few seconds."""
    if not redis_available():
        return None, None
    return cache.get_cached(parts)


def _tender_url(tender: Tender) -> str:
    return public_url(".tender", tender_id=tender.id)


def _cached_feed(parts: tuple[str, ...], build: Callable[[], bytes]) -> Response:
    # Feeds hold absolute URLs: the host is part of the key, so a forged Host header
    # cannot plant its links in what other readers get.
    cached, key = cache_lookup(("feed", *parts, str(get_locale()), request.host_url))
    if cached is None:
        cached = build().decode("utf-8")
        cache.store(key, cached)
    return Response(cached, content_type=ATOM)


# --- the audit log's signed checkpoints and a finished tender's verification kit -----------

FINISHED_STATUSES = frozenset({TenderStatus.AWARDED, TenderStatus.FAILED, TenderStatus.CANCELLED})
CHECKPOINT_PAGE = 100


def _checkpoint_json(row) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "head": row.head,
        "made_at": timestamp(row.made_at),
        "reason": row.reason,
        "url": public_url("portal.checkpoint", seq=row.seq),
        "document": json.loads(row.document),
    }


def _before_seq() -> int | None:
    raw = request.args.get("before", "")
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 2**31:
        abort_with(400, _l("“before” must be an event number."))
    return int(raw)


@bp.route("/audit/checkpoints")
def checkpoints() -> str:
    """The public list of the audit chain's signed heads, newest first."""
    rows = audit_export.checkpoints(CHECKPOINT_PAGE, _before_seq())
    return render_template(
        "portal/checkpoints.html",
        rows=rows,
        older=rows[-1].seq if len(rows) == CHECKPOINT_PAGE else None,
    )


@bp.route("/audit/checkpoints.json")
def checkpoints_json() -> Response:
    rows = audit_export.checkpoints(CHECKPOINT_PAGE, _before_seq())
    body = {
        "checkpoints": [_checkpoint_json(row) for row in rows],
        "older": (
            public_url("portal.checkpoints_json", before=rows[-1].seq)
            if len(rows) == CHECKPOINT_PAGE
            else None
        ),
    }
    return jsonify(body)


@bp.route("/audit/checkpoints/<int:seq>.json")
def checkpoint(seq: int) -> Response:
    """One signed checkpoint, as the platform signed it."""
    row = audit_export.checkpoint_at(seq)
    if row is None:
        abort_with(404, _l("There is no signed checkpoint at this event."))
    response = Response(row.document, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="checkpoint-{seq}.json"'
    return response


def _finished_tender(tender_id: int, statuses: frozenset = FINISHED_STATUSES) -> Tender:
    tender = portal_tender(tender_id)
    if tender.status not in statuses:
        abort_with(404, _l("This is published once the tender is awarded, failed or cancelled."))
    return tender


@bp.route("/tenders/<int:tender_id>/audit.jsonl")
def tender_audit(tender_id: int) -> Response:
    """The finished tender's audit export: `python -m bidding verify-audit` checks it."""
    tender = _finished_tender(tender_id)
    data = audit_export.tender_export(
        tender.id, tender_id=envelope_tender_id(tender), reference=tender.reference
    )
    if data is None:
        abort_with(404, bundle.NOT_READY)
    response = Response(data, mimetype="application/jsonl")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="audit-{envelope_tender_id(tender)}.jsonl"'
    )
    return response


@bp.route("/tenders/<int:tender_id>/verification-bundle.zip")
def verification_bundle(tender_id: int) -> Response:
    """Everything an outsider needs to check an awarded or failed tender, in one zip."""
    tender = _finished_tender(tender_id, bundle.BUNDLE_STATUSES)
    try:
        files = bundle.bundle_files(tender)
    except bundle.BundleNotReady:
        abort_with(404, bundle.NOT_READY)
    response = Response(bundle.bundle_zip(files), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{bundle.bundle_name(tender)}"'
    return response


@bp.route("/tenders/<int:tender_id>/cancellation-notice.json")
def cancellation_notice(tender_id: int) -> Response:
    """The cancelled tender's notice as the platform signed it: `python -m bidding
    verify-notice NOTICE.json --platform-key receipt-key.pem` checks a copy offline."""
    document = result_operations.cancellation_notice(portal_tender(tender_id))
    if document is None:
        abort_with(404, _l("This tender has no signed cancellation notice."))
    return send_document(document, open_document(document))
