"""Tender documents: rendered from the template body and the tender's data to HTML and
PDF at publication (and for each addendum), stored in the blob store by SHA-256."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import current_app, render_template
from flask_babel import get_locale
from sqlalchemy import update

from app import tender_templates
from app.core.types import utcnow
from app.extensions import db
from app.pdf import render_pdf
from app.portal.cache import invalidate_after_commit
from app.storage import BlobStore
from app.tenders.models import Addendum, DocumentKind, Tender, TenderDocument


@dataclass(frozen=True)
class Rendered:
    html: TenderDocument
    pdf: TenderDocument

    @property
    def sha256(self) -> str:
        return self.pdf.sha256


def blob_store() -> BlobStore:
    root = current_app.config["BLOB_DIR"] or Path(current_app.instance_path) / "blobs"
    return BlobStore(Path(root))


def invalidate_portal_cache() -> None:
    invalidate_after_commit()


def document_context(tender: Tender, doc: dict) -> dict:
    """What template placeholders may use: plain values, no model objects."""
    return {
        "tender": {
            "title": tender.title,
            "reference": tender.reference,
            "centre": tender.centre.name,
            "category": tender.category,
            "description": tender.description,
            "budget": _money(tender.budget),
            "bid_bond": _money(tender.bid_bond_amount),
            "publication_at": _when(tender.publication_at),
            "enquiry_deadline": _when(tender.enquiry_deadline),
            "submission_deadline": _when(tender.submission_deadline),
            "opening_at": _when(tender.opening_at),
            "evaluation_days": tender.evaluation_days,
            "custodians": len(tender.custodians),
            "custodian_threshold": tender.custodian_threshold,
            "ceiling_price": _money(tender.lots[0].ceiling_price) if tender.lots else "",
            "reserve_price": _money(tender.lots[0].reserve_price) if tender.lots else "",
        },
        "lots": [
            {
                "number": lot.number,
                "title": lot.title,
                "budget": _money(lot.budget),
                "ceiling_price": _money(lot.ceiling_price),
                "reserve_price": _money(lot.reserve_price),
            }
            for lot in tender.lots
        ],
    }


def _money(value) -> str:
    from app.i18n import money

    return money(value) if value is not None else ""


def _when(moment) -> str:
    from flask_babel import format_datetime

    return format_datetime(moment, "long") if moment else ""


def _store(
    tender: Tender,
    kind: str,
    title: str,
    filename: str,
    content_type: str,
    data: bytes,
    addendum: Addendum | None = None,
) -> TenderDocument:
    stored = blob_store().put_bytes(data, max_size=current_app.config["MAX_ATTACHMENT_SIZE"])
    document = TenderDocument(
        tender_id=tender.id,
        kind=kind,
        title=title,
        filename=filename,
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
        addendum_id=addendum.id if addendum else None,
    )
    db.session.add(document)
    return document


def render_tender_document(tender: Tender, doc: dict) -> Rendered:
    locale = str(get_locale() or "en")
    body = tender_templates.render_body(doc, document_context(tender, doc), locale)
    html = render_template(
        "pdf/tender_document.html", tender=tender, body=body, lang=locale.replace("_", "-")
    )
    pdf = render_pdf(html)
    # Earlier renderings (a re-publication never happens, but a draft may be re-rendered).
    db.session.execute(
        update(TenderDocument)
        .where(
            TenderDocument.tender_id == tender.id,
            TenderDocument.kind.in_([DocumentKind.TENDER_HTML, DocumentKind.TENDER_PDF]),
            TenderDocument.superseded_at.is_(None),
        )
        .values(superseded_at=utcnow())
    )
    name = f"{tender.reference}-tender-document"
    rendered = Rendered(
        html=_store(
            tender,
            DocumentKind.TENDER_HTML,
            tender.title,
            f"{name}.html",
            "text/html; charset=utf-8",
            html.encode(),
        ),
        pdf=_store(
            tender, DocumentKind.TENDER_PDF, tender.title, f"{name}.pdf", "application/pdf", pdf
        ),
    )
    db.session.flush()
    return rendered


def render_addendum(tender: Tender, addendum: Addendum) -> TenderDocument:
    locale = str(get_locale() or "en")
    body = tender_templates.render_markdown(addendum.body)
    html = render_template(
        "pdf/addendum.html",
        tender=tender,
        addendum=addendum,
        body=body,
        lang=locale.replace("_", "-"),
    )
    document = _store(
        tender,
        DocumentKind.ADDENDUM_PDF,
        addendum.title,
        f"{tender.reference}-addendum-{addendum.number}.pdf",
        "application/pdf",
        render_pdf(html),
        addendum,
    )
    db.session.flush()
    return document
