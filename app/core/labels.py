"""Stored codes as people read them, in one place: statuses, stages, roles, centre levels,
document kinds, categories, bid-form choices, panel member labels and audit actions.

Templates write `{{ value|label("tender_status") }}` (the `label` filter, registered in
`app.i18n`); Python calls `label(value, kind)`. An unknown code is shown as it is stored, so a
new code never breaks a page (the translated-pages test finds it)."""

from __future__ import annotations

import re

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

LABELS: dict[str, dict[str, object]] = {
    "tender_status": {
        "draft": _l("Draft"),
        "published": _l("Open for bids"),
        "closed": _l("Bidding closed"),
        "opened": _l("Bids opened"),
        "evaluating": _l("Under evaluation"),
        "candidates": _l("Candidates published"),
        "awarded": _l("Awarded"),
        "failed": _l("Failed"),
        "cancelled": _l("Cancelled"),
    },
    "company_status": {
        "pending": _l("Awaiting approval"),
        "approved": _l("Approved"),
        "rejected": _l("Rejected"),
    },
    "bid_status": {
        "submitted": _l("Submitted"),
        "superseded": _l("Replaced"),
        "withdrawn": _l("Withdrawn"),
    },
    "opening_status": {
        "unlocking": _l("Waiting for the custodians"),
        "opening": _l("Opening the envelopes"),
        "completed": _l("Completed"),
        "failed": _l("Failed"),
    },
    "line_status": {
        "opened": _l("Opened"),
        "revoked": _l("Revoked"),
        "withdrawn": _l("Withdrawn"),
    },
    "member_status": {
        "invited": _l("Invited"),
        "accepted": _l("Accepted"),
        "declined": _l("Declined"),
        "removed": _l("Removed"),
    },
    "anonymity": {
        "pending": _l("Awaiting the panel"),
        "clean": _l("Nothing found"),
        "accepted": _l("Accepted"),
        "rejected": _l("Rejected"),
    },
    "low_price": {
        "none": _l("None"),
        "requested": _l("Justification requested"),
        "submitted": _l("Justification received"),
        "accepted": _l("Accepted"),
        "rejected": _l("Rejected"),
    },
    "evaluation_stage": {
        "review": _l("compliance review"),
        "scoring": _l("technical scoring"),
        "unblinded": _l("unblinded"),
        "finalised": _l("finalised"),
    },
    "record_status": {
        "queued": _l("queued"),
        "rendering": _l("being made"),
        "signed": _l("signed"),
        "complete": _l("signed and countersigned"),
        "failed": _l("failed"),
        "superseded": _l("superseded"),
    },
    "role": {
        "staff": _l("Trading-centre staff"),
        "custodian": _l("Key custodian"),
        "expert": _l("Evaluation expert"),
        "supervisor": _l("Supervisor"),
        "admin": _l("Administrator"),
        "bidder": _l("Bidder"),
    },
    "centre_level": {"city": _l("City"), "county": _l("County"), "township": _l("Township")},
    "document_kind": {
        "tender_html": _l("Tender document (HTML)"),
        "tender_pdf": _l("Tender document (PDF)"),
        "attachment": _l("Attachment"),
        "addendum_pdf": _l("Addendum (PDF)"),
        "sealing_record": _l("Sealing record"),
        "opening_record": _l("Opening record"),
        "evaluation_record": _l("Evaluation record"),
        "eval_record": _l("Evaluation record"),
        "result_notice": _l("Result notice"),
        "result_letter": _l("Result letter"),
        "scoring_file": _l("Scoring file"),
    },
    "category": {
        "goods": _l("Goods"),
        "works": _l("Works"),
        "services": _l("Services"),
        "asset_sale": _l("Sale of assets and land-use rights"),
    },
    # The built-in templates' names (stored in English), in the reader's language.
    "template": {
        "Goods procurement — comprehensive scoring (lowest-price benchmark)": _l(
            "Goods procurement — comprehensive scoring (lowest-price benchmark)"
        ),
        "Construction works — comprehensive evaluation (average benchmark)": _l(
            "Construction works — comprehensive evaluation (average benchmark)"
        ),
        "Services procurement — lowest evaluated price": _l(
            "Services procurement — lowest evaluated price"
        ),
        "Sale of public assets and land-use rights — highest price (sealed bid)": _l(
            "Sale of public assets and land-use rights — highest price (sealed bid)"
        ),
    },
    # Choices of the built-in templates' bid forms.
    "choice": {
        "domestic": _l("Domestic"),
        "imported": _l("Imported"),
        "qualified": _l("Qualified (meets the acceptance standard)"),
        "yes": _l("Yes"),
        "no": _l("No"),
    },
    "object_type": {
        "user": _l("Account"),
        "company": _l("Company"),
        "centre": _l("Centre"),
        "tender": _l("Tender"),
        "bid": _l("Bid"),
        "template": _l("Template"),
        "panel": _l("Panel"),
        "evaluation": _l("Evaluation"),
        "record": _l("Record"),
        "opening": _l("Opening"),
        "api_token": _l("API token"),
        "auth": _l("Sign-in"),
        "custodian_key": _l("Custodian key"),
        "enquiry": _l("Enquiry"),
        "objection": _l("Objection"),
        "red_flag": _l("Red flag"),
        "registration": _l("Registration"),
    },
}

