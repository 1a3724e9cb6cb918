"""The tender lifecycle up to the bid deadline: create (from a template version), edit the
draft, publish (TOTP re-confirmed; freezes the documents), addenda, cancellation.

Publication is one operation with an extension point, the `tender_publishing` signal
(`app.tenders.signals`): the custody stage's key ceremony answers it (connected in the app
factory) instead of spreading publication across views.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, select

from app import tender_templates
from app.accounts.models import Role, User
from app.accounts.operations import check_second_factor
from app.audit import append_event
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.events import publish_after_commit
from app.extensions import db
from app.permissions import Permission, can, require
from app.tenders import documents
from app.tenders.lot_changes import LotChange, apply_lot_changes, check_lot_reference
from app.tenders.models import (
    Addendum,
    Lot,
    TemplateVersion,
    Tender,
    TenderCustodian,
    TenderRegistration,
    TenderStatus,
)
from app.tenders.notify import notify_registered
from app.tenders.signals import tender_cancelled, tender_publishing

TENDER_CHANNEL = "fairbid:tenders"
# Callables run inside the publication transaction, after the tender is frozen:
# hook(tender, actor). A hook that raises aborts the publication.
CANCELLABLE = frozenset(TenderStatus) - {
    TenderStatus.AWARDED,
    TenderStatus.CANCELLED,
    TenderStatus.FAILED,
}
MAX_CUSTODIANS = 16  # what SLIP-39 shares allow
MONEY_RE = re.compile(r"^[0-9]{1,16}(\.[0-9]+)?$")
CUSTODIAN_ROLES = frozenset({Role.CUSTODIAN, Role.STAFF, Role.SUPERVISOR})


@dataclass
class LotInput:
    title: str
    budget: Decimal | None = None
    ceiling_price: Decimal | None = None
    reserve_price: Decimal | None = None
    reference: str = ""  # empty: the lot's number
    description: str = ""
    quantity: str = ""
    bid_bond_amount: Decimal | None = None


LOT_AWARD_RULES = ("lot_order", "max_total_score", "min_total_price")


@dataclass
class TenderInput:
    reference: str
    title: str
    publication_at: datetime
    enquiry_deadline: datetime
    submission_deadline: datetime
    opening_at: datetime
    lots: list[LotInput]
    custodian_ids: list[int]
    custodian_threshold: int
    description: str = ""
    procuring_entity: str = ""
    budget: Decimal | None = None
    bid_bond_amount: Decimal | None = None
    evaluation_days: int = 10
    multi_lot_bidding: bool = True
    max_lots_won: int | None = None
    lot_award_rule: str = "lot_order"
    errors: list = field(default_factory=list)


def parse_money(value, label) -> Decimal | None:
    """Money from a form or JSON: decimal strings only, two places at most, never float."""
    if value in (None, ""):
        return None
    if isinstance(value, float):
        raise OperationError(_l("%(field)s: send money as a decimal string.", field=label))
    text = str(value).replace(",", "").strip()
    if not MONEY_RE.match(text):
        raise OperationError(_l("%(field)s: not an amount of money.", field=label))
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise OperationError(_l("%(field)s: not an amount of money.", field=label)) from None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:
        raise OperationError(
            _l("%(field)s: a positive amount with at most two decimals.", field=label)
        )
    return amount


def template_document(version: TemplateVersion) -> dict:
    return tender_templates.load_template(version.yaml_text)


@lru_cache(maxsize=64)
def template_json(yaml_text: str) -> str:
    """A template text parsed and validated, as JSON (cached per text)."""
    return json.dumps(tender_templates.load_template(yaml_text))


def template_of(tender: Tender) -> dict:
    """The tender's template document (parsed once per template text; a fresh copy)."""
    return json.loads(template_json(tender.template_version.yaml_text))


def current_locale() -> str:
    """The reader's language as templates name languages ("en" outside a request)."""
    try:
        return tender_templates.normalize_locale(str(get_locale() or "en"))
    except Exception:  # outside a request
        return "en"


