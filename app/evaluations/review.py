"""The review stage of an evaluation, and the scoring-file builder the other stages use.

Reading: `evaluation_of`, `evaluated_bids` (by code), `panel_experts`, `is_chair`,
`technical_criteria`. Building: `scoring_document(tender, technical, technical_reasons)` is
the INPUT part of the tender's scoring file (template → `to_scoring_config`, plus one bid per
OPENED opening line, keyed by `bidder_id(company)`), `compute(tender)` scores it.

Operations (each calls `require`/its own access check once first, audits, never commits):
`start_evaluation` (staff), the chair's `overrule`, `record_check`, `decide_anonymity`,
`request_justification`, `decide_justification`, `confirm_review`; the bidder's
`submit_justification`. Every chair action re-runs the computation and stores it in
`Evaluation.scoring_json` (the review file has no technical scores; blind scoring replaces
it at unblinding).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

import evaluation
from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.models import Bid
from app.bids.operations import bidder_id
from app.companies.models import Company
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.custody.operations import envelope_tender_id
from app.evaluations.models import (
    AnonymityDecision,
    EvaluatedBid,
    Evaluation,
    EvaluationStage,
    LowPriceStatus,
)
from app.extensions import db
from app.opening.models import LineStatus, OpeningLine
from app.panels.models import MemberStatus, PanelDraw, PanelMember
from app.panels.operations import may_see_tender
from app.permissions import Permission, PermissionDenied, can, require
from app.tender_templates import normalize_locale, price_method_text, to_scoring_config
from app.tender_templates.rendering import localized
from app.tenders.documents import Upload, store_attachments
from app.tenders.models import (
    BondRecord,
    Lot,
    Tender,
    TenderRegistration,
    TenderStatus,
)
from app.tenders.notify import notify_users
from app.tenders.operations import template_document

# Called with (actor, tender, evaluation) when the chair finalises (stage FINALISED).
FINALISE_HOOKS: list[Callable[[User, Tender, Evaluation], None]] = []

AUTOMATIC_CHECKS = ("signed_and_sealed", "technical_part_anonymous")
DEFAULT_JUSTIFICATION_DAYS = 3
MAX_REASON = 4000
MAX_JUSTIFICATION = 20000


# --- reading -------------------------------------------------------------------------------


def evaluation_of(tender: Tender) -> Evaluation | None:
    return db.session.get(Evaluation, tender.id)


def evaluated_bids(tender: Tender) -> list[EvaluatedBid]:
    """The tender's evaluated bids, ordered by their random code (never by bid id)."""
    return list(
        db.session.scalars(
            select(EvaluatedBid)
            .where(EvaluatedBid.tender_id == tender.id)
            .order_by(EvaluatedBid.code)
        )
    )


def panel_experts(tender: Tender) -> list[PanelMember]:
    """Members who accepted and declared no conflict, by seat."""
    return list(
        db.session.scalars(
            select(PanelMember)
            .where(
                PanelMember.tender_id == tender.id,
                PanelMember.status == MemberStatus.ACCEPTED,
                PanelMember.conflict_declared_at.is_not(None),
            )
            .order_by(PanelMember.position, PanelMember.id)
        )
    )


def expert_id(member: PanelMember) -> str:
    return f"E{member.position}"


def is_chair(user: User, tender: Tender) -> bool:
    if not getattr(user, "is_authenticated", False) or user.role != Role.EXPERT:
        return False
    current = evaluation_of(tender)
    return current is not None and current.chair_id == user.id and may_see_tender(user, tender)


@lru_cache(maxsize=64)
def _parsed_template(yaml_text: str) -> str:
    return json.dumps(template_document(_Version(yaml_text)))


@dataclass(frozen=True)
class _Version:
    yaml_text: str


def _template(tender: Tender) -> dict:
    """The tender's template document (parsed once per template text)."""
    return json.loads(_parsed_template(tender.template_version.yaml_text))


@lru_cache(maxsize=64)
def _scoring_config(yaml_text: str, values_json: str) -> str:
    return json.dumps(to_scoring_config(_template_of_text(yaml_text), json.loads(values_json)))


def _template_of_text(yaml_text: str) -> dict:
    return json.loads(_parsed_template(yaml_text))


def _locale() -> str:
    try:
        return normalize_locale(str(get_locale() or "en"))
    except Exception:  # outside a request
        return "en"


def technical_criteria(tender: Tender) -> list[dict]:
    """The template's technical criteria: key, max_points and step (Decimal), title."""
    locale = _locale()
    return [
        {
            "key": item["key"],
            "max_points": Decimal(str(item["max_points"])),
            "step": Decimal(str(item["step"])),
            "title": localized(item.get("title"), locale) or item["key"],
        }
        for item in _template(tender).get("technical_criteria") or []
    ]


def required_checks(tender: Tender) -> list[str]:
    """The template's compliance checks (the scoring file's `required_checks`)."""
    config = _config(tender)
    return list(config.get("compliance_rules", {}).get("required_checks", []))


