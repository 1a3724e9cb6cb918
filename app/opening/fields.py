"""An opening line's commercial fields as people read them: each field by the label the
tender's template gives it (in the reader's language where the template has one), its value
formatted by type (money with the currency, numbers by locale, choices by their label);
a field the template does not know, or a value that does not fit its type, as stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from app.core.labels import LABELS, label
from app.i18n import money, number
from app.opening.models import OpeningLine
from app.opening.operations import commercial_fields
from app.tender_templates.rendering import localized
from app.tenders.models import Tender
from app.tenders.operations import current_locale, template_of

log = logging.getLogger(__name__)

NUMERIC_TYPES = ("integer", "decimal")


def field_specs(tender: Tender) -> dict[str, dict]:
    """Key → {label (in the current language), type} of the template's commercial fields;
    empty when the template does not load (keys are shown then)."""
    try:
        items = template_of(tender).get("commercial_fields") or []
    except Exception:  # a template that no longer parses still gets its opening page
        log.warning("tender %s: template does not load; fields shown by key", tender.id)
        return {}
    locale = current_locale()
    return {
        item["key"]: {
            "label": localized(item.get("label"), locale) or item["key"],
            "type": item.get("type"),
        }
        for item in items
        if isinstance(item, dict) and item.get("key")
    }


def labels_of(kind: str) -> dict[str, str]:
    """The labels of one kind of code in the current language (for the live page's
    script: bid-form choices, line statuses)."""
    return {code: str(text) for code, text in LABELS[kind].items()}


def value_text(value: object, kind: str | None) -> str:
    if value is None:
        return ""
    if kind == "choice":
        return label(value, "choice")
    if kind == "money" or kind in NUMERIC_TYPES:
        try:
            amount = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return str(value)
        if amount.is_finite():
            return money(amount) if kind == "money" else number(amount)
    if isinstance(value, bool):
        return label("yes" if value else "no", "choice")
    return str(value)


def shown_fields(tender: Tender) -> Callable[[OpeningLine], list[tuple[str, str]]]:
    """For the opening page: line → [(label, value text)] of its fields other than the
    price (shown in its own column), in the template's order, unknown fields after."""
    specs = field_specs(tender)
    order = {key: n for n, key in enumerate(specs)}

    def shown(line: OpeningLine) -> list[tuple[str, str]]:
        fields = commercial_fields(line)
        keys = sorted(
            (key for key in fields if key != "price"),
            key=lambda key: (order.get(key, len(order)), key),
        )
        out = []
        for key in keys:
            spec = specs.get(key) or {}
            out.append((spec.get("label") or key, value_text(fields[key], spec.get("type"))))
        return out

    return shown
