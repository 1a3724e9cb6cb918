"""Schemas of the tender API: money travels as decimal strings, times as ISO 8601 with
their UTC offset, and neither is ever guessed."""

from __future__ import annotations

import re
from datetime import UTC
from decimal import Decimal

from apiflask import Schema
from apiflask.fields import (
    AwareDateTime,
    Boolean,
    DateTime,
    Dict,
    Integer,
    List,
    Method,
    Nested,
    String,
)
from apiflask.validators import Length, OneOf, Range, Regexp

from app.api.schemas import ErrorOut
from app.tenders.models import PUBLIC_STATUSES
from app.tenders.participation import MAX_QUESTION, bond_required, bond_status

CATEGORIES = ["goods", "works", "services", "asset_sale"]
BOND_KINDS = ["payment", "guarantee"]
BOND_STATUSES = ["not_required", "missing", "partial", "paid"]
MONEY_PATTERN = r"^[0-9]{1,16}(\.[0-9]{1,2})?$"
_MONEY = re.compile(MONEY_PATTERN)
_CENT = Decimal("0.01")


class Money(String):
    """An amount as a decimal string ("1250000.00"). A JSON number is refused: a float
    cannot hold every amount exactly, and money is never rounded by accident."""

    default_error_messages = {
        "invalid": 'Send money as a decimal string such as "1250000.00", not as a JSON number.',
        "format": 'Not an amount of money: digits with at most two decimals, e.g. "1250000.00".',
    }

    def __init__(self, **kwargs):
        metadata = {
            "pattern": MONEY_PATTERN,
            "example": "1250000.00",
            "description": "A decimal string with at most two decimals; JSON numbers are refused.",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return format(Decimal(value).quantize(_CENT), "f")

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        if not _MONEY.fullmatch(text):
            raise self.make_error("format")
        return Decimal(text)


class Instant(AwareDateTime):
    """A moment in ISO 8601 with its UTC offset ("2025-06-01T09:00:00+08:00"); stored in UTC.
    A time without an offset is refused rather than read in some assumed zone."""

    default_error_messages = {
        "invalid": 'Not an ISO 8601 date and time, e.g. "2025-06-01T09:00:00+08:00".',
        "invalid_awareness": (
            'Give the time with its UTC offset, e.g. "2025-06-01T09:00:00+08:00" or "…Z".'
        ),
    }

    def __init__(self, **kwargs):
        metadata = {"example": "2025-06-01T09:00:00+08:00", **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).astimezone(UTC)


# Errors --------------------------------------------------------------------------------


class TemplateErrorItem(Schema):
    path = String(metadata={"description": "Where, dotted: `price.params.k`; empty: all."})
    message = String()
    line = Integer(allow_none=True)


class TemplateErrorsOut(ErrorOut):
    errors = List(Nested(TemplateErrorItem))
    detail = Dict(metadata={"description": "The request body's validation errors, by field."})


# Tenders -------------------------------------------------------------------------------


class CentreRef(Schema):
    id = Integer()
    code = String()
    name = String()


class LotIn(Schema):
    reference = String(
        load_default="",
        validate=Length(max=32),
        metadata={
            "description": "What envelopes and records name the lot by; its number if empty."
        },
    )
    title = String(required=True, validate=Length(min=1, max=300))
    description = String(load_default="", validate=Length(max=20000))
    quantity = String(load_default="", validate=Length(max=200))
    budget = Money(load_default=None, allow_none=True)
    ceiling_price = Money(load_default=None, allow_none=True)
    reserve_price = Money(load_default=None, allow_none=True)
    bid_bond_amount = Money(load_default=None, allow_none=True)


class LotOut(Schema):
    number = Integer()
    reference = String()
    title = String()
    description = String()
    quantity = String()
    budget = Money(allow_none=True)
    ceiling_price = Money(allow_none=True)
    reserve_price = Money(allow_none=True)
    bid_bond_amount = Money(allow_none=True)
    cancelled_at = DateTime(
        allow_none=True,
        metadata={"description": "When an addendum cancelled the lot (null: competed for)."},
    )


class TenderFields(Schema):
    """The editable fields of a tender; on PATCH every one is optional."""

    reference = String(validate=Length(min=1, max=64))
    title = String(validate=Length(min=1, max=300))
    description = String(validate=Length(max=20000))
    procuring_entity = String(validate=Length(max=300))
    budget = Money(allow_none=True)
    bid_bond_amount = Money(allow_none=True)
    publication_at = Instant()
    enquiry_deadline = Instant()
    submission_deadline = Instant()
    opening_at = Instant()
    evaluation_days = Integer(strict=True, validate=Range(min=1, max=365))
    custodian_ids = List(Integer(strict=True), validate=Length(min=1, max=50))
    custodian_threshold = Integer(strict=True, validate=Range(min=2, max=50))
    lots = List(Nested(LotIn), validate=Length(min=1, max=100))
    multi_lot_bidding = Boolean(
        metadata={"description": "Whether one company may bid for several lots."}
    )
    max_lots_won = Integer(
        strict=True,
        allow_none=True,
        validate=Range(min=1),
        metadata={"description": "The most lots one company may win; null: no limit."},
    )
    lot_award_rule = String(
        validate=OneOf(["lot_order", "max_total_score", "min_total_price"]),
        metadata={"description": "How lots are awarded when the win limit binds."},
    )


class TenderIn(TenderFields):
    template_version_id = Integer(required=True, strict=True)
    centre_id = Integer(
        load_default=None,
        strict=True,
        allow_none=True,
        metadata={"description": "Defaults to the caller's centre; administrators name it."},
    )
    reference = String(required=True, validate=Length(min=1, max=64))
    title = String(required=True, validate=Length(min=1, max=300))
    description = String(load_default="", validate=Length(max=20000))
    procuring_entity = String(
        load_default="",
        validate=Length(max=300),
        metadata={"description": "Experts who recently sat on its panels are not drawn."},
    )
    budget = Money(load_default=None, allow_none=True)
    bid_bond_amount = Money(load_default=None, allow_none=True)
    publication_at = Instant(required=True)
    enquiry_deadline = Instant(required=True)
    submission_deadline = Instant(required=True)
    opening_at = Instant(required=True)
    evaluation_days = Integer(load_default=10, strict=True, validate=Range(min=1, max=365))
    custodian_ids = List(Integer(strict=True), required=True, validate=Length(min=1, max=50))
    custodian_threshold = Integer(required=True, strict=True, validate=Range(min=2, max=50))
    lots = List(Nested(LotIn), required=True, validate=Length(min=1, max=100))
    multi_lot_bidding = Boolean(load_default=True)
    max_lots_won = Integer(load_default=None, strict=True, allow_none=True, validate=Range(min=1))
    lot_award_rule = String(
        load_default="lot_order",
        validate=OneOf(["lot_order", "max_total_score", "min_total_price"]),
    )


class TenderQuery(Schema):
    status = String(load_default=None, validate=OneOf(sorted(PUBLIC_STATUSES)))
    category = String(load_default=None, validate=OneOf(CATEGORIES))
    centre_id = Integer(load_default=None)
    centre = String(
        load_default=None,
        validate=Length(max=32),
        metadata={"description": "A centre's code, e.g. `HZ`."},
    )
    page = Integer(load_default=1)
    per_page = Integer(load_default=50)


class TenderSummaryOut(Schema):
    id = Integer()
    reference = String()
    title = String()
    category = String()
    direction = String()
    status = String()
    centre = Nested(CentreRef)
    budget = Money(allow_none=True)
    bid_bond_amount = Money(allow_none=True)
    publication_at = DateTime()
    enquiry_deadline = DateTime()
    submission_deadline = DateTime()
    opening_at = DateTime()
    published_at = DateTime(allow_none=True)
    cancelled_at = DateTime(allow_none=True)


class TenderPage(Schema):
    tenders = List(Nested(TenderSummaryOut))
    page = Integer()
    pages = Integer()
    total = Integer()


class TemplateVersionRef(Schema):
    id = Integer()
    template_id = Integer()
    number = Integer()
    sha256 = String()


class DocumentOut(Schema):
    id = Integer()
    kind = String()
    title = String()
    filename = String()
    content_type = String()
    size = Integer()
    sha256 = String()
    addendum_id = Integer(allow_none=True)
    created_at = DateTime()
    superseded_at = DateTime(allow_none=True)


class AddendumOut(Schema):
    id = Integer()
    number = Integer()
    title = String()
    body = String()
    published_at = DateTime()
    deadline_before = DateTime()
    deadline_after = DateTime()
    lot_changes = List(
        Dict(),
        metadata={
            "description": "What the addendum changed in the lots: "
            '{"action": "add"|"cancel"|"change", "lot": reference, ...}.'
        },
    )


class AddendumPublishedOut(Schema):
    addendum = Nested(AddendumOut)
    tender = Nested(TenderSummaryOut, metadata={"description": "With the deadline now in force."})


class TenderOut(TenderSummaryOut):
    description = String()
    procuring_entity = String()
    evaluation_days = Integer()
    custodian_count = Method("get_custodian_count", metadata={"type": "integer"})
    custodian_threshold = Integer()
    cancel_reason = String()
    template_version = Nested(TemplateVersionRef)
    lots = List(Nested(LotOut))
    multi_lot_bidding = Boolean()
    max_lots_won = Integer(allow_none=True)
    lot_award_rule = String()
    documents = List(Nested(DocumentOut))
    addenda = List(Nested(AddendumOut))

    def get_custodian_count(self, tender) -> int:
        return len(tender.custodians)


class PublishIn(Schema):
    totp_code = String(
        required=True,
        validate=Regexp(r"^\d{6}$"),
        metadata={"description": "The current code of the caller's authenticator app."},
    )


class CancelIn(Schema):
    reason = String(
        required=True,
        validate=Length(min=1, max=2000),
        metadata={"description": "Published with the cancellation."},
    )


class LotChangeIn(Schema):
    action = String(
        required=True,
        validate=OneOf(("add", "cancel", "change")),
        metadata={
            "description": "`add` a lot (`new_lot`), `cancel` the lot `lot` (its envelopes "
            "are kept unopened), or `change` the given fields of the lot `lot`."
        },
    )
    lot = String(
        load_default="",
        validate=Length(max=32),
        metadata={"description": "The reference of the lot cancelled or changed."},
    )
    new_lot = Nested(LotIn, load_default=None, allow_none=True)
    budget = Money(allow_none=True)
    ceiling_price = Money(allow_none=True)
    reserve_price = Money(allow_none=True)
    bid_bond_amount = Money(allow_none=True)
    quantity = String(validate=Length(max=200))


class AddendumIn(Schema):
    lot_changes = List(
        Nested(LotChangeIn),
        load_default=list,
        validate=Length(max=20),
        metadata={
            "description": "A tender divided into lots changes its lots after publication "
            "only through an addendum: lots added, cancelled or re-priced, in order."
        },
    )
    title = String(required=True, validate=Length(min=1, max=300))
    body = String(required=True, validate=Length(min=1, max=50000))
    new_deadline = Instant(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "A later bid deadline. Too close to the deadline, it moves anyway "
            "so that bidders keep the configured minimum."
        },
    )


