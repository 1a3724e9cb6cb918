"""API: OCDS open data (public, no token needed): the release package of a tender, and
bulk release packages per trading centre and month (UTC), listed on a centre index."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from flask import Response, current_app, request
from flask_babel import lazy_gettext as _l

from app.api import bp
from app.core import cache
from app.core.types import utcnow
from app.core.urls import public_url
from app.errors import abort_with
from app.portal import ocds, ocds_facts
from app.portal.queries import centre_by_code, portal_tender
from app.tenders.models import Tender, TenderDocument
from app.web import redis_available

DEFAULT_PREFIX = "ocds-fairbid"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
NO_CENTRE = _l("There is no trading centre with this code.")


def _document_url(document: TenderDocument) -> str:
    return public_url(
        "portal.download_document", tender_id=document.tender_id, document_id=document.id
    )


def releases_for(facts: ocds.TenderFacts) -> list[dict]:
    config = current_app.config
    return ocds.build_releases(
        facts,
        prefix=config.get("OCDS_PREFIX") or DEFAULT_PREFIX,
        currency=config["FAIRBID_CURRENCY"],
        document_url=_document_url,
    )


def tender_package(tender: Tender) -> dict:
    """The release package of a public tender (needs a request context for its URLs, e.g.
    `app.test_request_context()` in a command)."""
    [facts] = ocds_facts.gather([tender])
    uri = public_url("api.ocds_tender", tender_id=tender.id)
    return package_of(releases_for(facts), uri)


def package_of(releases: list[dict], uri: str) -> dict:
    config = current_app.config
    return ocds.build_package(
        releases,
        uri=uri,
        publisher={
            "name": config.get("OCDS_PUBLISHER_NAME") or "Fairbid",
            "uri": public_url("main.home"),
        },
        license_url=config.get("OCDS_LICENSE") or None,
        publication_policy=config.get("OCDS_PUBLICATION_POLICY") or None,
    )


def _json(body: dict | str) -> Response:
    if isinstance(body, dict):
        return current_app.json.response(body)
    return Response(body, mimetype="application/json")


@bp.get("/ocds/tenders/<int:tender_id>")
@bp.doc(
    summary="OCDS 1.1 release package of a published tender (public)",
    description=(
        "Every release of the tender, oldest first: publication (`tender`), each addendum "
        "(`tenderUpdate`), the opening (tenderers and bid statistics), each candidates "
        "notice (pending awards), the award (active award, per-bid details under the bids "
        "extension) or the failure / cancellation. Releases are never edited; ids are "
        "stable. Valid against the OCDS 1.1 release package schema. Document SHA-256 "
        "hashes are in each document's `description`."
    ),
    responses={200: "An OCDS release package", 404: "No published tender with this id"},
)
def ocds_tender(tender_id: int) -> Response:
    return _json(tender_package(portal_tender(tender_id)))


@bp.get("/ocds/centres/<centre_code>")
@bp.doc(
    summary="The months of a trading centre's OCDS bulk downloads (public)",
    description="Each month (UTC) in which the centre published a release, with its URL.",
    responses={200: "The centre and its months", 404: "No trading centre with this code"},
)
def ocds_centre(centre_code: str) -> Response:
    centre = centre_by_code(centre_code) or abort_with(404, NO_CENTRE)
    months = ocds_facts.release_months(centre)
    return _json(
        {
            "centre": {"code": centre.code, "name": centre.name},
            "months": [
                {
                    "month": month,
                    "url": public_url(
                        "api.ocds_centre_month", centre_code=centre.code, month=month
                    ),
                }
                for month in reversed(months)
            ],
        }
    )


@bp.get("/ocds/centres/<centre_code>/<month>.json")
@bp.doc(
    summary="Bulk OCDS release package of a trading centre for one month (public)",
    description=(
        "Every release dated in the month (`YYYY-MM`, UTC) of the centre's public tenders, "
        "in one release package. A finished month never changes and is served from cache."
    ),
    responses={
        200: "An OCDS release package",
        400: "The month is not YYYY-MM",
        404: "No trading centre with this code, or no release in that month",
    },
)
def ocds_centre_month(centre_code: str, month: str) -> Response:
    centre = centre_by_code(centre_code) or abort_with(404, NO_CENTRE)
    start, end = _month_bounds(month)
    now = utcnow()
    # A finished month is final: its releases are dated in it and never edited.
    key = None
    if end <= now and redis_available():
        cached, key = cache.get_cached(("ocds-month", centre.code, month, request.host_url))
        if cached is not None:
            response = _json(cached)
            response.headers["X-OCDS-Cache"] = "hit"
            return response
    ids = ocds_facts.tenders_with_events(centre, start, end)
    releases = []
    for facts in ocds_facts.gather(ocds_facts.load_tenders(ids)):
        releases += [r for r in releases_for(facts) if r["date"].startswith(month)]
    if not releases:
        abort_with(404, _l("This trading centre published no release in that month."))
    releases.sort(key=lambda r: (r["date"], r["id"]))
    uri = public_url("api.ocds_centre_month", centre_code=centre.code, month=month)
    body = json.dumps(package_of(releases, uri), ensure_ascii=False, separators=(",", ":"))
    cache.store(key, body)
    response = _json(body)
    response.headers["X-OCDS-Cache"] = "miss" if key else "off"
    return response


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    match = _MONTH.match(month)
    year, number = (int(match[1]), int(match[2])) if match else (0, 0)
    if not match or not 1 <= number <= 12 or year < 1970:
        abort_with(400, _l("Give the month as YYYY-MM, for example 2026-03."))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end
