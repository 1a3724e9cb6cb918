"""A tender ready for its results: under evaluation, finalised by the panel, its record
signed. Built from rows directly (the evaluation and record areas make them in real use):
four companies bid; the scoring file is `evaluation.samples.example_document()` with their
bidder ids, so company 2 ranks first, then 1, then 3, and company 4 (above the ceiling)
is not compliant."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

import evaluation
from app.accounts.models import Role, User
from app.bids.models import Bid
from app.bids.operations import bidder_id
from app.centres.models import TradingCentre
from app.companies.models import Company
from app.core.types import utcnow
from app.evaluations.models import Evaluation, EvaluationStage
from app.extensions import db
from app.records.models import EvaluationRecord, RecordStatus
from app.results.models import ResultNotice
from app.tenders.models import Tender, TenderDocument, TenderStatus
from evaluation import samples


@dataclass
class ResultsWorld:
    centre: TradingCentre
    tender: Tender
    staff: User
    companies: list[Company]
    bidders: list[User]
    outsider: User  # a bidder whose company did not bid
    other_staff: User  # staff of another centre
    supervisor: User
    record: EvaluationRecord
    extra: dict = field(default_factory=dict)


def scoring_document(companies: list[Company]) -> dict:
    doc = samples.example_document()
    for bid, company in zip(doc["bids"], companies, strict=True):
        bid["id"] = bidder_id(company)
    return evaluation.score(doc)


def store_record(
    tender: Tender, round_: int, status: str = RecordStatus.SIGNED
) -> EvaluationRecord:
    """A signed record row of a round, with a stored (stand-in) PDF document."""
    from app.tenders.documents import blob_store

    data = f"%PDF-1.7 record of {tender.reference} round {round_}".encode()
    stored = blob_store().put_bytes(data)
    document = TenderDocument(
        tender_id=tender.id,
        kind="eval_record",
        title=f"Evaluation record, round {round_}",
        filename=f"{tender.reference}-record-{round_}.pdf",
        content_type="application/pdf",
        size=stored.size,
        sha256=stored.sha256,
    )
    db.session.add(document)
    db.session.flush()
    record = EvaluationRecord(
        tender_id=tender.id,
        round=round_,
        status=status,
        progress=100,
        document_id=document.id,
        completed_at=utcnow(),
    )
    db.session.add(record)
    db.session.flush()
    return record


def finalise_round(tender: Tender, doc: dict | None = None) -> EvaluationRecord:
    """What the panel and the records job do after a re-evaluation: the evaluation of the
    current round finalised, its record signed."""
    row = db.session.get(Evaluation, tender.id)
    if doc is not None:
        row.scoring_json = evaluation.dumps(doc)
        row.scoring_sha256 = evaluation.input_sha256(doc)
    row.stage = EvaluationStage.FINALISED
    row.finalised_at = utcnow()
    record = store_record(tender, row.round)
    db.session.commit()
    return record


def close_window(tender: Tender) -> None:
    """Move the objection deadline of the notices into the past (instead of waiting days)."""
    for notice in db.session.query(ResultNotice).filter_by(tender_id=tender.id):
        if notice.objection_deadline is not None:
            notice.objection_deadline = utcnow() - timedelta(seconds=1)
    db.session.commit()


@pytest.fixture
def results_world(app, make_centre, make_company, make_user, make_tender) -> ResultsWorld:
    centre = make_centre()
    tender = make_tender(centre=centre, status=TenderStatus.EVALUATING, keyed=False)
    staff = make_user(Role.STAFF, centre=centre)
    companies = [make_company(centre=centre) for _ in range(4)]
    bidders = [make_user(Role.BIDDER, company=company) for company in companies]
    for company, user in zip(companies, bidders, strict=True):
        db.session.add(
            Bid(
                tender_id=tender.id,
                company_id=company.id,
                submitted_by_id=user.id,
                envelope_sha256=hashlib.sha256(company.name.encode()).hexdigest(),
                size=100,
                received_at=utcnow(),
                receipt="{}",
            )
        )
    doc = scoring_document(companies)
    db.session.add(
        Evaluation(
            tender_id=tender.id,
            stage=EvaluationStage.FINALISED,
            round=1,
            finalised_at=utcnow(),
            unblinded_at=utcnow(),
            scoring_json=evaluation.dumps(doc),
            scoring_sha256=evaluation.input_sha256(doc),
        )
    )
    db.session.flush()
    record = store_record(tender, 1)
    db.session.commit()
    return ResultsWorld(
        centre=centre,
        tender=tender,
        staff=staff,
        companies=companies,
        bidders=bidders,
        outsider=make_user(Role.BIDDER, company=make_company(centre=centre)),
        other_staff=make_user(Role.STAFF),
        supervisor=make_user(Role.SUPERVISOR),
        record=record,
    )
