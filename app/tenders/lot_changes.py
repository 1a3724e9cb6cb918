"""Changing the lots of a published tender: only through an addendum (`publish_addendum`).

An addendum may add a lot, cancel a lot, or change a lot's ceiling or reserve price, bid
bond, budget or quantity. Each change is checked against the tender's template like the
draft's lots, applied, and written down in the addendum (`Addendum.lot_changes`):

    {"action": "add", "lot": "D", "title": ..., "ceiling_price": "90000.00", ...}
    {"action": "cancel", "lot": "B"}
    {"action": "change", "lot": "1", "field": "ceiling_price", "before": "100.00",
     "after": "90.00"}

A cancelled lot stays in the tender (envelopes, receipts and the sealing record name it):
new envelopes for it are refused, those received are kept unopened and reported at the
opening, the other lots proceed. The addendum's deadline rule applies as to every addendum.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l

from app.core.errors import OperationError
from app.tenders.models import Addendum, Lot, Tender

ACTIONS = ("add", "cancel", "change")
# The fields of a lot an addendum may change, and how each is read.
MONEY_FIELDS = ("ceiling_price", "reserve_price", "bid_bond_amount", "budget")
TEXT_FIELDS = ("quantity",)
CHANGEABLE = MONEY_FIELDS + TEXT_FIELDS


@dataclass
class LotChange:
    """One change of an addendum to the tender's lots. ``add``: ``lot`` is the new lot (a
    `LotInput`); ``cancel``: ``reference`` names the lot; ``change``: ``reference`` and
    ``values`` (field -> new value; money as Decimal or None)."""

    action: str
    reference: str = ""
    lot: Any = None  # app.tenders.operations.LotInput for "add"
    values: dict[str, Any] = field(default_factory=dict)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value), "f")


def _live_lot(tender: Tender, reference: str) -> Lot:
    lot = tender.lot_by_reference(reference)
    if lot is None:
        raise OperationError(
            _l("This tender has no lot %(lot)s.", lot=reference[:40]), code="unknown_lot"
        )
    if lot.is_cancelled:
        raise OperationError(
            _l("Lot %(lot)s is already cancelled.", lot=reference), code="lot_cancelled"
        )
    return lot


def _check_prices(tender: Tender, template: Mapping, label: str, values: Mapping) -> None:
    """A lot's prices against the template: the direction decides ceiling or reserve, and
    the template may require one (``values`` holds the lot's prices after the change)."""
    compliance = template.get("compliance", {})
    if compliance.get("ceiling_price_required") and values.get("ceiling_price") is None:
        raise OperationError(_l("Lot %(lot)s needs a ceiling price.", lot=label), "ceiling")
    if compliance.get("reserve_price_required") and values.get("reserve_price") is None:
        raise OperationError(_l("Lot %(lot)s needs a reserve price.", lot=label), "reserve")
    if tender.direction == "lowest_wins" and values.get("reserve_price") is not None:
        raise OperationError(_l("A procurement has a ceiling price, not a reserve."), "reserve")
    if tender.direction == "highest_wins" and values.get("ceiling_price") is not None:
        raise OperationError(_l("A sale has a reserve price, not a ceiling."), "ceiling")


LOT_REFERENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$")


def check_lot_reference(number: int, reference: str) -> None:
    """A lot's reference names it in envelopes, receipts and records: 1 to 32 letters,
    digits and . _ : - starting with a letter or digit; else `OperationError`."""
    if not LOT_REFERENCE_RE.match(reference):
        raise OperationError(
            _l(
                "Lot %(n)d: a reference is 1 to 32 letters, digits and . _ : - "
                "(starting with a letter or digit).",
                n=number,
            ),
            code="lot_reference",
        )


def apply_lot_changes(
    tender: Tender,
    addendum: Addendum,
    changes: Sequence[LotChange],
    template: Mapping,
    now: datetime,
) -> list[dict]:
    """Check and apply ``changes`` (in order) to the lots of a published tender before its
    deadline; return what the addendum records. Raises `OperationError` on the first
    problem (the caller's transaction then keeps nothing)."""
    recorded: list[dict] = []
    for change in changes:
        if change.action not in ACTIONS:
            raise OperationError(_l("Unknown change to a lot."), code="lot_change")
        if not tender.has_lots:
            raise OperationError(
                _l(
                    "This tender is not divided into lots: it cannot gain or lose lots after "
                    "publication. Cancel it and tender again."
                ),
                code="no_lots",
            )
        if change.action == "add":
            recorded.append(_add(tender, change.lot, template))
        elif change.action == "cancel":
            lot = _live_lot(tender, change.reference)
            if len(tender.live_lots) == 1:
                raise OperationError(
                    _l(
                        "Lot %(lot)s is the last lot still competed for: cancel the tender "
                        "instead.",
                        lot=lot.reference,
                    ),
                    code="last_lot",
                )
            lot.cancelled_at = now
            lot.cancelled_by_addendum_id = addendum.id
            recorded.append({"action": "cancel", "lot": lot.reference})
        else:
            recorded.extend(_change(tender, change, template))
    return recorded


def _add(tender: Tender, new, template: Mapping) -> dict:
    number = max(lot.number for lot in tender.lots) + 1
    reference = (new.reference or str(number)).strip()
    check_lot_reference(number, reference)
    if tender.lot_by_reference(reference) is not None:
        raise OperationError(_l("Each lot needs its own reference."), code="lot_reference")
    if not new.title.strip():
        raise OperationError(_l("Lot %(n)d needs a title.", n=number), code="lot_title")
    _check_prices(
        tender,
        template,
        reference,
        {"ceiling_price": new.ceiling_price, "reserve_price": new.reserve_price},
    )
    lot = Lot(
        number=number,
        reference=reference,
        title=new.title.strip(),
        description=new.description.strip(),
        quantity=new.quantity.strip(),
        budget=new.budget,
        ceiling_price=new.ceiling_price,
        reserve_price=new.reserve_price,
        bid_bond_amount=new.bid_bond_amount,
    )
    tender.lots.append(lot)
    return {
        "action": "add",
        "lot": reference,
        "number": number,
        "title": lot.title,
        "quantity": lot.quantity,
        **{name: _money(getattr(lot, name)) for name in MONEY_FIELDS},
    }


def _change(tender: Tender, change: LotChange, template: Mapping) -> list[dict]:
    lot = _live_lot(tender, change.reference)
    unknown = sorted(set(change.values) - set(CHANGEABLE))
    if unknown or not change.values:
        raise OperationError(
            _l(
                "An addendum changes a lot's ceiling or reserve price, bid bond, budget or "
                "quantity."
            ),
            code="lot_change",
        )
    after = {name: getattr(lot, name) for name in CHANGEABLE} | dict(change.values)
    _check_prices(tender, template, lot.reference, after)
    recorded = []
    for name in CHANGEABLE:
        if name not in change.values:
            continue
        before, value = getattr(lot, name), change.values[name]
        if name in TEXT_FIELDS:
            value = (value or "").strip()
        if before == value:
            continue
        setattr(lot, name, value)
        shown = _money if name in MONEY_FIELDS else (lambda text: text)
        recorded.append(
            {
                "action": "change",
                "lot": lot.reference,
                "field": name,
                "before": shown(before),
                "after": shown(value),
            }
        )
    if not recorded:
        raise OperationError(
            _l("The addendum changes nothing in lot %(lot)s.", lot=lot.reference),
            code="lot_change",
        )
    return recorded
