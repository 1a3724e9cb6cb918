"""The evaluation record's life: requested when the panel finalises (the receiver of
`app.evaluations.signals.evaluation_finalised`, connected in the app factory) or by staff,
again after a failure; rendered and signed by the platform in a job (app/records/jobs.py);
countersigned by each panel member; superseded by a re-evaluation's record.

Every signature makes a new version of the PDF (an incremental update, stored by
`app.records.versions`); a `RecordSignature` row names the version it made;
`EvaluationRecord.document_id` is the current one. Operations never commit; the request
boundary and the job do.
"""

from __future__ import annotations

from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts.models import Role, User
from app.accounts.operations import check_second_factor
from app.audit import append_event
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.evaluations.models import Evaluation, EvaluationStage
from app.evaluations.queries import panel_experts
from app.extensions import db
from app.panels.models import PanelMember
from app.permissions import Permission, PermissionDenied, can
from app.records import signing
from app.records.jobs import render_record
from app.records.models import EvaluationRecord, RecordSignature, RecordStatus
from app.records.versions import (
    member_field,
    record_pdf,
    record_title,
    signed_version,
    store_version,
)
from app.tasks import enqueue_after_commit
from app.tenders.models import Tender, TenderDocument
from app.tenders.suspension import refuse_if_suspended

# A queued or rendering record untouched this long may be requested again (worker lost).
STALE_AFTER = timedelta(minutes=15)
ACTIVE = (RecordStatus.QUEUED, RecordStatus.RENDERING)


# --- reading -------------------------------------------------------------------------------


def records_of(tender: Tender) -> list[EvaluationRecord]:
    """Every record of the tender, newest round first."""
    return list(
        db.session.scalars(
            select(EvaluationRecord)
            .where(EvaluationRecord.tender_id == tender.id)
            .order_by(EvaluationRecord.round.desc(), EvaluationRecord.id.desc())
        )
    )


def current_record(tender: Tender) -> EvaluationRecord | None:
    records = records_of(tender)
    return records[0] if records else None


def signatures_of(record: EvaluationRecord) -> list[RecordSignature]:
    return list(
        db.session.scalars(
            select(RecordSignature)
            .where(RecordSignature.record_id == record.id)
            .order_by(RecordSignature.signed_at, RecordSignature.id)
        )
    )


def signing_members(tender: Tender) -> list[PanelMember]:
    """The panel members who countersign: those who took part in the evaluation (accepted
    and declared no conflict), by seat."""
    return panel_experts(tender)


def seat_of(user: User, tender: Tender) -> PanelMember | None:
    if not getattr(user, "is_authenticated", False) or user.role != Role.EXPERT:
        return None
    for member in signing_members(tender):
        if member.user_id == user.id:
            return member
    return None


def may_view(user: User, tender: Tender) -> bool:
    """Staff of the tender's centre, supervisors and admins, and the tender's panel members."""
    return can(user, Permission.VIEW_TENDERS, tender.centre_id) or seat_of(user, tender) is not None


def current_document(tender: Tender) -> TenderDocument:
    """The current version of the tender's latest record (404 while there is none): what
    the record's download, on the web and in the API, sends."""
    return signed_version(current_record(tender))


# --- requesting ----------------------------------------------------------------------------


def _may_request(actor: User, tender: Tender, evaluation: Evaluation | None) -> bool:
    if can(actor, Permission.MANAGE_TENDERS, tender.centre_id):
        return True
    return (
        evaluation is not None
        and getattr(actor, "is_authenticated", False)
        and actor.role == Role.EXPERT
        and evaluation.chair_id == actor.id
    )


def request_record(actor: User, tender: Tender) -> EvaluationRecord:
    """Queue the signed record of the tender's finalised evaluation (staff of the centre or
    the chair). Idempotent for the round: a queued or rendering record is returned as it is;
    a failed (or stale) one is queued again."""
    evaluation = db.session.get(Evaluation, tender.id)
    if not _may_request(actor, tender, evaluation):
        raise PermissionDenied()
    refuse_if_suspended(tender)
    if evaluation is None or evaluation.stage != EvaluationStage.FINALISED:
        raise Conflict(
            _l("The record is made once the panel has finalised the evaluation."),
            code="not_finalised",
        )
    if not evaluation.scoring_json:
        raise Conflict(_l("The evaluation has no scoring file."), code="no_scoring_file")
    record = db.session.scalar(
        select(EvaluationRecord)
        .where(EvaluationRecord.tender_id == tender.id, EvaluationRecord.round == evaluation.round)
        .with_for_update()
    )
    now = utcnow()
    if record is not None:
        if record.status in (RecordStatus.SIGNED, RecordStatus.COMPLETE):
            raise Conflict(_l("The record of this round is already signed."), code="signed")
        if record.status == RecordStatus.SUPERSEDED:
            raise Conflict(_l("This record was superseded."), code="superseded")
        started = record.started_at or record.requested_at
        if record.status in ACTIVE and started and now - started < STALE_AFTER:
            return record
        record.status = RecordStatus.QUEUED
        record.progress = 0
        record.step = "queued"
        record.error = ""
        record.requested_at = now
        record.requested_by_id = actor.id
        record.started_at = None
    else:
        record = EvaluationRecord(
            tender_id=tender.id,
            round=evaluation.round,
            status=RecordStatus.QUEUED,
            progress=0,
            step="queued",
            requested_at=now,
            requested_by_id=actor.id,
            error="",
            superseded_reason="",
        )
        db.session.add(record)
    db.session.flush()
    append_event(
        "record.requested",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"record": record.id, "round": record.round},
    )
    enqueue_after_commit(render_record, record.id)
    return record


