"""API: evaluation records (status, signatures, the signed PDF), the platform's signing
trust root and its CRL, which anyone needs to check the records' signatures offline (e.g.
with `pdfsig` after trusting it in an NSS database, or pyHanko), and panel members' own
signing keys: enrolment and the two steps of a countersignature (`app.records.member_keys`)."""

from __future__ import annotations

import base64
import binascii

from apiflask import Schema
from apiflask.fields import Integer, String
from apiflask.validators import Length, Range, Regexp
from flask import Response
from flask_babel import lazy_gettext as _l

from app.accounts.limits import account_limit
from app.accounts.models import Role
from app.api import auth, bp, roles_required
from app.api.roles import VIEWERS
from app.api.schemas import error_responses
from app.api.tenders import reconfirmed
from app.core.boundary import transactional
from app.core.errors import OperationError
from app.records import member_keys, operations, signing
from app.records.access import record_tender
from app.records.models import EvaluationRecord, SigningCertificate
from app.records.versions import record_document
from app.tenders.documents import open_document, send_document
from app.tenders.models import Tender

RECORD_VIEWERS = (*VIEWERS, Role.EXPERT)


def record_data(record: EvaluationRecord, tender: Tender) -> dict:
    """A record as the API gives it; `lots` is empty for a tender of one lot, else each
    lot's part of the signed record (`operations.record_lots`)."""
    document = record_document(record)
    return {
        "id": record.id,
        "round": record.round,
        "status": record.status,
        "progress": record.progress,
        "step": record.step,
        "error": record.error,
        "pages": record.pages,
        "requested_at": record.requested_at,
        "completed_at": record.completed_at,
        "superseded_at": record.superseded_at,
        "superseded_reason": record.superseded_reason,
        "scoring_sha256": record.scoring_sha256,
        "audit_head": record.audit_head,
        "document": (
            {"id": document.id, "sha256": document.sha256, "size": document.size}
            if document
            else None
        ),
        "signatures": [
            {
                "field": s.field_name,
                "signer_id": s.signer_id,
                "signed_at": s.signed_at,
                "sha256": s.sha256,
                "size": s.size,
            }
            for s in operations.signatures_of(record)
        ],
        "lots": operations.record_lots(record, tender),
    }


