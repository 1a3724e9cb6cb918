"""Loading an objection, a result letter or a signed notice for the routes of a tender (the
tender itself comes from `app.tenders.access`)."""

from __future__ import annotations

from flask import abort

from app.extensions import db
from app.results.letters import letter_of
from app.results.models import Objection, ResultNotice
from app.tenders.models import Tender, TenderDocument


def tender_objection(tender: Tender, objection_id: int) -> Objection:
    """An objection to `tender`: 404 for an id that is not one."""
    objection = db.session.get(Objection, objection_id)
    if objection is None or objection.tender_id != tender.id:
        abort(404)
    return objection


def letter_document(tender: Tender, company_id: int | None) -> TenderDocument:
    """The signed PDF of the company's latest result letter, which the letter's download on
    the web and in the API sends: 404 until the job has made it."""
    letter = letter_of(tender, company_id)
    if letter is None:
        abort(404)
    return db.session.get(TenderDocument, letter.document_id)


def notice_document(tender: Tender, notice_id: int) -> TenderDocument:
    """The signed JSON of one of the tender's result notices (superseded ones included: they
    were published): 404 for another tender's notice or one made before notices were signed."""
    notice = db.session.get(ResultNotice, notice_id)
    if notice is None or notice.tender_id != tender.id or notice.document_id is None:
        abort(404)
    return db.session.get(TenderDocument, notice.document_id)
