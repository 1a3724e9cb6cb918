"""What the drill's bidders put in their envelopes: the commercial fields a template asks
for, a small technical proposal (a one-page PDF naming nobody) and the qualification
documents (one-page PDFs), all derived from a seeded random generator."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
# What the strongest proposal of a drill of several lots promises beyond the others (the
# drill's experts read it and score it higher: app.scenario.stages._band).
STRONG_LINE = "Spare parts, on-site training and a three-year service plan included."


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def minimal_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF 1.4 showing `lines` in Helvetica (ASCII text), with a correct
    cross-reference table and no metadata."""
    text = ["BT", "/F1 11 Tf", "14 TL", "72 770 Td"]
    for line in lines:
        text.append(f"({_pdf_string(line.encode('ascii', 'replace').decode())}) Tj T*")
    text.append("ET")
    stream = "\n".join(text).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def technical_proposal(
    template: dict, variant: int, rng: random.Random, *, strong: bool = False
) -> bytes:
    """A blind technical part: criteria headings and generic answers, no identity; a strong
    one promises more (`STRONG_LINE`)."""
    lines = ["Technical proposal", f"Variant {variant}", ""]
    for criterion in template.get("technical_criteria") or []:
        title = criterion.get("title", {})
        heading = title.get("en") if isinstance(title, dict) else str(title)
        lines.append(f"{heading or criterion['key']}:")
        lines.append(
            rng.choice(
                [
                    "  We meet every specification and describe our method step by step.",
                    "  A detailed plan with schedule, staffing and quality controls.",
                    "  Our approach follows the national standards cited in Part 9.",
                    "  Inspection before delivery and a written acceptance procedure.",
                ]
            )
        )
    if strong:
        lines += ["", STRONG_LINE]
    return minimal_pdf(lines)


def qualification_documents(template: dict, company_name: str, code: str) -> list[bytes]:
    """One PDF per qualification document the template lists (in its order)."""
    documents = []
    for item in template.get("qualification_documents") or []:
        label = item.get("label", {})
        title = label.get("en") if isinstance(label, dict) else str(label)
        documents.append(minimal_pdf([title or item["key"], company_name, code]))
    return documents


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _rule_bound(template: dict, key: str) -> tuple[Decimal | None, Decimal | None]:
    """The narrowest [low, high] the template's compliance field rules allow for a field."""
    low = high = None
    for rule in (template.get("compliance") or {}).get("field_rules") or []:
        if rule.get("field") != key:
            continue
        value = Decimal(str(rule["value"]))
        op = rule.get("op")
        if op in (">=", ">", "=="):
            bump = 1 if op == ">" else 0
            low = value + bump if low is None else max(low, value + bump)
        if op in ("<=", "<", "=="):
            bump = 1 if op == "<" else 0
            high = value - bump if high is None else min(high, value - bump)
    return low, high


def commercial_fields(
    template: dict,
    *,
    reference_price: Decimal,
    rng: random.Random,
    deadline: date,
    compliant: bool = True,
    strong: bool = False,
) -> dict[str, Any]:
    """Values for every commercial field of the template. The price lies within 15 % of the
    reference (the ceiling, for a procurement; the reserve, for a sale) on the right side of
    it; a non-compliant bid is priced on the wrong side (above the ceiling, below the
    reserve); a strong bid at the best end of the range (15 % below, 16 % above)."""
    fields: dict[str, Any] = {}
    sale = template.get("direction") == "highest_wins"
    for spec in template.get("commercial_fields") or []:
        key, kind = spec["key"], spec.get("type")
        if kind == "money":
            if key != "price":
                fields[key] = _money(reference_price * Decimal("0.1"))
                continue
            if compliant:
                factor = Decimal(rng.randint(2, 15)) / 100
                if strong:
                    factor = Decimal("0.16") if sale else Decimal("0.15")
                factor = 1 + factor if sale else 1 - factor
            else:
                factor = Decimal("0.90") if sale else Decimal("1.05")
            fields[key] = _money(reference_price * factor)
        elif kind == "integer":
            low = Decimal(str(spec["min"])) if "min" in spec else None
            high = Decimal(str(spec["max"])) if "max" in spec else None
            rule_low, rule_high = _rule_bound(template, key)
            if rule_low is not None:
                low = rule_low if low is None else max(low, rule_low)
            if rule_high is not None:
                high = rule_high if high is None else min(high, rule_high)
            low = low if low is not None else Decimal(1)
            high = high if high is not None else low + 60
            fields[key] = rng.randint(int(low), int(high))
        elif kind == "decimal":
            fields[key] = str(spec.get("min", "1"))
        elif kind == "choice":
            fields[key] = rng.choice(list(spec["choices"]))
        elif kind == "date":
            fields[key] = (deadline + timedelta(days=rng.randint(30, 60))).isoformat()
        elif kind == "boolean":
            fields[key] = True
        else:  # text
            limit = int(spec.get("max_length") or 200)
            fields[key] = f"Drill entry {rng.randint(100, 999)}"[:limit]
    return fields