# Enquiries, registrations, bonds -------------------------------------------------------


class EnquiryIn(Schema):
    question = String(required=True, validate=Length(min=1, max=MAX_QUESTION))


class AnswerIn(Schema):
    answer = String(required=True, validate=Length(min=1, max=20000))


class EnquiryOut(Schema):
    """Never names the company that asked."""

    id = Integer()
    tender_id = Integer()
    question = String()
    asked_at = DateTime()
    answer = String(allow_none=True)
    answered_at = DateTime(allow_none=True)


class CompanyRef(Schema):
    id = Integer()
    name = String()
    registration_number = String()


class BondIn(Schema):
    kind = String(required=True, validate=OneOf(BOND_KINDS))
    amount = Money(required=True)
    reference = String(
        required=True,
        validate=Length(min=1, max=100),
        metadata={"description": "Bank transfer or guarantee reference."},
    )


class BondOut(Schema):
    id = Integer()
    kind = String()
    amount = Money()
    reference = String()
    recorded_at = DateTime()


class RegistrationOut(Schema):
    id = Integer()
    tender_id = Integer()
    company = Nested(CompanyRef)
    registered_at = DateTime()
    bond_status = Method("get_bond_status", metadata={"type": "string", "enum": BOND_STATUSES})
    bond_required = Method(
        "get_bond_required",
        metadata={"type": ["string", "null"], "description": "Per chosen lot, summed."},
    )
    bond_total = Money()
    bonds = List(Nested(BondOut))
    lots = Method(
        "get_lots",
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": "References of the lots the company bids for (lots only).",
        },
    )

    def get_bond_status(self, registration) -> str:
        return bond_status(registration.tender, registration)

    def get_bond_required(self, registration) -> str | None:
        amount = bond_required(registration.tender, registration)
        return None if amount is None else format(amount, "f")

    def get_lots(self, registration) -> list[str]:
        return [lot.reference for lot in registration.lots]