def manual_checks(tender: Tender) -> list[str]:
    """Required checks the chair records (the automatic ones and technical pass marks,
    recorded by blind scoring, excluded)."""
    return [
        check
        for check in required_checks(tender)
        if check not in AUTOMATIC_CHECKS and not check.startswith("technical_pass_")
    ]


def qualification_keys(tender: Tender) -> list[str]:
    return [item["key"] for item in _template(tender).get("qualification_documents") or []]


def abnormally_low_settings(tender: Tender) -> dict:
    return dict(_config(tender).get("abnormally_low") or {})


# --- the scoring file ----------------------------------------------------------------------


def _lot(tender: Tender) -> Lot | None:
    return min(tender.lots, key=lambda lot: lot.number) if tender.lots else None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value), "f")


def _config(tender: Tender) -> dict:
    lot = _lot(tender)
    values: dict[str, Any] = {
        "tender": {
            "id": envelope_tender_id(tender),
            "reference": tender.reference,
            "title": tender.title,
        }
    }
    if lot is not None:
        values["tender"]["lot"] = str(lot.number)
    if tender.direction == "highest_wins":
        values["reserve_price"] = _money(lot.reserve_price if lot else None)
    else:
        values["ceiling_price"] = _money(lot.ceiling_price if lot else None)
    values["bid_bond"] = _money(tender.bid_bond_amount)
    values["budget"] = _money((lot.budget if lot else None) or tender.budget)
    values = {k: v for k, v in values.items() if v is not None}
    # Validating a template takes a tenth of a second: once per text and values.
    text = tender.template_version.yaml_text
    return json.loads(_scoring_config(text, json.dumps(values, sort_keys=True)))


def _field_value(value: Any) -> str | bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return format(Decimal(value), "f")
    if isinstance(value, str):
        return value
    return None  # nested values are not scored


def _fields(line: OpeningLine) -> dict:
    raw = json.loads(line.commercial) if line.commercial else {}
    out = {}
    for key, value in raw.items():
        if key == "price":
            continue
        converted = _field_value(value)
        if converted is not None:
            out[key] = converted
    return out


def _bond_total(tender: Tender, company_id: int) -> Decimal | None:
    amounts = list(
        db.session.scalars(
            select(BondRecord.amount)
            .join(TenderRegistration, TenderRegistration.id == BondRecord.registration_id)
            .where(
                TenderRegistration.tender_id == tender.id,
                TenderRegistration.company_id == company_id,
            )
        )
    )
    return sum(amounts, Decimal(0)) if amounts else None


def _documents(keys: list[str], evaluated: EvaluatedBid | None) -> list[str]:
    if evaluated is None:
        return []
    present = []
    for part in evaluated.qualification or []:
        name = part.get("name", "")
        number = name.removeprefix("qualification-")
        if part.get("size") and number.isdigit() and 1 <= int(number) <= len(keys):
            present.append(keys[int(number) - 1])
    return sorted(set(present), key=keys.index)


def anonymity_check(evaluated: EvaluatedBid | None) -> bool | str | None:
    """The `technical_part_anonymous` check: True, a failure reason, or None (open)."""
    if evaluated is None:
        return True
    decision = evaluated.anonymity_decision
    if decision in (AnonymityDecision.CLEAN, AnonymityDecision.ACCEPTED):
        return True
    if decision == AnonymityDecision.REJECTED:
        return evaluated.anonymity_reason or False
    return None


def _compliance(evaluated: EvaluatedBid | None) -> dict:
    checks: dict[str, bool | str] = {"signed_and_sealed": True}
    anonymous = anonymity_check(evaluated)
    if anonymous is not None:
        checks["technical_part_anonymous"] = anonymous
    for name, record in ((evaluated.checks if evaluated else None) or {}).items():
        if name in AUTOMATIC_CHECKS:
            continue
        checks[name] = True if record.get("passed") else (record.get("reason") or False)
    return checks


@dataclass(frozen=True)
class _Row:
    line: OpeningLine
    company: Company
    evaluated: EvaluatedBid | None


def _rows(tender: Tender) -> list[_Row]:
    rows = db.session.execute(
        select(OpeningLine, Company, EvaluatedBid)
        .join(Company, Company.id == OpeningLine.company_id)
        .outerjoin(EvaluatedBid, EvaluatedBid.bid_id == OpeningLine.bid_id)
        .where(OpeningLine.tender_id == tender.id, OpeningLine.status == LineStatus.OPENED)
        .order_by(Company.registration_number)
    ).all()
    return [_Row(line, company, evaluated) for line, company, evaluated in rows]


