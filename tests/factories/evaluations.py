"""Build an opened tender ready for evaluation with the real pieces: the built-in goods
template, real sealed envelopes (commercial, technical PDF, qualification parts) opened by
the real ceremony, bid bonds, and a seated panel. Shared by the evaluation tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from app.accounts.models import Role, User
from app.bids.models import Bid
from app.core.types import utcnow
from app.extensions import db
from app.panels.models import MemberStatus, PanelDraw, PanelMember
from app.tender_templates import builtin_template
from app.tenders.models import BondRecord, Tender, TenderRegistration
from bidding import envelope as envelopes
from tests.factories.bids import public_key, registered_bidder, submit, tid, uscc
from tests.factories.opening import open_for_real

GOODS_FIELDS = {
    "delivery_days": 30,
    "warranty_months": 36,
    "origin": "domestic",
    "bid_validity_days": 120,
}
QUALIFICATIONS = 5  # the goods template's required documents come first


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return escaped.encode("latin-1", "replace")


def text_pdf(
    lines: list[str],
    author: str | None = None,
    xmp: str | None = None,
    comment_by: str | None = None,
) -> bytes:
    """A small real PDF whose page shows `lines` (Helvetica), with /Author, XMP metadata and
    a comment (annotation) by `comment_by` when given."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    body = b"BT /F1 12 Tf 14 TL 72 720 Td "
    for line in lines:
        body += b"(" + _pdf_string(line) + b") Tj T* "
    body += b"ET"
    content = DecodedStreamObject()
    content.set_data(body)
    page[NameObject("/Contents")] = writer._add_object(content)
    if comment_by:
        from pypdf.generic import ArrayObject, FloatObject, TextStringObject

        note = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Text"),
                NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (10, 10, 30, 30)]),
                NameObject("/Contents"): TextStringObject("check this"),
                NameObject("/T"): TextStringObject(comment_by),
            }
        )
        page[NameObject("/Annots")] = ArrayObject([writer._add_object(note)])
    if author:
        writer.add_metadata({"/Author": author, "/Creator": author})
    if xmp:
        stream = DecodedStreamObject()
        stream.set_data(xmp.encode())
        stream[NameObject("/Type")] = NameObject("/Metadata")
        stream[NameObject("/Subtype")] = NameObject("/XML")
        writer.root_object[NameObject("/Metadata")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def use_goods_template(tender: Tender) -> Tender:
    tender.template_version.yaml_text = builtin_template("goods")
    db.session.commit()
    return tender


def seal_bid(
    tender: Tender,
    bidder: User,
    price: str,
    technical: bytes | None = None,
    qualifications: int = QUALIFICATIONS,
    lot: str | None = None,
    **fields,
) -> bytes:
    key = X25519PublicKey.from_public_bytes(public_key(tender))
    commercial = {"price": price, **GOODS_FIELDS, **fields}
    if technical is None:
        technical = text_pdf(["Technical proposal", "We deliver on time."])
    quals = [io.BytesIO(f"qualification {n}".encode()) for n in range(1, qualifications + 1)]
    parts = envelopes.bid_parts(commercial, io.BytesIO(technical), quals)
    out = io.BytesIO()
    envelopes.seal(out, key, tid(tender), uscc(bidder), parts, lot=lot)
    return out.getvalue()


def record_bond(tender: Tender, bidder: User, amount: str = "10000.00") -> None:
    registration = (
        db.session.query(TenderRegistration)
        .filter_by(tender_id=tender.id, company_id=bidder.company_id)
        .one()
    )
    db.session.add(
        BondRecord(
            registration_id=registration.id,
            kind="payment",
            amount=Decimal(amount),
            reference="BANK-1",
            recorded_by_id=tender.created_by_id,
        )
    )
    db.session.commit()


@dataclass
class Opened:
    tender: Tender
    bidders: list[User]
    bids: list[Bid]


def opened_tender(make_tender, make_user, prices, technicals=None, bonds=True) -> Opened:
    """A goods tender whose bids (one per price) were sealed and opened for real."""
    tender = use_goods_template(make_tender())
    bidders = [registered_bidder(make_user, tender) for _ in prices]
    bids = []
    for index, (bidder, price) in enumerate(zip(bidders, prices, strict=True)):
        technical = technicals[index] if technicals else None
        bids.append(submit(tender, bidder, seal_bid(tender, bidder, price, technical)))
        if bonds:
            record_bond(tender, bidder)
    return Opened(open_for_real(tender), bidders, bids)


def seat_panel(make_user, tender: Tender, size: int = 3, declared: bool = True) -> list[User]:
    """A drawn panel of `size` experts who accepted and declared no conflict."""
    db.session.add(
        PanelDraw(
            tender_id=tender.id,
            size=size,
            quotas={},
            seed="0" * 64,
            seed_inputs={},
            eligible=[],
            redraws=[],
            drawn_by_id=tender.created_by_id,
        )
    )
    experts = []
    for position in range(1, size + 1):
        expert = make_user(Role.EXPERT)
        db.session.add(
            PanelMember(
                tender_id=tender.id,
                user_id=expert.id,
                status=MemberStatus.ACCEPTED,
                position=position,
                conflict_declared_at=utcnow() - timedelta(minutes=5) if declared else None,
            )
        )
        experts.append(expert)
    db.session.commit()
    return experts
