"""API: evaluation records (status, signatures, the signed PDF) and the platform's signing
trust root, which anyone needs to check the records' signatures offline (e.g. with
`pdfsig` after trusting it in an NSS database, or pyHanko)."""

from __future__ import annotations

from flask import Response

from app.accounts.models import Role
from app.api import auth, bp, roles_required
from app.api.roles import VIEWERS
from app.records import operations, signing
from app.records.access import record_tender
from app.records.models import EvaluationRecord
from app.records.versions import record_document
from app.tenders.documents import open_document, send_document

RECORD_VIEWERS = (*VIEWERS, Role.EXPERT)


def record_data(record: EvaluationRecord) -> dict:
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
    "signature (staff of the centre, supervisors, admins, the tender's panel members).",
    responses={403: "Not a viewer role.", 404: "No such tender, or not yours to see."},
)
def tender_records(tender_id: int) -> dict:
    tender = record_tender(auth.current_user, tender_id, conceal=True)
    return {"records": [record_data(r) for r in operations.records_of(tender)]}


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
