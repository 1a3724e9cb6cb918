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

import hashlib
import json
import secrets
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

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
from app.records import member_keys, signing
from app.records.content import bidder_names
from app.records.jobs import render_record
from app.records.models import (
    EvaluationRecord,
    KeyEnrolmentNonce,
    PendingCountersignature,
    RecordSignature,
    RecordStatus,
    SigningCertificate,
)
from app.records.versions import (
    member_field,
    record_pdf,
    record_title,
    signed_version,
    store_version,
)
from app.tasks import enqueue_after_commit
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument
from app.tenders.suspension import refuse_if_suspended
from evaluation import dumps
from evaluation.pdf import EmbeddedFileError, lot_attachment_name, lots_file_from_pdf

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


def record_lots(record: EvaluationRecord | None, tender: Tender) -> list[dict]:
    """The lots of a signed record of a tender divided into lots (empty for one lot, or
    before the record is signed): per lot, in the record's order, `lot` (reference),
    `title`, `attachment` (`scoring-<lot>.json`), `sha256` (of that attachment), `winner`
    (bidder id under the award across lots, None: no winner), `winner_name`, `rank`, and
    `passed_over` (bidder ids passed over at their limit). Read from the evaluation when its
    lots file is the one the record carries (same SHA-256), else from the signed PDF."""
    if record is None or not record.scoring_sha256 or record.document_id is None:
        return []
    evaluation = db.session.get(Evaluation, record.tender_id)
    text = evaluation.lots_json if evaluation is not None else None
    if not text or hashlib.sha256(text.encode("utf-8")).hexdigest() != record.scoring_sha256:
        try:
            found = lots_file_from_pdf(record_pdf(record))
        except EmbeddedFileError:
            return []
        if found is None:
            return []
        text = found[0].decode("utf-8")
    document = json.loads(text)
    names = bidder_names(tender)
    titles = {lot.reference: lot.title for lot in tender.lots}
    awarded = {a["lot"]: a for a in (document.get("award", {}).get("result") or {}).get("lots", [])}
    out = []
    for entry in document.get("lots", []):
        reference = str(entry["lot"])
        award = awarded.get(reference, {})
        winner = award.get("winner")
        out.append(
            {
                "lot": reference,
                "title": titles.get(reference, ""),
                "attachment": lot_attachment_name(reference),
                "sha256": hashlib.sha256(dumps(entry["scoring_file"]).encode("utf-8")).hexdigest(),
                "winner": winner,
                "winner_name": names.get(winner, "") if winner else "",
                "rank": award.get("rank"),
                "passed_over": [p.get("company") for p in award.get("passed_over", [])],
            }
        )
    return out


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
    if not (evaluation.scoring_json or evaluation.lots_json):  # one lot, or several
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
    """The older path, kept for older records, tests and the drill: the member countersigns
    with a server-held key (sealed under SECRET_KEY), after confirming with a fresh code
    from their authenticator app (a wrong code changes nothing but the audited failure:
    `SignInFailed` keeps it). A member who enrolled their own key signs with it instead
    (`prepare_countersignature` and `finish_countersignature`)."""
    tender, member = _member_seat(actor, record)
    check_second_factor(actor, totp)
    record = _signable(actor, record)
    if holds_own_key(actor):
        raise Conflict(
            _l("You have enrolled your own signing key: sign with it on the record's page."),
            code="held_key_enrolled",
        )
    current = record_pdf(record)
    field = member_field(member.position)
    signed = signing.sign_pdf(
        current,
        signer=actor,
        field_name=field,
        reason=_reason(member),
        stamp_text=_stamp_text(member, tender),
    )
    certificate = signing.member_certificate(actor)
    return _store_countersignature(actor, record, tender, member, field, signed, certificate)


def holds_own_key(actor: User) -> bool:
    """Whether the member ever enrolled a key of their own (then the server-held path is
    closed to them for good, even once that certificate expired or was revoked)."""
    return (
        db.session.scalar(
            select(SigningCertificate.id)
            .where(SigningCertificate.user_id == actor.id, SigningCertificate.sealed_key == "")
            .limit(1)
        )
        is not None
    )


