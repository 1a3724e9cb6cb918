"""The tender's scoring file: its input built from the database, scored by the pure
`evaluation` library, and stored on the `Evaluation`.

`scoring_document(tender, technical, technical_reasons)` is the INPUT part of the file (the
template through `to_scoring_config`, plus one bid per OPENED opening line, keyed by
`bidder_id(company)`). `compute` scores the review file (no technical scores),
`provisional` the same with every open check assumed passed, `score_final` the complete file
from the panel's locked sheets. Nothing here checks access or audits: callers do.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import select

import evaluation as evaluation_lib
from app.bids.operations import bidder_id
from app.companies.models import Company
from app.custody.operations import envelope_tender_id
from app.evaluations.models import Evaluation, ScoreSheet
from app.extensions import db
from app.opening.models import AnonymityDecision, EvaluatedBid, LineStatus, OpeningLine
from app.panels.models import PanelMember
from app.tender_templates import to_scoring_config
from app.tender_templates.rendering import localized
from app.tenders.models import BondRecord, Lot, Tender, TenderRegistration
from app.tenders.operations import current_locale, template_json, template_of
from evaluation.lots import (
    LOTS_FORMAT,
    AwardInput,
    AwardRule,
    award_lots,
    award_to_json,
    lot_ranking_of,
)
from evaluation.model import TechnicalCriterion

AUTOMATIC_CHECKS = ("signed_and_sealed", "technical_part_anonymous", "commercial_part_valid")
# Failed by the opening when the commercial part broke the tender's form (the line's reason).
COMMERCIAL_CHECK = "commercial_part_valid"
DEFAULT_OUTLIER_PCT = Decimal(30)
_FIELD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", re.ASCII)


# --- the template --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _scoring_config(yaml_text: str, values_json: str) -> str:
    template = json.loads(template_json(yaml_text))
    return json.dumps(to_scoring_config(template, json.loads(values_json)))


def technical_criteria(tender: Tender) -> list[dict]:
    """The template's technical criteria: key, max_points and step (Decimal), title."""
    locale = current_locale()
    return [
        {
            "key": item["key"],
            "max_points": Decimal(str(item["max_points"])),
            "step": Decimal(str(item["step"])),
            "title": localized(item.get("title"), locale) or item["key"],
        }
        for item in template_of(tender).get("technical_criteria") or []
    ]


@dataclass(frozen=True)
class Criterion:
    """A technical criterion as the score sheets show it."""

    key: str
    title: str
    max_points: Decimal
    step: Decimal

    def technical(self) -> TechnicalCriterion:
        return TechnicalCriterion(self.key, self.max_points, self.step)


def criteria_of(tender: Tender) -> list[Criterion]:
    return [
        Criterion(c["key"], c.get("title") or c["key"], c["max_points"], c["step"])
        for c in technical_criteria(tender)
    ]


def required_checks(tender: Tender) -> list[str]:
    """The template's compliance checks (the scoring file's `required_checks`)."""
    return list(_config(tender).get("compliance_rules", {}).get("required_checks", []))


def manual_checks(tender: Tender) -> list[str]:
    """Required checks the chair records (the automatic ones and technical pass marks,
    recorded by blind scoring, excluded)."""
    return [
        check
        for check in required_checks(tender)
        if check not in AUTOMATIC_CHECKS and not check.startswith("technical_pass_")
    ]


def qualification_keys(tender: Tender) -> list[str]:
    return [item["key"] for item in template_of(tender).get("qualification_documents") or []]


def outlier_pct_of(tender: Tender) -> Decimal:
    """The template's `technical_outlier_pct` when it sets one, else 30 %."""
    value = _config(tender).get("technical_outlier_pct")
    return Decimal(str(value)) if value is not None else DEFAULT_OUTLIER_PCT


# --- the input -----------------------------------------------------------------------------


def expert_id(member: PanelMember) -> str:
    """The expert's id in the scoring file: E and the seat number."""
    return f"E{member.position}"


def _lot(tender: Tender) -> Lot | None:
    return min(tender.lots, key=lambda lot: lot.number) if tender.lots else None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value), "f")


def several_lots(tender: Tender) -> list[Lot]:
    """The tender's lots in order when it is divided into several (else empty: a tender of
    one lot is scored as one file, as it always was). A lot an addendum cancelled is no
    competition: it is left out (its envelopes were never opened)."""
    if len(tender.lots) <= 1:
        return []
    return sorted((lot for lot in tender.lots if not lot.is_cancelled), key=lambda lot: lot.number)