def _check(data: TenderInput, template: dict, category: str, now: datetime, centre_id: int) -> None:
    """Schedule, lots, bond and custodians; raises with the first problem found."""
    config = current_app.config
    days = template.get("submission_days_min") or config["SUBMISSION_DAYS_MIN"].get(category, 20)
    if not data.reference.strip() or len(data.reference) > 64:
        raise OperationError(_l("Give a reference number of at most 64 characters."), "reference")
    if not data.title.strip():
        raise OperationError(_l("Give the tender a title."), code="title")
    if data.submission_deadline <= now:
        raise OperationError(_l("The bid submission deadline is in the past."), "deadline_past")
    if data.submission_deadline < max(data.publication_at, now) + timedelta(days=days):
        raise OperationError(
            _l(
                "The bid submission deadline must be at least %(days)d days after publication.",
                days=days,
            ),
            code="deadline_too_soon",
        )
    if not data.publication_at <= data.enquiry_deadline <= data.submission_deadline:
        raise OperationError(
            _l("The enquiry deadline must fall between publication and the bid deadline."),
            code="enquiry_deadline",
        )
    if data.opening_at < data.submission_deadline:
        raise OperationError(
            _l("The opening cannot come before the bid submission deadline."), code="opening"
        )
    if not data.lots:
        raise OperationError(_l("A tender has at least one lot."), code="lots")
    direction = template["direction"]
    compliance = template.get("compliance", {})
    for number, lot in enumerate(data.lots, start=1):
        if not lot.title.strip():
            raise OperationError(_l("Lot %(n)d needs a title.", n=number), code="lot_title")
        if compliance.get("ceiling_price_required") and lot.ceiling_price is None:
            raise OperationError(_l("Lot %(n)d needs a ceiling price.", n=number), "ceiling")
        if compliance.get("reserve_price_required") and lot.reserve_price is None:
            raise OperationError(_l("Lot %(n)d needs a reserve price.", n=number), "reserve")
        if direction == "lowest_wins" and lot.reserve_price is not None:
            raise OperationError(_l("A procurement has a ceiling price, not a reserve."), "reserve")
        if direction == "highest_wins" and lot.ceiling_price is not None:
            raise OperationError(_l("A sale has a reserve price, not a ceiling."), "ceiling")
        if lot.reference:
            check_lot_reference(number, lot.reference)
    references = [lot.reference or str(n) for n, lot in enumerate(data.lots, start=1)]
    if len(set(references)) != len(references):
        raise OperationError(_l("Each lot needs its own reference."), code="lot_reference")
    if data.lot_award_rule not in LOT_AWARD_RULES:
        raise OperationError(
            _l("Choose how lots are awarded when the win limit binds."), code="lot_award_rule"
        )
    if data.max_lots_won is not None and not 1 <= data.max_lots_won <= len(data.lots):
        raise OperationError(
            _l(
                "The most lots one company may win is between 1 and the number of lots "
                "(%(n)d), or no limit.",
                n=len(data.lots),
            ),
            code="max_lots_won",
        )
    if data.bid_bond_amount is not None and data.budget is not None:
        limit = data.budget * Decimal(config["BID_BOND_MAX_PERCENT"]) / 100
        if data.bid_bond_amount > limit:
            raise OperationError(
                _l(
                    "The bid bond may be at most %(pct)d %% of the budget.",
                    pct=config["BID_BOND_MAX_PERCENT"],
                ),
                code="bond",
            )
    ids = list(dict.fromkeys(data.custodian_ids))
    if len(ids) > MAX_CUSTODIANS:
        raise OperationError(
            _l("Name at most %(n)d key custodians.", n=MAX_CUSTODIANS), code="custodians"
        )
    if not 2 <= data.custodian_threshold <= len(ids):
        raise OperationError(
            _l("Name n key custodians and a threshold k with 2 ≤ k ≤ n."), code="custodians"
        )
    people = db.session.scalars(select(User).where(User.id.in_(ids))).all()
    if len(people) != len(ids) or any(
        p.role not in CUSTODIAN_ROLES or not p.is_enabled for p in people
    ):
        raise OperationError(
            _l("Key custodians must be active custodians, staff or supervisors."),
            code="custodians",
        )
    # Supervisors serve every centre; custodians and staff only their own.
    if any(p.centre_id not in (None, centre_id) for p in people):
        raise OperationError(
            _l("Key custodians and staff must belong to the tender's centre."), code="custodians"
        )


def _apply(tender: Tender, data: TenderInput) -> None:
    tender.reference = data.reference.strip()
    tender.title = data.title.strip()
    tender.description = data.description.strip()
    tender.procuring_entity = " ".join(data.procuring_entity.split())
    tender.budget = data.budget
    tender.bid_bond_amount = data.bid_bond_amount
    tender.publication_at = data.publication_at
    tender.enquiry_deadline = data.enquiry_deadline
    tender.submission_deadline = data.submission_deadline
    tender.opening_at = data.opening_at
    tender.evaluation_days = data.evaluation_days
    tender.custodian_threshold = data.custodian_threshold
    tender.multi_lot_bidding = data.multi_lot_bidding
    tender.max_lots_won = data.max_lots_won
    tender.lot_award_rule = data.lot_award_rule
    tender.lots.clear()
    db.session.flush()
    for number, lot in enumerate(data.lots, start=1):
        tender.lots.append(
            Lot(
                number=number,
                reference=lot.reference or str(number),
                title=lot.title.strip(),
                description=lot.description.strip(),
                quantity=lot.quantity.strip(),
                budget=lot.budget,
                ceiling_price=lot.ceiling_price,
                reserve_price=lot.reserve_price,
                bid_bond_amount=lot.bid_bond_amount,
            )
        )
    tender.custodians.clear()
    db.session.flush()
    for user_id in dict.fromkeys(data.custodian_ids):
        tender.custodians.append(TenderCustodian(user_id=user_id))