def scoring_document(
    tender: Tender,
    technical: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
    technical_reasons: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
) -> dict:
    """The input part of the tender's scoring file. `technical` / `technical_reasons` map
    `EvaluatedBid.id` → expert id ("E<seat>") → criterion → score / reason."""
    document = _config(tender)
    keys = qualification_keys(tender)
    pass_marks = {
        item["key"]: Decimal(str(item["pass_mark"]))
        for item in _template(tender).get("technical_criteria") or []
        if item.get("pass_mark") is not None
    }
    bids = []
    for row in _rows(tender):
        bid: dict[str, Any] = {
            "id": bidder_id(row.company),
            "price": row.line.price,
            "fields": _fields(row.line),
            "documents": _documents(keys, row.evaluated),
            "compliance": _compliance(row.evaluated),
        }
        bond = _bond_total(tender, row.company.id)
        if bond is not None:
            bid["bid_bond"] = format(bond, "f")
        evaluated = row.evaluated
        if evaluated is not None and evaluated.lot_draw is not None:
            bid["draw"] = evaluated.lot_draw
        if evaluated is not None and evaluated.override_compliant is not None:
            bid["compliance_override"] = {
                "compliant": evaluated.override_compliant,
                "reason": evaluated.override_reason,
            }
        if evaluated is not None and technical and evaluated.id in technical:
            bid["technical"] = {e: dict(s) for e, s in technical[evaluated.id].items()}
            bid["compliance"].update(_pass_mark_checks(bid["technical"], pass_marks))
        if evaluated is not None and technical_reasons and evaluated.id in technical_reasons:
            bid["technical_reasons"] = {
                e: dict(r) for e, r in technical_reasons[evaluated.id].items()
            }
        bids.append(bid)
    document["bids"] = bids
    return document


def _pass_mark_checks(
    sheets: Mapping[str, Mapping[str, str]], pass_marks: Mapping[str, Decimal]
) -> dict[str, bool | str]:
    """`technical_pass_<key>` for each criterion with a pass mark (lowest evaluated price):
    passed when the panel's mean score for the criterion reaches the mark."""
    checks: dict[str, bool | str] = {}
    for key, mark in pass_marks.items():
        scores = [Decimal(sheet[key]) for sheet in sheets.values() if key in sheet]
        if not scores:
            continue
        mean = sum(scores, Decimal(0)) / len(scores)
        checks[f"technical_pass_{key}"] = (
            True
            if mean >= mark
            else f"panel mean {mean.quantize(Decimal('0.01'))} is below the pass mark {mark}"
        )
    return checks


def compute(tender: Tender) -> dict:
    """The scored review file: compliance, price and commercial scores (no technical)."""
    return evaluation.score(scoring_document(tender))


def _store(current: Evaluation, scored: dict) -> None:
    current.scoring_json = evaluation.dumps(scored)
    current.scoring_sha256 = scored["result"]["input_sha256"]


def recompute(tender: Tender) -> dict:
    """Compute and store the review file on the tender's evaluation."""
    scored = compute(tender)
    current = evaluation_of(tender)
    if current is not None:
        _store(current, scored)
    return scored


def review_result(tender: Tender) -> dict | None:
    """The stored scored file (or None before the evaluation started)."""
    current = evaluation_of(tender)
    if current is None or not current.scoring_json:
        return None
    return evaluation.parse_json(current.scoring_json)


# --- provisional view: open checks assumed passed -----------------------------------------


def provisional(tender: Tender) -> dict:
    """The review computation with every OPEN check (unrecorded check, undecided anonymity
    question) assumed passed, so that the panel sees price and commercial scores and
    abnormally-low flags while it still records checks. Never stored."""
    document = scoring_document(tender)
    for check in required_checks(tender):
        for bid in document["bids"]:
            bid["compliance"].setdefault(check, True)
    return evaluation.score(document)


def open_checks(tender: Tender) -> dict[int, list[str]]:
    """Bid id → the required checks still open on it (manual unrecorded, anonymity)."""
    manual = manual_checks(tender)
    wanted = set(required_checks(tender))
    out: dict[int, list[str]] = {}
    for row in _rows(tender):
        evaluated = row.evaluated
        missing = [c for c in manual if c not in ((evaluated.checks if evaluated else {}) or {})]
        if "technical_part_anonymous" in wanted and anonymity_check(evaluated) is None:
            missing.append("technical_part_anonymous")
        if missing:
            out[row.line.bid_id] = missing
    return out


LOW_PRICE_CODES = ("abnormally_low_vs_mean", "abnormally_low_vs_next")


def low_price_flags(scored: dict) -> dict[str, list[dict]]:
    """Bidder id → its abnormally-low flags in a scored file."""
    out: dict[str, list[dict]] = {}
    for flag in scored.get("result", {}).get("flags", []):
        if flag.get("code") in LOW_PRICE_CODES:
            out.setdefault(flag["params"].get("bid", ""), []).append(flag)
    return out