@bp.get("/platform/signing-ca.pem")
@bp.doc(
    summary="The platform's signing trust root (public)",
    description="PEM certificate(s) of the CA behind the platform's and the panel members' "
    "document-signing certificates: trust it to validate evaluation records and result "
    "letters.",
)
def platform_signing_ca() -> Response:
    response = Response(signing.trust_roots_pem(), mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = 'attachment; filename="signing-ca.pem"'
    return response


@bp.get("/tenders/<int:tender_id>/records")
@bp.auth_required(auth)
@roles_required(*RECORD_VIEWERS)
@bp.doc(
    summary="The tender's evaluation records, newest round first",
    description="Status and progress of the job, the current signed version and every "
    "signature (staff of the centre, supervisors, admins, the tender's panel members). For a "
    "tender divided into lots, `lots` lists each lot of the signed record: its reference, "
    "title, attached scoring file (`scoring-<lot>.json`) and its SHA-256, and its winner "
    "under the award across lots (the lots file is attached as `lots-evaluation.json`).",
    responses={403: "Not a viewer role.", 404: "No such tender, or not yours to see."},
)
def tender_records(tender_id: int) -> dict:
    tender = record_tender(auth.current_user, tender_id, conceal=True)
    return {"records": [record_data(r, tender) for r in operations.records_of(tender)]}


@bp.get("/tenders/<int:tender_id>/record.pdf")
@bp.auth_required(auth)
@roles_required(*RECORD_VIEWERS)
@bp.doc(
    summary="The current signed evaluation record (PDF)",
    description="The latest version (with every countersignature so far). "
    "`python -m evaluation verify record.pdf` recomputes it from the attached scoring file.",
    responses={403: "Not a viewer role.", 404: "No signed record (yet)."},
)
def tender_record_pdf(tender_id: int) -> Response:
    tender = record_tender(auth.current_user, tender_id, conceal=True)
    document = operations.current_document(tender)
    return send_document(document, open_document(document))


@bp.get("/platform/signing-ca.crl")
@bp.doc(
    summary="The platform CA's certificate revocation list (public, DER)",
    description="Every certificate the platform CA revoked (a panel member's lost key, a "
    "server-held key retired when its member enrolled their own), with its revocation time; "
    "made afresh on each request and valid for a day. `python -m evaluation verify "
    "record.pdf --trust signing-ca.pem --crl signing-ca.crl` rejects a signature made after "
    "its certificate was revoked.",
)
def platform_signing_crl() -> Response:
    response = Response(signing.revocation_list_der(), mimetype="application/pkix-crl")
    response.headers["Content-Disposition"] = 'attachment; filename="signing-ca.crl"'
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# --- panel members' own keys ---------------------------------------------------------------


class SigningKeyEnrolIn(Schema):
    totp_code = String(required=True, validate=Regexp(r"^\d{6}$"))
    nonce = String(required=True, validate=Length(max=64))
    public_key = String(
        required=True,
        validate=Length(max=1024),
        metadata={"description": "The ECDSA P-256 public key: SubjectPublicKeyInfo, DER, base64."},
    )
    proof = String(
        required=True,
        validate=Length(max=256),
        metadata={
            "description": "Raw ECDSA signature (r||s, 64 bytes, base64) with SHA-256 of "
            "`fairbid signing-key enrolment v1\\naccount=ID\\nnonce=NONCE\\nspki=PUBLIC_KEY`."
        },
    )


class CountersignaturePrepareIn(Schema):
    totp_code = String(required=True, validate=Regexp(r"^\d{6}$"))


class CountersignatureFinishIn(Schema):
    request = Integer(required=True, validate=Range(min=1, max=2**31 - 1))
    signature = String(
        required=True,
        validate=Length(max=256),
        metadata={"description": "Raw ECDSA signature (r||s, base64) of `signed_attrs`."},
    )


def _decoded(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise OperationError(
            _l("%(name)s is not valid base64.", name=name), code="bad_base64"
        ) from None


def _certificate_data(row: SigningCertificate) -> dict:
    return {
        "serial": row.serial,
        "subject": row.subject,
        "issued_at": row.issued_at,
        "not_after": row.not_after,
        "certificate_pem": row.certificate_pem,
    }


@bp.post("/me/signing-key/nonce")
@bp.auth_required(auth)
@roles_required(Role.EXPERT)
@bp.doc(
    summary="A one-time challenge for enrolling a signing key (panel members)",
    description="Good for ten minutes and one enrolment; asking again drops the older one.",
)
@transactional
def signing_key_nonce() -> tuple[dict, int]:
    row = operations.issue_enrolment_nonce(auth.current_user)
    return {"nonce": row.nonce, "account": auth.current_user.id}, 201


@bp.get("/me/signing-key")
@bp.auth_required(auth)
@roles_required(Role.EXPERT)
@bp.doc(
    summary="The panel member's current certificate for a key they hold",
    responses={404: "No key enrolled (or its certificate was revoked or expired)."},
)
def signing_key() -> dict:
    row = member_keys.held_certificate(auth.current_user)
    if row is None:
        raise OperationError(_l("No signing key is enrolled."), code="no_signing_key", status=404)
    return _certificate_data(row)


@bp.post("/me/signing-key")
@bp.auth_required(auth)
@roles_required(Role.EXPERT)
@account_limit(lambda: auth.current_user)
@bp.input(SigningKeyEnrolIn, arg_name="body")
@bp.doc(
    summary="Enrol a signing key the member holds (TOTP re-confirmed)",
    description="Proof of possession: the key signs the account, the nonce and itself. The "
    "platform CA issues a certificate; the member's earlier certificates are revoked (CRL).",
    responses=error_responses(400, 403, 409),
)
@transactional
@reconfirmed
def enrol_signing_key(body: dict) -> tuple[dict, int]:
    row = operations.enrol_signing_key(
        auth.current_user,
        body["totp_code"],
        _decoded(body["public_key"], "public_key"),
        body["nonce"],
        _decoded(body["proof"], "proof"),
    )
    return _certificate_data(row), 201


@bp.post("/tenders/<int:tender_id>/record/countersignature")
@bp.auth_required(auth)
@roles_required(Role.EXPERT)
@account_limit(lambda: auth.current_user)
@bp.input(CountersignaturePrepareIn, arg_name="body")
@bp.doc(
    summary="Prepare the member's countersignature of the current record (TOTP re-confirmed)",
    description="Answers `signed_attrs`: the DER (base64) of the CMS signed attributes to "
    "sign with the member's enrolled key (ECDSA P-256 with SHA-256), then send to "
    "`.../countersignature/finish` within ten minutes.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
@reconfirmed
def prepare_countersignature(tender_id: int, body: dict) -> tuple[dict, int]:
    tender = record_tender(auth.current_user, tender_id, conceal=True)
    record = operations.current_record(tender)
    if record is None:
        raise OperationError(_l("No record yet."), code="not_ready", status=404)
    pending = operations.prepare_countersignature(auth.current_user, record, body["totp_code"])
    return {
        "request": pending.id,
        "signed_attrs": base64.b64encode(pending.signed_attrs).decode("ascii"),
        "certificate": member_keys.held_certificate(auth.current_user).serial,
    }, 201


@bp.post("/tenders/<int:tender_id>/record/countersignature/finish")
@bp.auth_required(auth)
@roles_required(Role.EXPERT)
@bp.input(CountersignatureFinishIn, arg_name="body")
@bp.doc(
    summary="Finish the member's countersignature with the signature value",
    description="The value is checked against the member's certificate: one for another key "
    "or other data is refused (400 `bad_signature`) and nothing is stored.",
    responses=error_responses(400, 403, 404, 409),
)
@transactional
def finish_countersignature(tender_id: int, body: dict) -> tuple[dict, int]:
    tender = record_tender(auth.current_user, tender_id, conceal=True)
    record = operations.current_record(tender)
    if record is None:
        raise OperationError(_l("No record yet."), code="not_ready", status=404)
    signature = operations.finish_countersignature(
        auth.current_user, record, body["request"], _decoded(body["signature"], "signature")
    )
    return {"field": signature.field_name, "sha256": signature.sha256}, 201
