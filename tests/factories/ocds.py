"""Helpers for the OCDS tests: the offline schema validator (OCDS 1.1.5 release package with
the bids extension merged in), and a tender's later life written straight into the rows
(opening lines, result notices, evaluation record), so these tests need none of the
opening, evaluation or results operations."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from app.bids.models import Bid
from app.evaluations.models import Evaluation, EvaluationStage
from app.extensions import db
from app.opening.models import OpeningLine, OpeningSession, OpeningStatus
from app.records.models import EvaluationRecord, RecordStatus
from app.results.models import ResultNotice
from app.tenders.models import Tender, TenderDocument

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "ocds"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def package_validator() -> Draft4Validator:
    package_schema = json.loads((SCHEMAS / "release-package-schema.json").read_text())
    release_schema = json.loads((SCHEMAS / "release-schema.json").read_text())
    bids = json.loads((SCHEMAS / "bid-extension-release-schema.json").read_text())
    merged = merge_patch(release_schema, bids)
    registry = Registry().with_resource(
        merged["id"], Resource.from_contents(merged, default_specification=DRAFT4)
    )
    return Draft4Validator(
        package_schema, registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER
    )


def assert_valid(validator, package: dict) -> None:
    errors = sorted(validator.iter_errors(package), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def schedule(tender: Tender, published: datetime, days: int = 20) -> Tender:
    """Move a made tender's dates: published at `published`, deadline `days` later."""
    tender.publication_at = tender.published_at = published
    tender.enquiry_deadline = published + timedelta(days=days - 5)
    tender.submission_deadline = published + timedelta(days=days)
    tender.opening_at = published + timedelta(days=days, hours=1)
    db.session.commit()
    return tender


def add_document(tender: Tender, kind: str, title: str, when: datetime) -> TenderDocument:
    document = TenderDocument(
        tender_id=tender.id,
        kind=kind,
        title=title,
        filename=f"{kind}.pdf",
        content_type="application/pdf",
        size=1234,
        sha256=hashlib.sha256(f"{tender.id}{kind}{title}".encode()).hexdigest(),
        created_at=when,
    )
    db.session.add(document)
    db.session.commit()
    return document


def open_bids(
    tender: Tender,
    entries: list[tuple[Any, str, str | None]],
    when: datetime,
    *,
    status: str = OpeningStatus.COMPLETED,
) -> dict[int, OpeningLine]:
    """An opening session and one bid + opening line per (company, line status, price).
    Returns the lines by company id."""
    submitter = tender.created_by_id
    db.session.add(
        OpeningSession(
            tender_id=tender.id,
            started_by_id=submitter,
            started_at=when - timedelta(minutes=30),
            status=status,
            wrap_salt="00" * 32,
            completed_at=when
            if status in (OpeningStatus.COMPLETED, OpeningStatus.FAILED)
            else None,
            reason="Fewer than 3 bids" if status == OpeningStatus.FAILED else "",
        )
    )
    lines = {}
    for n, (company, line_status, price) in enumerate(entries):
        envelope = hashlib.sha256(f"{tender.id}-{company.id}".encode()).hexdigest()
        bid = Bid(
            tender_id=tender.id,
            company_id=company.id,
            submitted_by_id=submitter,
            envelope_sha256=envelope,
            size=1000 + n,
            received_at=tender.submission_deadline - timedelta(hours=n + 1),
            receipt="{}",
        )
        db.session.add(bid)
        db.session.flush()
        line = OpeningLine(
            tender_id=tender.id,
            bid_id=bid.id,
            company_id=company.id,
            status=line_status,
            price=price,
            envelope_sha256=envelope,
            created_at=when,
        )
        db.session.add(line)
        lines[company.id] = line
    if status == OpeningStatus.COMPLETED:
        tender.status = "opened"
    elif status == OpeningStatus.FAILED:
        tender.status = "failed"
    db.session.commit()
    return lines


def evaluate(tender: Tender, verdicts: dict[Any, bool], chair=None) -> None:
    """A finalised evaluation whose scoring file says which bids are compliant."""
    scoring = {
        "result": {
            "bids": [{"id": c.registration_number, "compliant": ok} for c, ok in verdicts.items()]
        }
    }
    db.session.add(
        Evaluation(
            tender_id=tender.id,
            stage=EvaluationStage.FINALISED,
            chair_id=chair.id if chair else None,
            scoring_json=json.dumps(scoring),
        )
    )
    tender.status = "evaluating"
    db.session.commit()


def record(tender: Tender, when: datetime) -> EvaluationRecord:
    document = add_document(tender, "eval_record", "Evaluation record", when)
    row = EvaluationRecord(
        tender_id=tender.id,
        status=RecordStatus.SIGNED,
        requested_at=when - timedelta(hours=1),
        completed_at=when,
        document_id=document.id,
    )
    db.session.add(row)
    db.session.commit()
    return row


def candidate(rank: int, company, price: str, total: str = "80.00") -> dict[str, Any]:
    """A candidate as app.results publishes it (`bid` is the bidder id: the credit code)."""
    return {
        "rank": rank,
        "bid": company.registration_number,
        "company_id": company.id,
        "company": company.name,
        "price": price,
        "total": total,
    }


def notice(
    tender: Tender,
    kind: str,
    when: datetime,
    *,
    candidates: list[dict[str, Any]] | None = None,
    winner: dict[str, Any] | None = None,
    reason: str = "",
    evaluation_record: EvaluationRecord | None = None,
    status: str | None = None,
) -> ResultNotice:
    document = add_document(tender, "notice_pdf", f"{kind.title()} notice", when)
    row = ResultNotice(
        tender_id=tender.id,
        kind=kind,
        published_at=when,
        objection_deadline=when + timedelta(days=3) if kind == "candidates" else None,
        content={"round": 1, "winner": winner}
        if winner
        else {"round": 1, "candidates": candidates or []},
        reason=reason,
        record_id=evaluation_record.id if evaluation_record else None,
        document_id=document.id,
    )
    db.session.add(row)
    tender.status = status or {"candidates": "candidates", "award": "awarded"}.get(kind, "failed")
    db.session.commit()
    return row
