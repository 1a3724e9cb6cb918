"""What the evaluation pages and the API show: the library's reason codes as translated
texts, check and anonymity-hit labels, the review and anonymity data, and the charts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from app.accounts.models import User
from app.bids.operations import bidder_id
from app.evaluations import charts
from app.evaluations.models import EvaluationStage, LowPriceStatus
from app.evaluations.queries import (
    PanelScores,
    evaluated_bids,
    evaluation_of,
    low_price_flags,
    open_checks,
    open_low_price_questions,
    review_result,
    scoring_has_locked,
)
from app.evaluations.scoring_file import (
    COMMERCIAL_CHECK,
    anonymity_check,
    current_locale,
    manual_checks,
    opened_bids,
    provisional,
    required_checks,
    several_lots,
    stored_lots,
    template_of,
)
from app.extensions import db
from app.i18n import money
from app.opening.models import AnonymityDecision, EvaluatedBid
from app.opening.parts import masked_excerpt
from app.opening.problems import line_problems, problems_text
from app.tender_templates import price_method_text
from app.tender_templates.rendering import localized
from app.tenders.models import Tender

REASON_TEXTS = {
    "above_ceiling": _l("Price %(price)s is above the ceiling price %(ceiling_price)s."),
    "below_reserve": _l("Price %(price)s is below the reserve price %(reserve_price)s."),
    "price_missing": _l("The bid has no readable price."),
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
    "commercial_part_valid": _l("Commercial part follows the tender's form"),
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


# Parameters of the library's messages that are amounts of money.
MONEY_PARAMS = frozenset(
    {"price", "ceiling_price", "reserve_price", "amount", "required", "mean_of_others",
     "next_price"}
)  # fmt: skip


def _shown(key: str, value: Any) -> Any:
    """A parameter as the reader reads it: money with its currency and separators, long
    decimals rounded."""
    if not isinstance(value, str):
        return value
    if key in MONEY_PARAMS:
        try:
            return money(Decimal(value))
        except ArithmeticError:
            return value
    return _display(value)


def reason_text(code: str, params: Mapping[str, Any], fallback: str = "") -> str:
    """The translated message of a library code (the English one if unknown)."""
    shown = {k: _shown(k, v) for k, v in params.items()}
    if "check" in shown:
        shown["check"] = str(CHECK_LABELS.get(shown["check"], shown["check"]))
    text = REASON_TEXTS.get(code)
    if text is None:
        return fallback or code
    try:
        return str(text) % shown
    except (KeyError, TypeError, ValueError):
        return fallback or code


def _commercial_reason(reason: Mapping[str, Any], problems: list | None) -> str:
    """The opening's verdict on a malformed commercial part, translated problem by problem
    ("" for any other reason)."""
    params = reason.get("params") or {}
    if not problems or params.get("check") != COMMERCIAL_CHECK:
        return ""
    return str(
        _l(
            "Check '%(check)s' failed: %(reason)s",
            check=check_label(COMMERCIAL_CHECK),
            reason=problems_text(problems),
        )
    )


def check_label(check: str) -> str:
    return str(CHECK_LABELS.get(check, check.replace("_", " ")))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _check_rows(tender: Tender, evaluated: EvaluatedBid | None, blind: bool) -> list[dict]:
    rows = []
    recorded = (evaluated.checks if evaluated else None) or {}
    for check in required_checks(tender):
        if check == "signed_and_sealed":
            rows.append({"check": check, "status": "passed", "automatic": True, "reason": ""})
        elif check == "technical_part_anonymous" and blind:
            # The review names the bidders; the anonymity questions name technical codes.
            # A per-bid status here (open for one bid only) would join the two, so until
            # unblinding every bid shows the same status. Only a rejection shows: it makes
            # the bid non-compliant, and a rejected part is not scored.
            value = anonymity_check(evaluated)
            rejected = value not in (None, True)
            rows.append(
                {
                    "check": check,
                    "status": "failed" if rejected else "blind",
                    "automatic": True,
                    "reason": str(value) if rejected else "",
                }
            )
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


def _price_working(result: dict, names: dict[str, str], description: str) -> dict:
    price = dict(result.get("price") or {})
    price["description"] = description
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
    return price


def review_data(tender: Tender) -> dict:
    """Everything the review page shows, keyed by the public opening sequence (bid id) and
    the company name; never a technical code."""
    current = evaluation_of(tender)
    in_review = current is not None and current.stage == EvaluationStage.REVIEW
    lots = several_lots(tender)
    # One scored file per lot (by lot id; None: the tender's one file).
    if not lots:
        scored_by_lot = {
            None: provisional(tender) if (current is None or in_review) else review_result(tender)
        }
    elif current is None or in_review:
        scored_by_lot = {lot.id: provisional(tender, lot) for lot in lots}
    else:
        stored = {e["lot"]: e["scoring_file"] for e in stored_lots(current)["lots"]}
        scored_by_lot = {lot.id: stored[lot.reference] for lot in lots}
    by_id = {
        lot_id: {b["id"]: b for b in scored["result"]["bids"]}
        for lot_id, scored in scored_by_lot.items()
    }
    flags_by_lot = {lot_id: low_price_flags(scored) for lot_id, scored in scored_by_lot.items()}
    references = {lot.id: lot.reference for lot in lots}
    titles_of_lots = {lot.id: lot.title for lot in lots}
    blind = not scoring_has_locked(tender)
    names = {}
    bids = []
    malformed = line_problems(tender)
    for row in sorted(opened_bids(tender), key=lambda r: r.line.bid_id):
        key = bidder_id(row.company)
        names[key] = row.company.name
        lot_id = row.line.lot_id if lots else None
        computed = by_id.get(lot_id, {}).get(key, {})
        flags = flags_by_lot.get(lot_id, {})
        evaluated = row.evaluated
        checks = _check_rows(tender, evaluated, blind)
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
                "lot": references.get(lot_id),
                "lot_title": titles_of_lots.get(lot_id),
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
                        "message": _commercial_reason(r, malformed.get(row.line.bid_id))
                        or reason_text(r["code"], r["params"], r.get("message", "")),
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
    template = template_of(tender)
    locale = current_locale()
    titles = {
        item["key"]: localized(item.get("title"), locale) or item["key"]
        for item in template.get("commercial_criteria") or []
    }
    for bid in bids:
        for criterion in bid["commercial_criteria"]:
            criterion["title"] = titles.get(criterion["key"], criterion["key"])
    description = price_method_text(template, locale)
    prices = {
        lot_id: _price_working(scored["result"], names, description)
        for lot_id, scored in scored_by_lot.items()
    }
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
        # A tender of several lots: the price working of each lot (and no tender-wide one).
        "price": None if lots else prices[None],
        "lots": [
            {"lot": lot.reference, "title": lot.title, "price": prices[lot.id]} for lot in lots
        ],
        "open_questions": {
            "anonymity": pending,
            # Bids with a manual check open; the anonymity questions are counted apart
            # (by bid, they would tell which bid a pending question is about).
            "checks": sum(
                1
                for missing in open_checks(tender).values()
                if set(missing) - {"technical_part_anonymous"}
            ),
            "low_price": len(
                open_low_price_questions(tender, None if lots else scored_by_lot[None])
            ),
        },
        "manual_checks": [{"check": c, "label": check_label(c)} for c in manual_checks(tender)],
    }


def anonymity_data(tender: Tender) -> dict:
    """The anonymity questions by technical code: hits with the identity masked; no names,
    no prices, no bid ids."""
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
                        "excerpt": masked_excerpt(hit, _("[name removed]")),
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


# --- charts --------------------------------------------------------------------------------


def spread_charts(
    data: PanelScores, pct: Decimal, labels: Mapping[str, str] | None = None
) -> list[tuple[str, Markup]]:
    """One spread chart per criterion; rows labelled by code (or `labels[code]`)."""
    out = []
    for c in data.criteria:
        rows = []
        for code in data.codes:
            scores = data.scores[code][c.key]
            rows.append(
                (
                    (labels or {}).get(code, code),
                    {e: Decimal(s.score) for e, s in scores.items()},
                    frozenset(e for e, s in scores.items() if s.outlier),
                )
            )
        svg = charts.score_spread_svg(
            rows,
            c.max_points,
            title=_(
                "Expert scores for %(criterion)s (max %(max)s)", criterion=c.title, max=c.max_points
            ),
            outlier_pct=pct,
            mean_label=_("panel mean"),
            outlier_label=_("outlier"),
            axis_label=_("Points"),
        )
        out.append((c.title, Markup(svg)))  # noqa: S704 - built by charts.py, text escaped
    return out


def price_chart(result: dict, names: Mapping[str, str]) -> Markup | None:
    """The compliant bids' prices with the benchmark (None when no price is valid)."""
    price = result.get("price") or {}
    if not price.get("valid_prices"):
        return None
    return Markup(  # noqa: S704 - built by charts.py, text escaped
        charts.price_chart_svg(
            [(names.get(p["bid"], p["bid"]), Decimal(p["price"])) for p in price["valid_prices"]],
            Decimal(price["benchmark"]) if price.get("benchmark") else None,
            title=_("Prices of the compliant bids"),
            benchmark_label=_("Benchmark"),
            price_label=_("Bid price"),
            axis_label=_("Price (%(currency)s)", currency=current_app.config["FAIRBID_CURRENCY"]),
            format_value=money,
        )
    )
