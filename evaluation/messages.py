"""Every human-readable message of the evaluation, in one table keyed by machine code.

The library reports compliance failures, flags, screens and outcomes as a ``code`` plus
``params`` (strings); the English text is rendered from this table.  The web app translates
by code (the params are the same in every language), so a new code needs a line here, and a
test checks that every code the library emits has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

MESSAGES: dict[str, str] = {
    # Compliance (per bid).
    "above_ceiling": "Price {price} is above the ceiling price {ceiling_price}.",
    "below_reserve": "Price {price} is below the reserve price {reserve_price}.",
    "price_missing": "The bid has no readable price.",
    "required_field_missing": "Required field '{field}' is missing.",
    "field_not_decimal": "Field '{field}' must be a decimal number; the bid has '{value}'.",
    "qualification_document_missing": "Qualification document '{document}' is missing.",
    "bid_bond_missing": "No bid bond was recorded; {required} is required.",
    "bid_bond_insufficient": "The bid bond {amount} is less than the required {required}.",
    "check_not_recorded": "Check '{check}' required by the tender was not recorded.",
    "check_failed": "Check '{check}' failed.",
    "check_failed_with_reason": "Check '{check}' failed: {reason}",
    "field_rule_failed": "Field '{field}' is '{value}'; the tender requires {op} {expected}.",
    "panel_overruled_compliant": (
        "The panel overruled the automatic verdict and found the bid compliant: {reason}"
    ),
    "panel_overruled_non_compliant": (
        "The panel overruled the automatic verdict and found the bid non-compliant: {reason}"
    ),
    "panel_confirmed": "The panel confirmed the automatic verdict: {reason}",
    # Flags on technical scores (per score or per sheet).
    "score_out_of_range": (
        "Expert {expert} gave {score} for '{criterion}' on bid {bid}, outside [0, {max_points}]."
    ),
    "score_not_multiple_of_step": (
        "Expert {expert} gave {score} for '{criterion}' on bid {bid}, "
        "not a multiple of the step {step}."
    ),
    "technical_sheet_missing": "Expert {expert} has no technical score sheet for bid {bid}.",
    "too_few_experts": (
        "Bid {bid} has {experts} technical score sheet(s); {aggregation} needs at least {required}."
    ),
    "extreme_score": (
        "Expert {expert} gave {score} for '{criterion}' on bid {bid}, the {end} of the scale: "
        "a written reason is required."
    ),
    "outlier_score": (
        "Expert {expert} gave {score} for '{criterion}' on bid {bid}, {distance} away from "
        "the panel mean {mean} (more than {threshold}): a written reason is required."
    ),
    # Flags on prices (per bid).
    "abnormally_low_vs_mean": (
        "Bid {bid} at {price} is {pct_below} % below the mean {mean_of_others} of the other "
        "compliant bids (threshold {threshold} %): the bidder must justify its price."
    ),
    "abnormally_low_vs_next": (
        "Bid {bid} at {price} is {pct_below} % below the next lowest compliant price "
        "{next_price} (threshold {threshold} %): the bidder must justify its price."
    ),
    # Ties.
    "tie_needs_draw": (
        "Bids {bids} are tied at rank {rank} after the price and technical tie-breaks: "
        "a lot draw must be recorded."
    ),
    # Tender outcome.
    "ranked": "{compliant} compliant bid(s) ranked; recommended candidates: {candidates}.",
    "needs_draw": (
        "A tie among the recommended candidates needs a recorded lot draw before the "
        "candidates can be proposed."
    ),
    "too_few_bids": (
        "{received} bid(s) received, fewer than the {min_bids} required: the bids are not "
        "opened and the tender fails."
    ),
    "no_compliant_bid": "No bid passed the compliance review: the tender fails.",
    "invalid_scores": (
        "{errors} error(s) in the technical scores: no ranking until they are corrected."
    ),
    # Red flags for supervisors (evaluation.screens, evaluation.sources, evaluation.market).
    "single_bid": "Only one bid was received.",
    "low_price_variation": (
        "The coefficient of variation of the {n} prices is {value}, below {threshold}: "
        "the prices are suspiciously close."
    ),
    "identical_prices": "Bids {bids} have the identical price {price}.",
    "equal_price_spacing": (
        "The {n} prices are equally spaced, {gap} apart (tolerance {tolerance}): "
        "a possible sign of coordinated bids."
    ),
    "high_relative_distance": (
        "The gap between the two lowest of the {n} prices is {value} standard deviations of "
        "the losing bids, above {threshold}: the losing bids may be cover bids."
    ),
    "high_kurtosis": "The excess kurtosis of the {n} prices is {value}, above {threshold}.",
    "negative_skewness": "The skewness of the {n} prices is {value}, below {threshold}.",
    "high_diffp": (
        "The second lowest of the {n} prices is {value} (relative) above the lowest, more "
        "than {threshold}."
    ),
    "high_rdnor": (
        "The normalised relative distance of the {n} prices is {value}, above {threshold}."
    ),
    "close_margin_outlier": (
        "The margin {margin} between the two lowest prices is a low outlier among "
        "{comparable} comparable competitions (Q1 {q1}, Q3 {q3})."
    ),
    "heavily_undercut_outlier": (
        "The margin {margin} between the two lowest prices is a high outlier among "
        "{comparable} comparable competitions (Q1 {q1}, Q3 {q3})."
    ),
    "bids_near_ceiling": (
        "{count} of the {n} bids ({bids}) lie just under the ceiling {ceiling} (from {floor})."
    ),
    "round_number_clustering": (
        "{count} of the {n} bids ({bids}) are round numbers of at most {digits} significant digits."
    ),
    "identical_technical_files": "Bids {bids} submitted the identical technical file.",
    "similar_technical_texts": (
        "The technical texts of bids {bids} are {similarity} similar (threshold {threshold})."
    ),
    "same_pdf_author": "The technical files of bids {bids} name the same author.",
    "same_pdf_software": (
        "The technical files of bids {bids} come from the same creator and producer software."
    ),
    "same_submission_address": "Bids {bids} were uploaded from the same network address.",
    "same_submission_device": (
        "Bids {bids} were uploaded from the same network address and the same browser."
    ),
    "cover_bidding": (
        "Company {company} lost {losses} times to company {winner} in {tenders} tenders "
        "they both bid in, and never won."
    ),
    "winner_rotation": (
        "Companies {companies} bid together in {tenders} tenders and took turns winning them."
    ),
    "single_bid_share": (
        "{single} of the {tenders} opened tenders of {subject} received a single bid "
        "(share {share}, threshold {threshold})."
    ),
    "expert_repeated_entity": (
        "Expert {expert} sat on {count} of the last {panels} panels of procuring entity "
        "{entity} (threshold {threshold})."
    ),
    "expert_score_deviation": (
        "Expert {expert}'s marks differ from the panel's median by {mean_deviation} of the "
        "maximum points on average over {sheets} marks, always in the same direction "
        "(threshold {threshold})."
    ),
}


def render(code: str, params: Mapping[str, str]) -> str:
    """The English message for ``code`` with ``params`` filled in."""
    return MESSAGES[code].format(**params)


class Severity(StrEnum):
    ERROR = "error"  # the input is wrong: no ranking until it is corrected
    REASON_REQUIRED = "reason_required"  # its author must add a written reason
    WARNING = "warning"  # for the panel's attention (e.g. an abnormally low price)


@dataclass(frozen=True)
class Reason:
    """Why a bid failed compliance (or how the panel overruled the verdict)."""

    code: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return render(self.code, self.params)

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "params": dict(self.params), "message": self.message}


@dataclass(frozen=True)
class Flag:
    """Something the panel, an expert or a supervisor must look at.

    ``params`` holds ``bid`` (and ``expert``, ``criterion`` where they apply) so the app can
    route the flag; ``reason`` is the written reason already recorded, if any.
    """

    code: str
    severity: Severity
    params: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None

    @property
    def message(self) -> str:
        return render(self.code, self.params)

    def sort_key(self) -> tuple[str, ...]:
        p = self.params
        return (p.get("bid", ""), p.get("expert", ""), p.get("criterion", ""), self.code)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "code": self.code,
            "severity": str(self.severity),
            "params": dict(self.params),
            "message": self.message,
        }
        if self.severity is Severity.REASON_REQUIRED:
            out["reason"] = self.reason
        return out
