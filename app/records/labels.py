"""How the evaluation record reads: the scoring file's codes (methods, outcomes, flags) and
the database's statuses as translated words, and numbers as people read them (scores to
the two places they are defined with, money with its currency and separators, percentages).

The scoring file keeps the exact values: the record shows them rounded for reading, and
`python -m evaluation verify` recomputes from the attached file.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_currency
from flask import current_app
from flask_babel import format_decimal, get_locale, lazy_pgettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.evaluations.presentation import check_label, reason_text
from app.evaluations.scoring_file import COMMERCIAL_CHECK
from app.opening.problems import problems_text
from app.panels.forms import SEAT_LABELS
from app.tenders.labels import LOT_AWARD_RULE_LABELS

# Scores and points are defined to two decimal places (evaluation.rounding: each score is
# rounded once, half up); means and deviations are shown at the same precision.
SCORE_PLACES = Decimal("0.01")

DIRECTION_LABELS = {
    "lowest_wins": _l("Lowest price wins (procurement)"),
    "highest_wins": _l("Highest price wins (sale of assets)"),
}
CATEGORY_LABELS = {
    "goods": _l("Goods"),
    "works": _l("Works"),
    "services": _l("Services"),
    "asset_sale": _l("Sale of assets and land-use rights"),
}
PRICE_METHOD_LABELS = {
    "lowest_price_benchmark": _l("Lowest-price benchmark"),
    "average_benchmark": _l("Average benchmark"),
    "highest_price": _l("Highest price"),
    "lowest_evaluated_price": _l("Lowest evaluated price"),
}
# Short words in a context of their own ("evaluation record"), so that they never clash
# with the same English word translated elsewhere.
_CONTEXT = "evaluation record"
POSITION_LABELS = {
    "highest": lazy_pgettext(_CONTEXT, "highest"),
    "lowest": lazy_pgettext(_CONTEXT, "lowest"),
}
LINE_STATUS_LABELS = {
    "opened": lazy_pgettext(_CONTEXT, "opened"),
    "revoked": lazy_pgettext(_CONTEXT, "rejected at opening"),
    "withdrawn": lazy_pgettext(_CONTEXT, "withdrawn"),
}
MEMBER_STATUS_LABELS = {
    "invited": lazy_pgettext(_CONTEXT, "invited"),
    "accepted": lazy_pgettext(_CONTEXT, "accepted"),
    "declined": lazy_pgettext(_CONTEXT, "declined"),
    "removed": lazy_pgettext(_CONTEXT, "removed"),
}
OUTCOME_TEXTS = {
    "ranked": _l("%(compliant)s compliant bid(s) ranked; recommended candidates: %(candidates)s."),
    "needs_draw": _l(
        "A tie among the recommended candidates needs a recorded lot draw before the "
        "candidates can be proposed."
    ),
    "too_few_bids": _l(
        "%(received)s bid(s) received, fewer than the %(min_bids)s required: the bids are not "
        "opened and the tender fails."
    ),
    "no_compliant_bid": _l("No bid passed the compliance review: the tender fails."),
    "invalid_scores": _l(
        "%(errors)s error(s) in the technical scores: no ranking until they are corrected."
    ),
}
FLAG_TEXTS = {
    "score_out_of_range": _l(
        "Expert %(expert)s gave %(score)s for '%(criterion)s' on bid %(bid)s, outside "
        "[0, %(max_points)s]."
    ),
    "score_not_multiple_of_step": _l(
        "Expert %(expert)s gave %(score)s for '%(criterion)s' on bid %(bid)s, not a multiple "
        "of the step %(step)s."
    ),
    "technical_sheet_missing": _l(
        "Expert %(expert)s has no technical score sheet for bid %(bid)s."
    ),
    "extreme_score": _l(
        "Expert %(expert)s gave %(score)s for '%(criterion)s' on bid %(bid)s, at an end of the "
        "scale: a written reason is required."
    ),
    "outlier_score": _l(
        "Expert %(expert)s gave %(score)s for '%(criterion)s' on bid %(bid)s, %(distance)s away "
        "from the panel mean %(mean)s (more than %(threshold)s): a written reason is required."
    ),
    "tie_needs_draw": _l(
        "Bids %(bids)s are tied at rank %(rank)s after the price and technical tie-breaks: a "
        "lot draw must be recorded."
    ),
    "single_bid": _l("Only one bid was received."),
    "identical_prices": _l("Bids %(bids)s have the identical price %(price)s."),
}
# Parameters of reasons and flags that are amounts of money.
MONEY_PARAMS = frozenset(
    {
        "price",
        "ceiling_price",
        "reserve_price",
        "amount",
        "required",
        "mean_of_others",
        "next_price",
    }
)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def score(value: Any) -> str:
    """A score, a mean or points, at two decimal places in the reader's locale."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    return format_decimal(number.quantize(SCORE_PLACES, rounding=ROUND_HALF_UP), "#,##0.00")


def points(value: Any) -> str:
    """Maximum points and steps as defined (30, 0.5): no trailing zeros added."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    return format_decimal(number, "#,##0.########")


def percent(value: Any) -> str:
    """A deviation in percent, two places, signed."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    shown = number.quantize(SCORE_PLACES, rounding=ROUND_HALF_UP)
    return format_decimal(shown, "+#,##0.00;-#,##0.00") + " %"