def open_low_price_questions(tender: Tender, scored: dict | None = None) -> list[int]:
    """Bid ids whose low-price question is open: flagged and not decided, or requested and
    not decided."""
    scored = scored if scored is not None else provisional(tender)
    flagged = low_price_flags(scored)
    decided = (LowPriceStatus.ACCEPTED, LowPriceStatus.REJECTED)
    out = []
    for row in _rows(tender):
        evaluated = row.evaluated
        status = evaluated.low_price_status if evaluated else LowPriceStatus.NONE
        if status in decided:
            continue
        if bidder_id(row.company) in flagged or status != LowPriceStatus.NONE:
            out.append(row.line.bid_id)
    return out


# --- operations ----------------------------------------------------------------------------


def _reason(reason: str | None, what=None) -> str:
    text = (reason or "").strip()
    if not text:
        raise OperationError(what or _l("Write the reason."), code="no_reason")
    if len(text) > MAX_REASON:
        raise OperationError(
            _l("The reason is too long (at most %(n)d characters).", n=MAX_REASON),
            code="reason_too_long",
        )
    return text


def _audit(action: str, actor: User | None, tender: Tender, **data) -> None:
    append_event(
        action,
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data=data,
    )


def _ensure_evaluated_bids(tender: Tender) -> None:
    """An EvaluatedBid for every opened line (tenders opened before parts were kept)."""
    from app.evaluations.parts import record_evaluated_bid

    rows = _rows(tender)
    taken = {row.evaluated.code for row in rows if row.evaluated is not None}
    for row in rows:
        if row.evaluated is None:
            record_evaluated_bid(tender.id, row.line.bid_id, None, taken)
    db.session.flush()


def start_evaluation(actor: User, tender: Tender, chair: User | None = None) -> Evaluation:
    """Staff start the evaluation of an opened tender whose panel is complete."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    if evaluation_of(tender) is not None:
        raise Conflict(_l("The evaluation of this tender has already started."), "started")
    if tender.status != TenderStatus.OPENED:
        raise Conflict(_l("The evaluation starts once the bids are opened."), code="not_opened")
    draw = db.session.scalar(select(PanelDraw).where(PanelDraw.tender_id == tender.id))
    if draw is None:
        raise Conflict(_l("Draw the panel before starting the evaluation."), code="no_panel")
    experts = panel_experts(tender)
    if len(experts) != draw.size or draw.size < 3 or draw.size % 2 == 0:
        raise Conflict(
            _l(
                "The panel is not complete: %(ready)d of %(size)d members have accepted and "
                "declared no conflict (an odd number, at least 3, is needed).",
                ready=len(experts),
                size=draw.size,
            ),
            code="panel_incomplete",
        )
    if chair is None:
        chair_member = experts[0]
    else:
        chair_member = next((m for m in experts if m.user_id == chair.id), None)
        if chair_member is None:
            raise OperationError(
                _l("The chair must be a member of the panel who declared no conflict."),
                code="chair_not_member",
            )
    _ensure_evaluated_bids(tender)
    tender.status = TenderStatus.EVALUATING
    current = Evaluation(
        tender_id=tender.id,
        stage=EvaluationStage.REVIEW,
        round=1,
        chair_id=chair_member.user_id,
        started_at=utcnow(),
    )
    db.session.add(current)
    db.session.flush()
    scored = compute(tender)
    _store(current, scored)
    _audit(
        "evaluation.started",
        actor,
        tender,
        chair=chair_member.user_id,
        members=[m.user_id for m in experts],
        input_sha256=scored["result"]["input_sha256"],
    )
    return current


def require_chair(actor: User, tender: Tender) -> Evaluation:
    """The access check of the chair's review actions (and the stage)."""
    if not is_chair(actor, tender):
        raise PermissionDenied()
    current = evaluation_of(tender)
    if current.stage != EvaluationStage.REVIEW:
        raise Conflict(_l("The review of this evaluation is closed."), code="not_review")
    return current


def evaluated_for_bid(tender: Tender, bid_id: int) -> EvaluatedBid | None:
    return db.session.scalar(
        select(EvaluatedBid).where(
            EvaluatedBid.tender_id == tender.id, EvaluatedBid.bid_id == bid_id
        )
    )


def _evaluated_by_bid(tender: Tender, bid_id: int) -> EvaluatedBid:
    found = evaluated_for_bid(tender, bid_id)
    if found is None:
        raise OperationError(_l("There is no such bid in this evaluation."), "not_found", 404)
    return found


def _after_change(tender: Tender, current: Evaluation) -> str:
    scored = compute(tender)
    _store(current, scored)
    return scored["result"]["input_sha256"]


