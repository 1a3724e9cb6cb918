"""Result letters: one signed PDF per company that took part, after the award or the
failure of a tender, with that company's own price, compliance verdict and reasons, scores
per part and rank. Rendering takes seconds (WeasyPrint), so a job (`app.results.jobs`)
makes them; it is idempotent (one letter per tender, company and evaluation round) and
commits its own work. Only the company itself and the centre's staff and supervisors may
download a letter."""

from __future__ import annotations

from flask import render_template
from flask_babel import force_locale
from sqlalchemy import select

from app.accounts.models import User
from app.audit import append_event
from app.companies.models import Company
from app.core.types import utcnow
from app.evaluations.queries import evaluation_of
from app.extensions import db
from app.opening.models import OpeningLine
from app.pdf import render_pdf
from app.permissions import Permission, can
from app.records.signing import sign_pdf
from app.results.models import ResultLetter
from app.results.reading import (
    LOT_AWARDED,
    bidding_companies,
    company_result,
    current_notice,
    lot_files,
    lot_states,
    scoring_file,
    took_part,
)
from app.tenders import documents
from app.tenders.models import Tender, TenderDocument, TenderStatus

LETTER_KIND = "result_letter"
LETTER_STATUSES = frozenset({TenderStatus.AWARDED, TenderStatus.FAILED})


def letter_round(tender: Tender) -> int:
    evaluation = evaluation_of(tender)
    return evaluation.round if evaluation is not None else 1


def letter_of(tender: Tender, company_id: int | None) -> ResultLetter | None:
    """The company's latest letter for the tender."""
    if company_id is None:
        return None
    return db.session.scalar(
        select(ResultLetter)
        .where(ResultLetter.tender_id == tender.id, ResultLetter.company_id == company_id)
        .order_by(ResultLetter.round.desc(), ResultLetter.id.desc())
        .limit(1)
    )


def letters_of(tender: Tender) -> list[ResultLetter]:
    return list(
        db.session.scalars(
            select(ResultLetter)
            .where(ResultLetter.tender_id == tender.id)
            .order_by(ResultLetter.company_id, ResultLetter.round)
        )
    )


def may_read_letter(user: User, tender: Tender, company_id: int) -> bool:
    """The company's own bidders, and whoever oversees the tender's centre."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if can(user, Permission.TAKE_PART) and user.company_id == company_id:
        return True
    return can(user, Permission.VIEW_TENDERS, tender.centre_id)


def _opening_price(tender: Tender, company: Company) -> str | None:
    return db.session.scalar(
        select(OpeningLine.price)
        .where(OpeningLine.tender_id == tender.id, OpeningLine.company_id == company.id)
        .order_by(OpeningLine.id.desc())
        .limit(1)
    )


def _lot_price(tender: Tender, company: Company, lot_id: int) -> str | None:
    return db.session.scalar(
        select(OpeningLine.price)
        .where(
            OpeningLine.tender_id == tender.id,
            OpeningLine.company_id == company.id,
            OpeningLine.lot_id == lot_id,
        )
        .order_by(OpeningLine.id.desc())
        .limit(1)
    )


def lot_lines(tender: Tender, company: Company) -> list[dict]:
    """A tender of several lots: for each lot the company bid for, in lot order, its line of
    that lot's scoring file (price, verdict, scores, rank), the lot's outcome (awarded,
    failed) with the winner or the failure notice, and whether the company won it."""
    files = lot_files(evaluation_of(tender))
    out = []
    for state in lot_states(tender):
        lot = state["lot"]
        if not took_part(company.id, tender, lot):
            continue
        line = company_result(files.get(lot.reference), company)
        notice = state["notice"]
        winner = (notice.content or {}).get("winner") if state["status"] == LOT_AWARDED else None
        out.append(
            {
                "lot": lot,
                "status": state["status"],
                "notice": notice,
                "line": line,
                "price": (line or {}).get("price") or _lot_price(tender, company, lot.id),
                "winner": winner,
                "is_winner": bool(winner and winner.get("company_id") == company.id),
            }
        )
    return out


def letter_context(tender: Tender, company: Company) -> dict:
    lots = lot_lines(tender, company)
    if lots:
        return {
            "tender": tender,
            "company": company,
            "lots": lots,
            "line": None,
            "price": None,
            "notice": None,
            "winner": None,
            "is_winner": any(entry["is_winner"] for entry in lots),
            "issued_at": utcnow(),
        }
    doc = scoring_file(evaluation_of(tender))
    line = company_result(doc, company)
    notice = current_notice(tender)
    winner = (notice.content or {}).get("winner") if notice is not None else None
    return {
        "tender": tender,
        "company": company,
        "line": line,
        "price": (line or {}).get("price") or _opening_price(tender, company),
        "notice": notice,
        "winner": winner,
        "is_winner": bool(winner and winner.get("company_id") == company.id),
        "issued_at": utcnow(),
        "lots": [],
    }


def render_letter(tender: Tender, company: Company, locale: str) -> bytes:
    with force_locale(locale):
        html = render_template(
            "pdf/result_letter.html",
            lang=locale.replace("_", "-"),
            stylesheet_url=documents.stylesheet_url(),
            **letter_context(tender, company),
        )
    pdf = render_pdf(html)
    return sign_pdf(
        pdf,
        signer="platform",
        field_name="Platform",
        reason=f"Result letter {tender.reference}",
    )


def make_letters(tender_id: int, locale: str, after_each=None) -> int:
    """Render, sign and store the missing letters of a tender; returns how many were made.
    Never commits; `after_each` (the job's commit) runs after each letter, so a long run
    keeps what it made if it stops halfway, and a rerun makes only the missing ones."""
    tender = db.session.get(Tender, tender_id)
    if tender is None or tender.status not in LETTER_STATUSES:
        return 0
    round_ = letter_round(tender)
    done = set(
        db.session.scalars(
            select(ResultLetter.company_id).where(
                ResultLetter.tender_id == tender.id, ResultLetter.round == round_
            )
        )
    )
    made = 0
    for company in bidding_companies(tender):
        if company.id in done:
            continue
        data = render_letter(tender, company, locale)
        stored = documents.blob_store().put_bytes(data)
        document = TenderDocument(
            tender_id=tender.id,
            kind=LETTER_KIND,
            title=f"Result letter: {company.name}"[:300],
            filename=f"{tender.reference}-result-letter-{company.id}.pdf",
            content_type="application/pdf",
            size=stored.size,
            sha256=stored.sha256,
        )
        db.session.add(document)
        db.session.flush()
        letter = ResultLetter(
            tender_id=tender.id, company_id=company.id, round=round_, document_id=document.id
        )
        db.session.add(letter)
        db.session.flush()
        append_event(
            "results.letter_issued",
            object_type="tender",
            object_id=tender.id,
            centre_id=tender.centre_id,
            data={
                "company_id": company.id,
                "letter_id": letter.id,
                "document_id": document.id,
                "sha256": stored.sha256,
                "round": round_,
            },
        )
        made += 1
        if after_each is not None:
            after_each()
    return made