def money(value: Any, *, exact: bool = False) -> str:
    """An amount with the platform's currency and the locale's separators; `exact` keeps
    every decimal the scoring file has (a benchmark of 920674.306)."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    return format_currency(
        number,
        current_app.config["FAIRBID_CURRENCY"],
        locale=get_locale(),
        decimal_quantization=not exact,
    )


def label(labels: Mapping[str, Any], code: Any) -> str:
    """The translated word for `code`; an unknown code as words, never as an identifier."""
    if code is None or code == "":
        return ""
    text = labels.get(str(code))
    return str(text) if text is not None else str(code).replace("_", " ")


def seat_label(seat: str) -> str:
    return label(SEAT_LABELS, seat) if seat else ""


def _shown_params(
    params: Mapping[str, Any], names: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """Amounts as money; documents and fields by the names the template gives them."""
    names = names or {}
    shown = {}
    for key, value in (params or {}).items():
        if key in MONEY_PARAMS and _decimal(value) is not None:
            value = money(value)
        elif key == "document":
            value = names.get("documents", {}).get(value, value)
        elif key == "field":
            value = names.get("fields", {}).get(value, value)
        shown[key] = value
    return shown


def reason(
    entry: Mapping[str, Any],
    names: Mapping[str, Mapping[str, str]] | None = None,
    problems: list | None = None,
) -> str:
    """A compliance reason or price flag of the scoring file in the reader's language, as
    the ranking page shows it (`app.evaluations.presentation.reason_text`), its amounts in
    money and its documents and fields by name (`names`: see `content._template_names`);
    a malformed commercial part by its problems as the opening recorded them (`problems`)."""
    code = entry.get("code") or ""
    params = _shown_params(entry.get("params") or {}, names)
    if problems and params.get("check") == COMMERCIAL_CHECK:
        return _(
            "Check '%(check)s' failed: %(reason)s",
            check=check_label(COMMERCIAL_CHECK),
            reason=problems_text(problems),
        )
    return reason_text(code, params, entry.get("message") or "")


# The opening's own reasons for a withdrawn line (app.opening.operations), in words.
OPENING_REASONS = {
    "the stored envelope differs from the receipted one": _l(
        "the stored envelope differs from the receipted one"
    ),
    "the stored envelope is missing or unreadable": _l(
        "the stored envelope is missing or unreadable"
    ),
}


def opening_reason(text: str, problems: list | None = None) -> str:
    """An opening line's reason in the reader's language (a malformed commercial part by
    its problems; other technical reasons as recorded)."""
    if problems:
        return problems_text(problems)
    translated = OPENING_REASONS.get(text or "")
    return str(translated) if translated is not None else (text or "")


def _translated(
    texts: Mapping[str, Any],
    entry: Mapping[str, Any],
    criteria: Mapping[str, str] | None = None,
) -> str | None:
    text = texts.get(entry.get("code") or "")
    if text is None:
        return None
    params = _shown_params(entry.get("params") or {})
    for key in ("score", "max_points", "step", "distance", "mean", "threshold"):
        if key in params:
            params[key] = points(params[key])
    if "criterion" in params:
        params["criterion"] = (criteria or {}).get(params["criterion"], params["criterion"])
    try:
        return str(text) % params
    except (KeyError, TypeError, ValueError):
        return None


def flag(entry: Mapping[str, Any] | str, criteria: Mapping[str, str] | None = None) -> str:
    """A flag of the scoring file (technical scores, prices, ties) in the reader's language;
    `criteria` names the criteria (key -> "C1 Title")."""
    if not isinstance(entry, Mapping):
        return str(entry)
    text = _translated(FLAG_TEXTS, entry, criteria)
    if text is not None:
        return text
    if entry.get("code") in ("abnormally_low_vs_mean", "abnormally_low_vs_next"):
        return reason(entry)
    return entry.get("message") or label({}, entry.get("code"))


def outcome(entry: Mapping[str, Any]) -> str:
    """The tender's outcome sentence in the reader's language."""
    text = _translated(OUTCOME_TEXTS, entry)
    return text if text is not None else (entry.get("message") or "")


# The record of a tender divided into lots (templates/pdf/_record_lots.html).
TIE_KEY_LABELS = {
    "total": _l("the total score"),
    "evaluated_price": _l("the evaluated price"),
    "price": _l("the price"),
    "technical": _l("the technical score"),
    "draw": _l("the lot draw"),
}
AWARD_SEARCH_LABELS = {
    "flow": _l("exact (minimum-cost flow)"),
    "states": _l("exact search over the limit-consistent awards"),
}


def tie_breaks(keys: Any) -> str:
    """The tie-breaks that separated level bids, in the reader's language."""
    return ", ".join(label(TIE_KEY_LABELS, key) for key in keys or [])


def helpers() -> dict[str, Any]:
    """What the record template formats with."""
    return {
        "fmt_score": score,
        "fmt_points": points,
        "fmt_percent": percent,
        "fmt_money": money,
        "fmt_reason": reason,
        "fmt_flag": flag,
        "fmt_outcome": outcome,
        "fmt_seat": seat_label,
        "fmt_label": label,
        "DIRECTION_LABELS": DIRECTION_LABELS,
        "CATEGORY_LABELS": CATEGORY_LABELS,
        "PRICE_METHOD_LABELS": PRICE_METHOD_LABELS,
        "POSITION_LABELS": POSITION_LABELS,
        "LINE_STATUS_LABELS": LINE_STATUS_LABELS,
        "MEMBER_STATUS_LABELS": MEMBER_STATUS_LABELS,
        "fmt_tie_breaks": tie_breaks,
        "TIE_KEY_LABELS": TIE_KEY_LABELS,
        "AWARD_SEARCH_LABELS": AWARD_SEARCH_LABELS,
        "LOT_AWARD_RULE_LABELS": LOT_AWARD_RULE_LABELS,
    }