class RegistrationIn(Schema):
    lots = List(
        String(validate=Length(min=1, max=32)),
        load_default=None,
        validate=Length(max=100),
        metadata={"description": "A tender divided into lots: the lots' references."},
    )


class BondRecordedOut(Schema):
    bond = Nested(BondOut)
    registration = Nested(RegistrationOut)


# Templates -----------------------------------------------------------------------------


class TemplateVersionOut(Schema):
    id = Integer()
    number = Integer()
    sha256 = String()
    created_at = DateTime()
    created_by_id = Integer(allow_none=True)


class TemplateOut(Schema):
    id = Integer()
    key = String()
    name = String()
    category = String()
    centre_id = Integer(allow_none=True, metadata={"description": "None for a built-in."})
    builtin = Method("get_builtin", metadata={"type": "boolean"})
    based_on = String()
    created_at = DateTime()
    latest = Nested(TemplateVersionOut, allow_none=True)

    def get_builtin(self, template) -> bool:
        return template.centre_id is None


class TemplateDetailOut(TemplateOut):
    versions = List(Nested(TemplateVersionOut))
    yaml = Method("get_yaml", metadata={"type": "string", "description": "The latest text."})

    def get_yaml(self, template) -> str:
        return template.latest.yaml_text if template.latest else ""


class TemplateVersionDetailOut(TemplateVersionOut):
    template_id = Integer()
    yaml = String(attribute="yaml_text")


class TemplateCopyIn(Schema):
    key = String(
        required=True,
        validate=Length(min=1, max=64),
        metadata={"description": "The copy's key in the centre: letters, digits, - and _."},
    )
    centre_id = Integer(
        load_default=None,
        allow_none=True,
        metadata={"description": "Defaults to the caller's centre; administrators name it."},
    )


class TemplateVersionIn(Schema):
    yaml = String(required=True, validate=Length(min=1, max=200_000))