def _reference_taken(centre_id: int, reference: str, tender_id: int | None = None) -> bool:
    query = select(Tender.id).where(
        Tender.centre_id == centre_id, func.lower(Tender.reference) == reference.strip().lower()
    )
    if tender_id is not None:
        query = query.where(Tender.id != tender_id)
    return db.session.scalar(query) is not None


def create_tender(
    actor: User, centre_id: int, version: TemplateVersion, data: TenderInput
) -> Tender:
    require(actor, Permission.MANAGE_TENDERS, centre_id=centre_id)
    template = version.template
    if template.centre_id not in (None, centre_id):
        raise OperationError(_l("Use a built-in template or one of your centre's."), "template")
    doc = template_document(version)
    _check(data, doc, doc["category"], utcnow(), centre_id)
    if _reference_taken(centre_id, data.reference):
        raise Conflict(_l("This reference number is already used in your centre."), "reference")
    tender = Tender(
        centre_id=centre_id,
        template_version_id=version.id,
        category=doc["category"],
        direction=doc["direction"],
        status=TenderStatus.DRAFT,
        created_by_id=actor.id,
        reference=data.reference,
        title=data.title,
        publication_at=data.publication_at,
        enquiry_deadline=data.enquiry_deadline,
        submission_deadline=data.submission_deadline,
        opening_at=data.opening_at,
    )
    db.session.add(tender)
    db.session.flush()
    _apply(tender, data)
    append_event(
        "tender.created",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=centre_id,
        data={"reference": tender.reference, "template_version": version.id},
    )
    return tender


def update_tender(actor: User, tender: Tender, data: TenderInput) -> None:
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    if tender.status != TenderStatus.DRAFT:
        raise Conflict(_l("A published tender changes only through addenda."), code="not_draft")
    doc = template_document(tender.template_version)
    _check(data, doc, tender.category, utcnow(), tender.centre_id)
    if _reference_taken(tender.centre_id, data.reference, tender.id):
        raise Conflict(_l("This reference number is already used in your centre."), "reference")
    _apply(tender, data)
    append_event(
        "tender.updated",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
    )


def publish_tender(actor: User, tender: Tender, totp_code: str) -> None:
    """Publish: second-factor re-confirmation, schedule re-checked against the clock now,
    documents rendered and frozen, hooks run, announcement public after commit."""
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    if tender.status != TenderStatus.DRAFT:
        raise Conflict(_l("This tender is already published."), code="not_draft")
    check_second_factor(actor, totp_code)
    now = utcnow()
    doc = template_document(tender.template_version)
    data = input_from_tender(tender)
    data.publication_at = now
    _check(data, doc, tender.category, now, tender.centre_id)
    tender.status = TenderStatus.PUBLISHED
    tender.publication_at = now
    tender.published_at = now
    tender.published_by_id = actor.id
    rendered = documents.render_tender_document(tender, doc)
    tender_publishing.send(tender, actor=actor)
    append_event(
        "tender.published",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "reference": tender.reference,
            "submission_deadline": tender.submission_deadline.isoformat(),
            "document_sha256": rendered.sha256,
            "template_version_sha256": tender.template_version.sha256,
        },
    )
    publish_after_commit(TENDER_CHANNEL, {"tender": tender.id, "event": "published"})
    documents.invalidate_portal_cache()


def input_from_tender(tender: Tender) -> TenderInput:
    return TenderInput(
        reference=tender.reference,
        title=tender.title,
        description=tender.description,
        procuring_entity=tender.procuring_entity,
        budget=tender.budget,
        bid_bond_amount=tender.bid_bond_amount,
        publication_at=tender.publication_at,
        enquiry_deadline=tender.enquiry_deadline,
        submission_deadline=tender.submission_deadline,
        opening_at=tender.opening_at,
        evaluation_days=tender.evaluation_days,
        custodian_threshold=tender.custodian_threshold,
        custodian_ids=[c.user_id for c in tender.custodians],
        multi_lot_bidding=tender.multi_lot_bidding,
        max_lots_won=tender.max_lots_won,
        lot_award_rule=tender.lot_award_rule,
        lots=[
            LotInput(
                x.title,
                x.budget,
                x.ceiling_price,
                x.reserve_price,
                reference=x.reference,
                description=x.description,
                quantity=x.quantity,
                bid_bond_amount=x.bid_bond_amount,
            )
            for x in tender.lots
        ],
    )