# Audit actions: the object's word, then what happened to it.
AUDIT_ACTIONS: dict[str, object] = {
    "api_token.created": _l("API token created"),
    "api_token.revoked": _l("API token revoked"),
    "auth.sign_in_failed": _l("Sign-in failed"),
    "auth.second_factor_failed": _l("Second factor failed"),
    "auth.signed_in": _l("Signed in"),
    "auth.signed_out": _l("Signed out"),
    "bid.received": _l("Bid received"),
    "bid.withdrawn": _l("Bid withdrawn"),
    "centre.created": _l("Centre created"),
    "centre.updated": _l("Centre updated"),
    "clock.alert_raised": _l("Overdue alert raised"),
    "clock.alert_resolved": _l("Overdue alert resolved"),
    "clock.retry_requested": _l("Retry requested"),
    "clock.step": _l("Scheduled step run"),
    "company.registered": _l("Company registered"),
    "company.approved": _l("Company approved"),
    "company.rejected": _l("Company rejected"),
    "company.alias_added": _l("Company alias added"),
    "company.alias_removed": _l("Company alias removed"),
    "company.certificate_added": _l("Certificate added"),
    "company.certificate_removed": _l("Certificate removed"),
    "custodian_key.created": _l("Custodian key created"),
    "custodian_key.retired": _l("Custodian key retired"),
    "evaluation.finalised": _l("Evaluation finalised"),
    "evaluation.lot_drawn": _l("Tie broken by a draw"),
    "evaluation.unblinded": _l("Evaluation unblinded"),
    "key_share.backup_downloaded": _l("Key share backup downloaded"),
    "key_share.unlock_failed": _l("Key share unlock failed"),
    "opening.incident": _l("Opening incident"),
    "opening.line_confirmed": _l("Opening line confirmed"),
    "opening.line_objected": _l("Objection to an opening line"),
    "opening.share_unlocked": _l("Key share unlocked"),
    "opening.shares_reset": _l("Key shares reset"),
    "opening.started": _l("Opening started"),
    "panel.accepted": _l("Invitation accepted"),
    "panel.conflict_declared": _l("Conflict of interest declared"),
    "panel.declined": _l("Invitation declined"),
    "panel.drawn": _l("Panel drawn"),
    "panel.expert_profile_saved": _l("Expert profile saved"),
    "panel.member_removed": _l("Panel member removed"),
    "panel.relationship_declared": _l("Relationship declared"),
    "record.countersigned": _l("Record countersigned"),
    "record.failed": _l("Record failed"),
    "record.requested": _l("Record requested"),
    "record.signed": _l("Record signed"),
    "record.superseded": _l("Record superseded"),
    "results.award_published": _l("Award published"),
    "results.candidates_published": _l("Candidates published"),
    "results.evaluation_reopened": _l("Evaluation reopened"),
    "results.letter_issued": _l("Result letter issued"),
    "results.objection_filed": _l("Objection filed"),
    "scoring.draft_saved": _l("Score sheet draft saved"),
    "scoring.outlier_reason": _l("Reason for an outlying score"),
    "scoring.sheet_locked": _l("Score sheet locked"),
    "scoring.sheet_reopened": _l("Score sheet reopened"),
    "signing_key.enrolled": _l("Signing key enrolled"),
    "template.copied": _l("Template copied"),
    "template.version_saved": _l("Template version saved"),
    "tender.addendum_published": _l("Addendum published"),
    "tender.attachment_added": _l("Attachment added"),
    "tender.bond_recorded": _l("Bid bond recorded"),
    "tender.cancelled": _l("Tender cancelled"),
    "tender.closed": _l("Bidding closed"),
    "tender.created": _l("Tender created"),
    "tender.demo_deadline_moved": _l("Demo deadline moved"),
    "tender.enquiry_answered": _l("Enquiry answered"),
    "tender.enquiry_asked": _l("Enquiry asked"),
    "tender.failed": _l("Tender failed"),
    "tender.key_ceremony": _l("Key ceremony held"),
    "tender.opened": _l("Bids opened"),
    "tender.published": _l("Tender published"),
    "tender.registered": _l("Registered for a tender"),
    "tender.retender_of": _l("Re-tender of an earlier tender"),
    "tender.retendered": _l("Tender launched again"),
    "tender.sealed": _l("Sealing record published"),
    "tender.updated": _l("Tender updated"),
    "user.created": _l("Account created"),
    "user.disabled": _l("Account disabled"),
    "user.enabled": _l("Account enabled"),
    "user.role_changed": _l("Role changed"),
    "user.email_confirmed": _l("E-mail address confirmed"),
    "user.password_reset": _l("Password reset"),
    "user.password_reset_requested": _l("Password reset requested"),
    "user.totp_enrolled": _l("Authenticator enrolled"),
    "user.totp_resealed": _l("Authenticator secret re-encrypted"),
}
LABELS["audit_action"] = AUDIT_ACTIONS

_MEMBER = re.compile(r"^member-(\d+)$")
# Sentences stored in English by earlier versions and shown on pages: read back translated.
_TOO_FEW_BIDS = re.compile(r"^(\d+) bid\(s\) received by the deadline; at least (\d+) are needed$")
_EXPERT = re.compile(r"^expert-(\d+)$")


def label(value: object, kind: str) -> str:
    """The translated label of a stored code (the code itself when it has none)."""
    if value is None:
        return ""
    text = str(getattr(value, "value", value))
    found = LABELS.get(kind, {}).get(text)
    if found is not None:
        return str(found)
    if kind == "opening_reason":
        match = _TOO_FEW_BIDS.match(text)
        if match:
            return gettext(
                "%(received)s bid(s) received by the deadline; at least %(needed)s are needed",
                received=match.group(1),
                needed=match.group(2),
            )
    if kind == "member":
        if text == "platform":
            return gettext("Platform")
        for pattern in (_MEMBER, _EXPERT):
            match = pattern.match(text)
            if match:
                return gettext("Member %(n)s", n=match.group(1))
    return text


def member_label(value: str) -> str:
    """`member-1` as "Member 1" in the reader's language."""
    return label(value, "member")