def overrule(
    actor: User, tender: Tender, bid_id: int, compliant: bool | None, reason: str
) -> EvaluatedBid:
    """The chair overrules the automatic compliance verdict of a bid (None: withdraws the
    overrule), with a written reason; the computation runs again."""
    current = require_chair(actor, tender)
    text = _reason(reason, _l("Write the reason for the panel's decision."))
    evaluated = _evaluated_by_bid(tender, bid_id)
    evaluated.override_compliant = compliant
    evaluated.override_reason = text if compliant is not None else ""
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.compliance_overruled",
        actor,
        tender,
        bid=bid_id,
        compliant=compliant,
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def record_check(
    actor: User, tender: Tender, bid_id: int, check: str, passed: bool, reason: str
) -> EvaluatedBid:
    """The chair records a required check of the template for a bid."""
    current = require_chair(actor, tender)
    if check not in manual_checks(tender):
        raise OperationError(
            _l("This check is not one the panel records for this tender."), code="bad_check"
        )
    text = _reason(reason, _l("Write the reason for the check's result."))
    evaluated = _evaluated_by_bid(tender, bid_id)
    checks = dict(evaluated.checks or {})
    checks[check] = {
        "passed": bool(passed),
        "reason": text,
        "by": actor.id,
        "at": utcnow().isoformat(),
    }
    evaluated.checks = checks
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.check_recorded",
        actor,
        tender,
        bid=bid_id,
        check=check,
        passed=bool(passed),
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def evaluated_by_code(tender: Tender, code: str) -> EvaluatedBid:
    found = db.session.scalar(
        select(EvaluatedBid).where(EvaluatedBid.tender_id == tender.id, EvaluatedBid.code == code)
    )
    if found is None:
        raise OperationError(_l("There is no such technical code."), "not_found", 404)
    return found


def decide_anonymity(
    actor: User, tender: Tender, code: str, accepted: bool, reason: str
) -> EvaluatedBid:
    """The chair decides an anonymity question (on the code page: no names, no prices).
    Rejected: the technical part breaks the dark-bid rule and the bid is non-compliant."""
    current = require_chair(actor, tender)
    text = _reason(reason, _l("Write the reason for the panel's decision."))
    evaluated = evaluated_by_code(tender, code)
    if evaluated.anonymity_decision != AnonymityDecision.PENDING:
        raise Conflict(_l("This anonymity question is already decided."), code="decided")
    evaluated.anonymity_decision = (
        AnonymityDecision.ACCEPTED if accepted else AnonymityDecision.REJECTED
    )
    evaluated.anonymity_reason = text
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.anonymity_decided",
        actor,
        tender,
        code=code,
        accepted=bool(accepted),
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def _justification_days() -> int:
    return int(current_app.config.get("LOW_PRICE_JUSTIFICATION_DAYS", DEFAULT_JUSTIFICATION_DAYS))


def request_justification(
    actor: User, tender: Tender, bid_id: int, days: int | None = None, link: str = ""
) -> EvaluatedBid:
    """The chair asks the bidder of a flagged abnormally low price to justify it within a
    window (default `LOW_PRICE_JUSTIFICATION_DAYS`, 3 days). The bidder is notified."""
    require_chair(actor, tender)
    days = _justification_days() if days is None else days
    if not 1 <= days <= 30:
        raise OperationError(_l("The window is between 1 and 30 days."), code="bad_window")
    evaluated = _evaluated_by_bid(tender, bid_id)
    if evaluated.low_price_status != LowPriceStatus.NONE:
        raise Conflict(_l("A justification was already requested."), code="requested")
    company = db.session.get(Company, db.session.get(Bid, bid_id).company_id)
    if bidder_id(company) not in low_price_flags(provisional(tender)):
        raise Conflict(_l("This bid's price is not flagged as abnormally low."), "not_flagged")
    due = utcnow() + timedelta(days=days)
    evaluated.low_price_status = LowPriceStatus.REQUESTED
    evaluated.low_price_due_at = due
    _notify_bidder(tender, company, due, link)
    db.session.flush()
    _audit(
        "evaluation.justification_requested",
        actor,
        tender,
        bid=bid_id,
        due_at=due.isoformat(),
    )
    return evaluated


def _notify_bidder(tender: Tender, company: Company, due: datetime, link: str) -> None:
    """An in-app notification and an e-mail to each bidder account of the company."""

    when = due.strftime("%Y-%m-%d %H:%M")
    users = db.session.scalars(
        select(User).where(User.company_id == company.id, User.role == Role.BIDDER)
    )
    subject = _l(
        "Justify your price for %(reference)s by %(due)s UTC", reference=tender.reference, due=when
    )
    notify_users(users, tender, subject, "evaluation_justification", link, due=when)


def own_evaluated_bid(actor: User, tender: Tender) -> EvaluatedBid | None:
    if not getattr(actor, "is_authenticated", False) or actor.company_id is None:
        return None
    return db.session.scalar(
        select(EvaluatedBid)
        .join(Bid, Bid.id == EvaluatedBid.bid_id)
        .where(EvaluatedBid.tender_id == tender.id, Bid.company_id == actor.company_id)
    )


MAX_JUSTIFICATION_FILES = 10