def publish_addendum(
    actor: User,
    tender: Tender,
    title: str,
    body: str,
    new_deadline: datetime | None = None,
    lot_changes: Sequence[LotChange] = (),
) -> Addendum:
    """An amendment as a new versioned document. Too close to the deadline, the deadline
    moves so bidders keep at least the configured minimum (default 15 days). The only way a
    published tender's lots change: ``lot_changes`` adds, cancels or re-prices lots
    (`app.tenders.lot_changes`), recorded in the addendum and its document."""
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    if tender.status != TenderStatus.PUBLISHED:
        raise Conflict(_l("Addenda are for published tenders before the deadline."), "status")
    now = utcnow()
    if now >= tender.submission_deadline:
        raise Conflict(_l("The bid deadline has passed."), code="deadline_passed")
    if not title.strip() or not body.strip():
        raise OperationError(_l("An addendum needs a title and a text."), code="addendum")
    min_days = template_document(tender.template_version).get(
        "addendum_min_days", current_app.config["ADDENDUM_MIN_DAYS"]
    )
    earliest = now + timedelta(days=min_days)
    before = tender.submission_deadline
    deadline = new_deadline or before
    if deadline < before:
        raise OperationError(_l("An addendum cannot bring the deadline forward."), "deadline")
    if deadline < earliest:
        deadline = earliest
    shift = deadline - before
    tender.submission_deadline = deadline
    tender.opening_at = tender.opening_at + shift
    number = len(tender.addenda) + 1
    addendum = Addendum(
        tender_id=tender.id,
        number=number,
        title=title.strip(),
        body=body.strip(),
        published_at=now,
        published_by_id=actor.id,
        deadline_before=before,
        deadline_after=deadline,
    )
    db.session.add(addendum)
    db.session.flush()
    if lot_changes:
        doc = template_document(tender.template_version)
        addendum.lot_changes = apply_lot_changes(tender, addendum, lot_changes, doc, now)
        db.session.flush()
    rendered = documents.render_addendum(tender, addendum)
    append_event(
        "tender.addendum_published",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "number": number,
            "deadline_before": before.isoformat(),
            "deadline_after": deadline.isoformat(),
            "document_sha256": rendered.sha256,
            **({"lot_changes": addendum.lot_changes} if addendum.lot_changes else {}),
        },
    )
    notify_registered(
        tender,
        _l("Addendum %(n)d to tender %(ref)s", n=number, ref=tender.reference),
        "addendum",
        addendum=addendum,
    )
    documents.invalidate_portal_cache()
    return addendum


def cancel_tender(actor: User, tender: Tender, reason: str) -> None:
    require(actor, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    if tender.status not in CANCELLABLE:
        raise Conflict(_l("This tender can no longer be cancelled."), code="status")
    if not (reason or "").strip():
        raise OperationError(_l("Give the public reason for the cancellation."), "reason")
    was_public = tender.is_public
    tender.status = TenderStatus.CANCELLED
    tender.cancelled_at = utcnow()
    tender.cancel_reason = reason.strip()
    append_event(
        "tender.cancelled",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"reason": tender.cancel_reason},
    )
    if was_public:
        tender_cancelled.send(tender, actor=actor)
        notify_registered(
            tender, _l("Tender %(ref)s is cancelled", ref=tender.reference), "cancelled"
        )
        documents.invalidate_portal_cache()


def registrations_of(tender: Tender) -> list[TenderRegistration]:
    return list(
        db.session.scalars(
            select(TenderRegistration)
            .where(TenderRegistration.tender_id == tender.id)
            .order_by(TenderRegistration.registered_at)
        )
    )


# --- reading, for staff pages and the API ----------------------------------------------------


def tenders_visible_to(user: User, status: str | None = None) -> Select:
    """Staff see their centre's tenders; supervisors and admins every centre's."""
    require(user, Permission.VIEW_TENDERS)
    query = select(Tender).order_by(Tender.created_at.desc(), Tender.id.desc())
    if not can(user, Permission.VIEW_ALL_CENTRES):
        query = query.where(Tender.centre_id == user.centre_id)
    if status:
        query = query.where(Tender.status == status)
    return query


def custodian_candidates(centre_id: int | None) -> list[User]:
    """Who may hold a key share: the centre's custodians and staff, and supervisors; with no
    centre yet (an administrator picks it on the same form), everyone of those roles."""
    if centre_id is None:
        who = User.role.in_(list(CUSTODIAN_ROLES))
    else:
        who = ((User.centre_id == centre_id) & User.role.in_([Role.CUSTODIAN, Role.STAFF])) | (
            User.role == Role.SUPERVISOR
        )
    query = select(User).where(User.is_enabled.is_(True), who)
    return list(db.session.scalars(query.order_by(User.role, User.full_name, User.id)))