def request_record_on_finalise(tender: Tender, *, actor: User, evaluation: Evaluation) -> None:
    """Receiver of `evaluation_finalised` (connected in the app factory): the chair's
    finalisation requests the record, in the same transaction."""
    request_record(actor, tender)


# --- countersigning ------------------------------------------------------------------------


def countersign(actor: User, record: EvaluationRecord, totp: str) -> RecordSignature:
    """A panel member countersigns the current version with their own certificate, after
    confirming with a fresh code from their authenticator app (a wrong code changes nothing
    but the audited failure: `SignInFailed` keeps it)."""
    tender = db.session.get(Tender, record.tender_id)
    member = seat_of(actor, tender) if tender is not None else None
    if member is None:
        raise PermissionDenied()
    refuse_if_suspended(tender)
    check_second_factor(actor, totp)
    # One signature at a time: each builds on the version before it.
    record = db.session.scalar(
        select(EvaluationRecord)
        .where(EvaluationRecord.id == record.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if record.status == RecordStatus.SUPERSEDED:
        raise Conflict(
            _l("This record was superseded by a later evaluation: it takes no signatures."),
            code="superseded",
        )
    if record.status not in (RecordStatus.SIGNED, RecordStatus.COMPLETE):
        raise Conflict(_l("The record is not signed by the platform yet."), code="not_ready")
    already = db.session.scalar(
        select(RecordSignature).where(
            RecordSignature.record_id == record.id, RecordSignature.signer_id == actor.id
        )
    )
    if already is not None:
        raise Conflict(_l("You have already signed this record."), code="already_signed")
    current = record_pdf(record)
    field = member_field(member.position)
    signed = signing.sign_pdf(
        current,
        signer=actor,
        field_name=field,
        reason=f"Countersigned by panel member E{member.position}",
        stamp_text=f"%(signer)s (E{member.position})\n{tender.reference}\n%(ts)s",
    )
    certificate = signing.member_certificate(actor)
    document = store_version(record, tender, signed, record_title(tender, record))
    signature = RecordSignature(
        record_id=record.id,
        signer_id=actor.id,
        certificate_id=certificate.id,
        field_name=field,
        signed_at=utcnow(),
        sha256=document.sha256,
        size=document.size,
    )
    db.session.add(signature)
    db.session.flush()
    signed_ids = set(
        db.session.scalars(
            select(RecordSignature.signer_id).where(
                RecordSignature.record_id == record.id, RecordSignature.signer_id.is_not(None)
            )
        )
    )
    if all(m.user_id in signed_ids for m in signing_members(tender)):
        record.status = RecordStatus.COMPLETE
        record.completed_at = utcnow()
    append_event(
        "record.countersigned",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "record": record.id,
            "seat": member.position,
            "certificate": certificate.serial,
            "sha256": document.sha256,
            "complete": record.status == RecordStatus.COMPLETE,
        },
    )
    return signature


# --- superseding ---------------------------------------------------------------------------


def supersede(record: EvaluationRecord, reason: str) -> EvaluationRecord:
    """A re-evaluation replaces the record: it is kept (file and signatures) and marked
    superseded; it takes no more signatures. Called by the results area's operation, which
    checked its actor's permission."""
    reason = (reason or "").strip()
    if not reason:
        raise OperationError(_l("Give the reason."), code="reason_required")
    if record.status == RecordStatus.SUPERSEDED:
        return record
    record.status = RecordStatus.SUPERSEDED
    record.superseded_at = utcnow()
    record.superseded_reason = reason[:4000]
    db.session.flush()
    tender = db.session.get(Tender, record.tender_id)
    append_event(
        "record.superseded",
        object_type="tender",
        object_id=record.tender_id,
        centre_id=tender.centre_id if tender else None,
        data={"record": record.id, "round": record.round, "reason": record.superseded_reason},
    )
    return record