def submit_justification(
    actor: User, tender: Tender, text: str, uploads: list[Upload] = ()
) -> EvaluatedBid:
    """The bidder's written justification of its price, with optional attachments, before
    the window ends. A late or refused submission stores nothing."""
    require(actor, Permission.TAKE_PART)
    evaluated = own_evaluated_bid(actor, tender)
    if evaluated is None or evaluated.low_price_status == LowPriceStatus.NONE:
        raise OperationError(_l("No justification of your price was requested."), "not_found", 404)
    if evaluated.low_price_status != LowPriceStatus.REQUESTED:
        raise Conflict(_l("Your justification was already submitted."), code="submitted")
    if utcnow() > evaluated.low_price_due_at:
        raise Conflict(
            _l(
                "The time to justify your price ended on %(due)s UTC: nothing was stored.",
                due=evaluated.low_price_due_at.strftime("%Y-%m-%d %H:%M"),
            ),
            code="late",
        )
    body = (text or "").strip()
    if not body:
        raise OperationError(_l("Write your justification."), code="no_text")
    if len(body) > MAX_JUSTIFICATION:
        raise OperationError(
            _l("The justification is too long (at most %(n)d characters).", n=MAX_JUSTIFICATION),
            code="too_long",
        )
    attachments = store_attachments(list(uploads), max_files=MAX_JUSTIFICATION_FILES)
    evaluated.low_price_justification = body
    evaluated.low_price_attachments = attachments
    evaluated.low_price_submitted_at = utcnow()
    evaluated.low_price_status = LowPriceStatus.SUBMITTED
    db.session.flush()
    _audit(
        "evaluation.justification_submitted",
        actor,
        tender,
        bid=evaluated.bid_id,
        text_sha256=hashlib.sha256(body.encode()).hexdigest(),
        attachments=[a["sha256"] for a in attachments],
    )
    return evaluated


def decide_justification(
    actor: User, tender: Tender, bid_id: int, accepted: bool, reason: str
) -> EvaluatedBid:
    """The chair accepts or rejects the price justification (rejected, or unanswered when
    the window has ended: the bid is non-compliant, as an overrule with this reason)."""
    current = require_chair(actor, tender)
    text = _reason(reason, _l("Write the reason for the panel's decision."))
    evaluated = _evaluated_by_bid(tender, bid_id)
    status = evaluated.low_price_status
    late = (
        status == LowPriceStatus.REQUESTED
        and evaluated.low_price_due_at is not None
        and utcnow() > evaluated.low_price_due_at
    )
    if not (status == LowPriceStatus.SUBMITTED or late):
        raise Conflict(
            _l("Wait for the bidder's justification or the end of its window."),
            code="not_submitted",
        )
    evaluated.low_price_reason = text
    if accepted:
        evaluated.low_price_status = LowPriceStatus.ACCEPTED
    else:
        evaluated.low_price_status = LowPriceStatus.REJECTED
        evaluated.override_compliant = False
        evaluated.override_reason = text
    db.session.flush()
    sha = _after_change(tender, current)
    _audit(
        "evaluation.justification_decided",
        actor,
        tender,
        bid=bid_id,
        accepted=bool(accepted),
        answered=status == LowPriceStatus.SUBMITTED,
        reason=text,
        input_sha256=sha,
    )
    return evaluated


def confirm_review(actor: User, tender: Tender) -> Evaluation:
    """The chair confirms the review: stage SCORING. Refused while a question is open."""
    current = require_chair(actor, tender)
    pending = [
        e.code for e in evaluated_bids(tender) if e.anonymity_decision == AnonymityDecision.PENDING
    ]
    if pending:
        raise Conflict(
            _l("Decide the anonymity questions first (%(n)d open).", n=len(pending)),
            code="anonymity_open",
        )
    unrecorded = open_checks(tender)
    if unrecorded:
        raise Conflict(
            _l("Record every required check first (%(n)d bid(s) open).", n=len(unrecorded)),
            code="checks_open",
        )
    low = open_low_price_questions(tender)
    if low:
        raise Conflict(
            _l("Settle the abnormally low prices first (%(n)d open).", n=len(low)),
            code="low_price_open",
        )
    now = utcnow()
    current.stage = EvaluationStage.SCORING
    current.review_confirmed_at = now
    current.review_confirmed_by_id = actor.id
    sha = _after_change(tender, current)
    _audit("evaluation.review_confirmed", actor, tender, input_sha256=sha)
    return current


