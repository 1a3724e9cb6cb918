"""API: OCDS releases of published tenders (public open data, no token needed)."""

from __future__ import annotations

from flask import current_app, url_for
from flask_babel import lazy_gettext as _l

from app.api import bp
from app.errors import abort_with
from app.portal import ocds
from app.portal.queries import public_tender

DEFAULT_PREFIX = "ocds-fairbid"


def release_for(tender) -> dict:
    config = current_app.config
    return ocds.build_release(
        tender,
        prefix=config.get("OCDS_PREFIX") or DEFAULT_PREFIX,
        currency=config["FAIRBID_CURRENCY"],
        document_url=lambda document: url_for(
            "portal.download_document",
            tender_id=tender.id,
            document_id=document.id,
            _external=True,
        ),
    )


@bp.get("/ocds/tenders/<int:tender_id>")
@bp.doc(
    summary="OCDS 1.1 release package of a published tender (public)",
    description=(
        "One `tender` release (`tenderUpdate` after an addendum, `tenderCancellation` once "
        "cancelled) in a release package valid against the OCDS 1.1 release package schema. "
        "Document SHA-256 hashes are in each document's `description`."
    ),
    responses={200: "An OCDS release package", 404: "No published tender with this id"},
)
def ocds_tender(tender_id: int):
    tender = public_tender(tender_id)
    if tender is None:
        abort_with(404, _l("There is no published tender with this number."))
    config = current_app.config
    package = ocds.build_package(
        [release_for(tender)],
        uri=url_for("api.ocds_tender", tender_id=tender.id, _external=True),
        publisher={
            "name": config.get("OCDS_PUBLISHER_NAME") or "Fairbid",
            "uri": url_for("main.home", _external=True),
        },
        license_url=config.get("OCDS_LICENSE") or None,
        publication_policy=config.get("OCDS_PUBLICATION_POLICY") or None,
    )
    response = current_app.json.response(package)
    response.mimetype = "application/json"
    return response