def _reason(member: PanelMember) -> str:
    return f"Countersigned by panel member E{member.position}"


def _stamp_text(member: PanelMember, tender: Tender) -> str:
    return f"%(signer)s (E{member.position})\n{tender.reference}\n%(ts)s"


def _store_countersignature(
    actor: User,
    record: EvaluationRecord,
    tender: Tender,
    member: PanelMember,
    field: str,
    signed: bytes,
    certificate: SigningCertificate,
    *,
    held: bool = False,
) -> RecordSignature:
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
            "member_held_key": held,
            "sha256": document.sha256,
            "complete": record.status == RecordStatus.COMPLETE,
        },
    )
    return signature


def _signable(actor: User, record: EvaluationRecord) -> EvaluationRecord:
    """The record, locked (one signature at a time: each builds on the version before it),
    if it takes the actor's countersignature now."""
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
    return record


def _member_seat(actor: User, record: EvaluationRecord) -> tuple[Tender, PanelMember]:
    tender = db.session.get(Tender, record.tender_id)
    member = seat_of(actor, tender) if tender is not None else None
    if member is None:
        raise PermissionDenied()
    refuse_if_suspended(tender)
    return tender, member


# --- members' own keys ---------------------------------------------------------------------

# An enrolment challenge and a prepared countersignature are good for this long.
NONCE_TTL = timedelta(minutes=10)
PENDING_TTL = timedelta(minutes=10)


def _require_expert(actor: User) -> None:
    if not getattr(actor, "is_authenticated", False) or actor.role != Role.EXPERT:
        raise PermissionDenied()


def issue_enrolment_nonce(actor: User) -> KeyEnrolmentNonce:
    """A one-time challenge the member's browser signs with the key it enrols. The member's
    older unused challenges are dropped."""
    _require_expert(actor)
    db.session.execute(
        delete(KeyEnrolmentNonce).where(
            KeyEnrolmentNonce.user_id == actor.id, KeyEnrolmentNonce.used_at.is_(None)
        )
    )
    row = KeyEnrolmentNonce(user_id=actor.id, nonce=secrets.token_urlsafe(32), issued_at=utcnow())
    db.session.add(row)
    db.session.flush()
    return row


def enrol_signing_key(
    actor: User, totp: str, public_key: bytes, nonce: str, proof: bytes
) -> SigningCertificate:
    """Enrol the member's own key: `public_key` is its SubjectPublicKeyInfo (DER), `proof`
    its raw ECDSA signature of `member_keys.enrolment_message(account, nonce, public_key)`.
    Issues a certificate from the platform CA and revokes the member's earlier ones (a lost
    key, the server-held one). Confirmed with a fresh code from the authenticator app."""
    _require_expert(actor)
    challenge = db.session.scalar(
        select(KeyEnrolmentNonce).where(KeyEnrolmentNonce.nonce == nonce).with_for_update()
    )
    if challenge is None or challenge.user_id != actor.id:
        raise OperationError(
            _l("Unknown enrolment challenge: start the enrolment again."), code="bad_nonce"
        )
    if challenge.used_at is not None:
        raise Conflict(
            _l("This enrolment challenge was already used: start the enrolment again."),
            code="nonce_used",
        )
    if utcnow() - challenge.issued_at > NONCE_TTL:
        raise Conflict(
            _l("This enrolment challenge has expired: start the enrolment again."),
            code="nonce_expired",
        )
    try:
        key = member_keys.load_public_key(public_key)
    except ValueError:
        raise OperationError(
            _l("The public key must be an ECDSA P-256 key (SubjectPublicKeyInfo)."),
            code="bad_public_key",
        ) from None
    try:
        message = member_keys.enrolment_message(actor.id, nonce, public_key)
        member_keys.verify_raw(key, proof, message)
    except member_keys.BadSignatureValue:
        raise OperationError(
            _l("The enrolment request is not signed by the key it enrols."), code="bad_proof"
        ) from None
    check_second_factor(actor, totp)
    challenge.used_at = utcnow()
    certificate, revoked = member_keys.issue_held_certificate(actor, key)
    append_event(
        "signing_key.enrolled",
        actor=actor,
        object_type="user",
        object_id=actor.id,
        data={"certificate": certificate.serial, "revoked": [r.serial for r in revoked]},
    )
    return certificate