def may_view_review(user: User, tender: Tender) -> bool:
    """Panel members (accepted, no conflict) and the centre's staff / supervisors."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.role == Role.EXPERT:
        return may_see_tender(user, tender)
    return can(user, Permission.VIEW_TENDERS, tender.centre_id) and user.role != Role.BIDDER


# --- what the review pages and the API show ------------------------------------------------

REASON_TEXTS = {
    "above_ceiling": _l("Price %(price)s is above the ceiling price %(ceiling_price)s."),
    "below_reserve": _l("Price %(price)s is below the reserve price %(reserve_price)s."),
    "required_field_missing": _l("Required field '%(field)s' is missing."),
    "field_not_decimal": _l("Field '%(field)s' must be a decimal number; the bid has '%(value)s'."),
    "qualification_document_missing": _l("Qualification document '%(document)s' is missing."),
    "bid_bond_missing": _l("No bid bond was recorded; %(required)s is required."),
    "bid_bond_insufficient": _l("The bid bond %(amount)s is less than the required %(required)s."),
    "check_not_recorded": _l("Check '%(check)s' required by the tender was not recorded."),
    "check_failed": _l("Check '%(check)s' failed."),
    "check_failed_with_reason": _l("Check '%(check)s' failed: %(reason)s"),
    "field_rule_failed": _l(
        "Field '%(field)s' is '%(value)s'; the tender requires %(op)s %(expected)s."
    ),
    "panel_overruled_compliant": _l(
        "The panel overruled the automatic verdict and found the bid compliant: %(reason)s"
    ),
    "panel_overruled_non_compliant": _l(
        "The panel overruled the automatic verdict and found the bid non-compliant: %(reason)s"
    ),
    "panel_confirmed": _l("The panel confirmed the automatic verdict: %(reason)s"),
    "abnormally_low_vs_mean": _l(
        "The price %(price)s is %(pct_below)s %% below the mean %(mean_of_others)s of the other "
        "compliant bids (threshold %(threshold)s %%): the bidder must justify its price."
    ),
    "abnormally_low_vs_next": _l(
        "The price %(price)s is %(pct_below)s %% below the next lowest compliant price "
        "%(next_price)s (threshold %(threshold)s %%): the bidder must justify its price."
    ),
}
CHECK_LABELS = {
    "signed_and_sealed": _l("Signed and sealed"),
    "technical_part_anonymous": _l("Technical part anonymous"),
    "essential_specifications_met": _l("Essential (★) specifications met"),
    "bill_of_quantities_unaltered": _l("Bill of quantities unaltered"),
}
HIT_LABELS = {
    "name": _l("Company name"),
    "registration_number": _l("Unified social credit code"),
    "alias": _l("Known alias"),
    "not_pdf": _l("The technical part is not a PDF: it could not be scanned, look at it"),
    "unreadable_pdf": _l("The PDF could not be read: it could not be scanned, look at it"),
    "no_text": _l("The PDF has no text layer (a scan?): it could not be scanned, look at it"),
    "too_large": _l(
        "The PDF is too large to be rewritten: its metadata was not removed and its text "
        "was not scanned, look at it"
    ),
}


def _display(value: str) -> str:
    """Long decimals (means, percentages) rounded to 2 places for reading."""
    try:
        number = Decimal(value)
    except Exception:
        return value
    if number.as_tuple().exponent < -2:  # type: ignore[operator]
        return format(number.quantize(Decimal("0.01")), "f")
    return value


def reason_text(code: str, params: Mapping[str, Any], fallback: str = "") -> str:
    """The translated message of a library code (the English one if unknown)."""
    shown = {k: _display(v) if isinstance(v, str) else v for k, v in params.items()}
    if "check" in shown:
        shown["check"] = str(CHECK_LABELS.get(shown["check"], shown["check"]))
    text = REASON_TEXTS.get(code)
    if text is None:
        return fallback or code
    try:
        return str(text) % shown
    except (KeyError, TypeError, ValueError):
        return fallback or code


def check_label(check: str) -> str:
    return str(CHECK_LABELS.get(check, check.replace("_", " ")))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _check_rows(tender: Tender, evaluated: EvaluatedBid | None) -> list[dict]:
    rows = []
    recorded = (evaluated.checks if evaluated else None) or {}
    for check in required_checks(tender):
        if check == "signed_and_sealed":
            rows.append({"check": check, "status": "passed", "automatic": True, "reason": ""})
        elif check == "technical_part_anonymous":
            value = anonymity_check(evaluated)
            status = "open" if value is None else "passed" if value is True else "failed"
            rows.append(
                {
                    "check": check,
                    "status": status,
                    "automatic": True,
                    "reason": "" if value in (None, True) else str(value),
                }
            )
        elif check in recorded:
            record = recorded[check]
            rows.append(
                {
                    "check": check,
                    "status": "passed" if record.get("passed") else "failed",
                    "automatic": False,
                    "reason": record.get("reason", ""),
                }
            )
        else:
            rows.append({"check": check, "status": "open", "automatic": False, "reason": ""})
    for row in rows:
        row["label"] = check_label(row["check"])
    return rows


def review_data(tender: Tender) -> dict:
    """Everything the review page shows, keyed by the public opening sequence (bid id) and
    the company name; never a technical code."""
    current = evaluation_of(tender)
    in_review = current is not None and current.stage == EvaluationStage.REVIEW
    scored = provisional(tender) if (current is None or in_review) else review_result(tender)
    result = scored["result"]
    by_id = {b["id"]: b for b in result["bids"]}
    flags = low_price_flags(scored)
    names = {}
    bids = []
    for row in sorted(_rows(tender), key=lambda r: r.line.bid_id):
        key = bidder_id(row.company)
        names[key] = row.company.name
        computed = by_id.get(key, {})
        evaluated = row.evaluated
        checks = _check_rows(tender, evaluated)
        low = {
            "flags": [
                reason_text(f["code"], f["params"], f.get("message", ""))
                for f in flags.get(key, [])
            ],
            "status": evaluated.low_price_status if evaluated else LowPriceStatus.NONE,
        }
        if evaluated is not None and evaluated.low_price_status != LowPriceStatus.NONE:
            low.update(
                due_at=_iso(evaluated.low_price_due_at),
                justification=evaluated.low_price_justification,
                attachments=[
                    {k: a[k] for k in ("filename", "sha256", "size", "content_type")}
                    for a in evaluated.low_price_attachments or []
                ],
                submitted_at=_iso(evaluated.low_price_submitted_at),
                decision_reason=evaluated.low_price_reason,
            )
        commercial = computed.get("commercial_score") or {}
        bids.append(
            {
                "bid_id": row.line.bid_id,
                "company": row.company.name,
                "bidder": key,
                "price": row.line.price,
                "provisional": in_review and any(c["status"] == "open" for c in checks),
                "compliant": computed.get("compliant"),
                "automatic_compliant": computed.get("automatic_compliant"),
                "reasons": [
                    {
                        "code": r["code"],
                        "params": r["params"],
                        "message": reason_text(r["code"], r["params"], r.get("message", "")),
                    }
                    for r in computed.get("reasons", [])
                ],
                "override": None
                if evaluated is None or evaluated.override_compliant is None
                else {
                    "compliant": evaluated.override_compliant,
                    "reason": evaluated.override_reason,
                },
                "checks": checks,
                "price_score": computed.get("price_score"),
                "evaluated_price": computed.get("evaluated_price"),
                "commercial_criteria": [
                    {"key": k, **v} for k, v in (commercial.get("criteria") or {}).items()
                ],
                "commercial_total": commercial.get("total"),
                "low_price": low,
            }
        )
    template = _template(tender)
    locale = _locale()
    titles = {
        item["key"]: localized(item.get("title"), locale) or item["key"]
        for item in template.get("commercial_criteria") or []
    }
    for bid in bids:
        for criterion in bid["commercial_criteria"]:
            criterion["title"] = titles.get(criterion["key"], criterion["key"])
    price = dict(result.get("price") or {})
    price["description"] = price_method_text(template, locale)
    working = []
    for item in price.get("bids", []):
        working.append({**item, "company": names.get(item.get("bid"), item.get("bid"))})
    price["bids"] = working
    price["dropped"] = [
        {**d, "company": names.get(d.get("bid"), d.get("bid"))} for d in price.get("dropped", [])
    ]
    price["valid_prices"] = [
        {**v, "company": names.get(v.get("bid"), v.get("bid"))}
        for v in price.get("valid_prices", [])
    ]
    pending = sum(
        1 for e in evaluated_bids(tender) if e.anonymity_decision == AnonymityDecision.PENDING
    )
    chair = db.session.get(User, current.chair_id) if current and current.chair_id else None
    return {
        "tender": {
            "id": tender.id,
            "reference": tender.reference,
            "title": tender.title,
            "status": tender.status,
        },
        "evaluation": None
        if current is None
        else {
            "stage": current.stage,
            "round": current.round,
            "chair": {"id": chair.id, "name": chair.full_name} if chair else None,
            "started_at": _iso(current.started_at),
            "review_confirmed_at": _iso(current.review_confirmed_at),
            "input_sha256": current.scoring_sha256,
        },
        "provisional": current is None or in_review,
        "bids": bids,
        "price": price,
        "open_questions": {
            "anonymity": pending,
            "checks": len(open_checks(tender)),
            "low_price": len(open_low_price_questions(tender, scored)),
        },
        "manual_checks": [{"check": c, "label": check_label(c)} for c in manual_checks(tender)],
    }


def anonymity_data(tender: Tender) -> dict:
    """The anonymity questions by technical code: hits with the identity masked; no names,
    no prices, no bid ids."""
    from app.evaluations.parts import masked_excerpt

    questions = []
    for evaluated in evaluated_bids(tender):
        if not evaluated.anonymity_hits:
            continue
        questions.append(
            {
                "code": evaluated.code,
                "decision": evaluated.anonymity_decision,
                "reason": evaluated.anonymity_reason,
                "hits": [
                    {
                        "kind": hit.get("kind", ""),
                        "label": str(HIT_LABELS.get(hit.get("kind", ""), hit.get("kind", ""))),
                        "excerpt": masked_excerpt(hit),
                        "page": hit.get("page"),
                    }
                    for hit in evaluated.anonymity_hits
                ],
            }
        )
    current = evaluation_of(tender)
    return {
        "tender": {"id": tender.id, "reference": tender.reference},
        "stage": current.stage if current else None,
        "questions": questions,
    }