def _config(tender: Tender, one_of_several: Lot | None = None) -> dict:
    lot = one_of_several or _lot(tender)
    values: dict[str, Any] = {
        "tender": {
            "id": envelope_tender_id(tender),
            "reference": tender.reference,
            "title": tender.title,
        }
    }
    if lot is not None:
        values["tender"]["lot"] = lot.reference  # what the lot's envelopes name it by
    if tender.direction == "highest_wins":
        values["reserve_price"] = _money(lot.reserve_price if lot else None)
    else:
        values["ceiling_price"] = _money(lot.ceiling_price if lot else None)
    # One lot of several: its own bond when it has one (a lone lot keeps the tender's).
    own_bond = one_of_several.bid_bond_amount if one_of_several is not None else None
    values["bid_bond"] = _money(own_bond or tender.bid_bond_amount)
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
        # The opening kept only well-formed fields; a name the scoring file cannot carry
        # never reaches it.
        if key == "price" or not _FIELD_KEY.fullmatch(key):
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


def _compliance(evaluated: EvaluatedBid | None, line: OpeningLine | None = None) -> dict:
    checks: dict[str, bool | str] = {"signed_and_sealed": True}
    if line is not None and line.reason:
        checks[COMMERCIAL_CHECK] = line.reason[:10000]
    anonymous = anonymity_check(evaluated)
    if anonymous is not None:
        checks["technical_part_anonymous"] = anonymous
    for name, record in ((evaluated.checks if evaluated else None) or {}).items():
        if name in AUTOMATIC_CHECKS:
            continue
        checks[name] = True if record.get("passed") else (record.get("reason") or False)
    return checks


@dataclass(frozen=True)
class OpenedBid:
    """An opened line of the tender with its company and (once made) its evaluated bid."""

    line: OpeningLine
    company: Company
    evaluated: EvaluatedBid | None


def opened_bids(tender: Tender, lot: Lot | None = None) -> list[OpenedBid]:
    """The tender's OPENED lines (only `lot`'s when given), by the company's registration
    number."""
    query = (
        select(OpeningLine, Company, EvaluatedBid)
        .join(Company, Company.id == OpeningLine.company_id)
        .outerjoin(EvaluatedBid, EvaluatedBid.bid_id == OpeningLine.bid_id)
        .where(OpeningLine.tender_id == tender.id, OpeningLine.status == LineStatus.OPENED)
        .order_by(Company.registration_number)
    )
    if lot is not None:
        query = query.where(OpeningLine.lot_id == lot.id)
    rows = db.session.execute(query).all()
    return [OpenedBid(line, company, evaluated) for line, company, evaluated in rows]


def scoring_document(
    tender: Tender,
    technical: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
    technical_reasons: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
    lot: Lot | None = None,
) -> dict:
    """The input part of the tender's scoring file (of `lot`'s file when given: that lot's
    reference, ceiling or reserve, bond and opened lines only). `technical` /
    `technical_reasons` map `EvaluatedBid.id` → expert id ("E<seat>") → criterion → score /
    reason."""
    document = _config(tender, lot)
    keys = qualification_keys(tender)
    pass_marks = {
        item["key"]: Decimal(str(item["pass_mark"]))
        for item in template_of(tender).get("technical_criteria") or []
        if item.get("pass_mark") is not None
    }
    bids = []
    for row in opened_bids(tender, lot):
        bid: dict[str, Any] = {
            "id": bidder_id(row.company),
            "fields": _fields(row.line),
            "documents": _documents(keys, row.evaluated),
            "compliance": _compliance(row.evaluated, row.line),
        }
        if row.line.price is not None:
            bid["price"] = row.line.price
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


# --- scoring and storing -------------------------------------------------------------------


def compute(tender: Tender) -> dict:
    """The scored review file: compliance, price and commercial scores (no technical)."""
    return evaluation_lib.score(scoring_document(tender))


def provisional(tender: Tender, lot: Lot | None = None) -> dict:
    """The review computation (of `lot`'s file when given) with every OPEN check
    (unrecorded check, undecided anonymity question) assumed passed, so that the panel sees
    price and commercial scores and abnormally-low flags while it still records checks.
    Never stored."""
    document = scoring_document(tender, lot=lot)
    for check in required_checks(tender):
        for bid in document["bids"]:
            bid["compliance"].setdefault(check, True)
    return evaluation_lib.score(document)


def store(evaluation: Evaluation, scored: dict) -> str:
    """Keep the scored review file on the evaluation; its input hash."""
    evaluation.scoring_json = evaluation_lib.dumps(scored)
    evaluation.scoring_sha256 = scored["result"]["input_sha256"]
    return evaluation.scoring_sha256


