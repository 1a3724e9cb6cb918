from __future__ import annotations

from typing import Any

from app.api import auth, bp, roles_required
from app.api.roles import SUPERVISION
from app.api.schemas import AuditHead, AuditVerifyOut
from app.audit import chain_head, verify_chain
from app.permissions import Permission, require


@bp.get("/audit/head")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.output(AuditHead)
@bp.doc(summary="The newest event of the audit chain (supervisors, administrators)")
def audit_head() -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_AUDIT)
    seq, head = chain_head()
    return {"seq": seq, "hash": head}


@bp.get("/audit/verify")
@bp.auth_required(auth)
@roles_required(*SUPERVISION)
@bp.output(AuditVerifyOut)
@bp.doc(summary="Recompute the audit chain and name the first broken event")
def audit_verify() -> dict[str, Any]:
    require(auth.current_user, Permission.VIEW_AUDIT)
    broken = verify_chain()
    seq, head = chain_head()
    return {
        "ok": broken is None,
        "seq": broken.seq if broken else None,
        "reason": broken.reason if broken else None,
        "head": {"seq": seq, "hash": head},
    }