def prepare_countersignature(
    actor: User, record: EvaluationRecord, totp: str
) -> PendingCountersignature:
    """Prepare the member's countersignature of the current version for their own key: the
    new revision with its placeholder is stored, and the CMS signed attributes
    (`PendingCountersignature.signed_attrs`) go to the browser to be signed. Confirmed with
    a fresh code from the authenticator app."""
    tender, member = _member_seat(actor, record)
    certificate = member_keys.held_certificate(actor)
    if certificate is None:
        raise Conflict(
            _l("Enrol your signing key first: it is made and kept in your browser."),
            code="no_signing_key",
        )
    check_second_factor(actor, totp)
    record = _signable(actor, record)
    base = signed_version(record)
    prepared = member_keys.prepare_signature(
        record_pdf(record),
        certificate,
        signer_name=actor.full_name,
        field_name=member_field(member.position),
        reason=_reason(member),
        stamp_text=_stamp_text(member, tender),
    )
    stored = blob_store().put_bytes(prepared.pdf)
    pending = PendingCountersignature(
        record_id=record.id,
        user_id=actor.id,
        certificate_id=certificate.id,
        base_sha256=base.sha256,
        prepared_sha256=stored.sha256,
        signed_attrs=prepared.signed_attrs,
        document_digest=prepared.document_digest.hex(),
        region_start=prepared.region_start,
        region_end=prepared.region_end,
        created_at=utcnow(),
    )
    db.session.add(pending)
    db.session.flush()
    return pending


def finish_countersignature(
    actor: User, record: EvaluationRecord, pending_id: int, signature: bytes
) -> RecordSignature:
    """Embed the signature value the member's browser made (raw ECDSA r||s over the signed
    attributes of `pending_id`) and store the new version. A value that does not verify
    with the member's enrolled key is refused and nothing is stored."""
    tender, member = _member_seat(actor, record)
    record = _signable(actor, record)
    pending = db.session.get(PendingCountersignature, pending_id)
    if pending is None or pending.user_id != actor.id or pending.record_id != record.id:
        raise OperationError(
            _l("Unknown signing request: sign again."), code="unknown_request", status=404
        )
    if pending.finished_at is not None:
        raise Conflict(_l("This signing request was already used."), code="request_used")
    if utcnow() - pending.created_at > PENDING_TTL:
        raise Conflict(_l("This signing request has expired: sign again."), code="request_expired")
    if signed_version(record).sha256 != pending.base_sha256:
        raise Conflict(
            _l("The record changed while you were signing: sign again."), code="stale_request"
        )
    certificate = db.session.get(SigningCertificate, pending.certificate_id)
    if certificate is None or certificate.revoked_at is not None:
        raise Conflict(
            _l("The certificate of this signing request was revoked: sign again."),
            code="certificate_revoked",
        )
    with blob_store().open(pending.prepared_sha256) as handle:
        prepared_pdf = handle.read()
    prepared = member_keys.PreparedSignature(
        pdf=prepared_pdf,
        signed_attrs=bytes(pending.signed_attrs),
        document_digest=bytes.fromhex(pending.document_digest),
        region_start=pending.region_start,
        region_end=pending.region_end,
    )
    try:
        signed = member_keys.finish_signature(prepared, certificate, signature)
    except member_keys.BadSignatureValue:
        raise OperationError(
            _l("The signature does not verify with your enrolled key: nothing was signed."),
            code="bad_signature",
        ) from None
    pending.finished_at = utcnow()
    field = member_field(member.position)
    return _store_countersignature(
        actor, record, tender, member, field, signed, certificate, held=True
    )


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