def store_review(tender: Tender, evaluation: Evaluation) -> str:
    """Score the review file(s) and store them; the stored input hash. A tender of one lot:
    its one file (`compute`, `store`). A tender of several lots: one file per lot and the
    cross-lot award in `lots_json` (no whole-tender file: a company bidding for several lots
    has one bid in each)."""
    document = lots_document(tender)
    if document is None:
        return store(evaluation, compute(tender))
    return _keep_lots(evaluation, document)


# --- a tender of several lots --------------------------------------------------------------


def score_lots(
    tender: Tender,
    technical: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
    technical_reasons: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
) -> list[tuple[Lot, dict]]:
    """Each lot's scored file, in lot order (empty for a tender of one lot)."""
    return [
        (lot, evaluation_lib.score(scoring_document(tender, technical, technical_reasons, lot)))
        for lot in several_lots(tender)
    ]


def award_document(tender: Tender, scored_lots: Sequence[tuple[Lot, Mapping]]) -> dict:
    """The cross-lot award step (format `fairbid-lot-award/1`: input, result and trace),
    from each lot's ranking, the tender's limit and rule."""
    rankings = tuple(lot_ranking_of(lot.reference, scored) for lot, scored in scored_lots)
    rule = AwardRule(tender.lot_award_rule)
    award = award_lots(rankings, tender.max_lots_won, rule)
    return award_to_json(AwardInput(rankings, tender.max_lots_won, rule), award)


def lots_document(
    tender: Tender,
    technical: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
    technical_reasons: Mapping[int, Mapping[str, Mapping[str, str]]] | None = None,
) -> dict | None:
    """`Evaluation.lots_json` of a tender of several lots (None for one lot): every lot's
    scored file and the cross-lot award, with `input_sha256` over the lots' input hashes,
    the limit and the rule."""
    scored_lots = score_lots(tender, technical, technical_reasons)
    if not scored_lots:
        return None
    inputs = {
        "lots": [[lot.reference, scored["result"]["input_sha256"]] for lot, scored in scored_lots],
        "limit": tender.max_lots_won,
        "rule": tender.lot_award_rule,
    }
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return {
        "format": LOTS_FORMAT,
        "input_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "lots": [{"lot": lot.reference, "scoring_file": scored} for lot, scored in scored_lots],
        "award": award_document(tender, scored_lots),
    }


def _keep_lots(evaluation: Evaluation, document: dict) -> str:
    evaluation.lots_json = evaluation_lib.dumps(document)
    evaluation.scoring_json = None
    evaluation.scoring_sha256 = document["input_sha256"]
    return evaluation.scoring_sha256


def stored_lots(evaluation: Evaluation | None) -> dict | None:
    """The stored per-lot files and award (None for a tender of one lot)."""
    if evaluation is None or not evaluation.lots_json:
        return None
    return json.loads(evaluation.lots_json)


def _reason_text(score: Any) -> str:
    parts = [p for p in (score.reason.strip(), score.outlier_reason.strip()) if p]
    return " / ".join(parts)


def store_final_result(
    tender: Tender, evaluation: Evaluation, sheets: Sequence[tuple[PanelMember, ScoreSheet]]
) -> dict:
    """Score the complete file (every counted sheet of the panel) and store it."""
    technical: dict[int, dict[str, dict[str, str]]] = {}
    reasons: dict[int, dict[str, dict[str, str]]] = {}
    for member, sheet in sheets:
        expert = expert_id(member)
        for s in sheet.scores:
            technical.setdefault(s.evaluated_bid_id, {}).setdefault(expert, {})[s.criterion] = (
                s.score
            )
            text = _reason_text(s)
            if text:
                reasons.setdefault(s.evaluated_bid_id, {}).setdefault(expert, {})[s.criterion] = (
                    text
                )
    lots = lots_document(tender, technical, reasons)
    if lots is not None:  # several lots: `lots_json` (see `store_review`)
        _keep_lots(evaluation, lots)
        return lots
    document = scoring_document(tender, technical=technical, technical_reasons=reasons)
    scored = evaluation_lib.score(document)
    evaluation.scoring_json = evaluation_lib.dumps(scored)
    evaluation.scoring_sha256 = evaluation_lib.input_sha256(scored)
    return scored


def stored_result(evaluation: Evaluation | None) -> dict | None:
    """The stored scored file (None before the evaluation started)."""
    if evaluation is None or not evaluation.scoring_json:
        return None
    return evaluation_lib.parse_json(evaluation.scoring_json)
