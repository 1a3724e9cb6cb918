"""The whole evaluation of one competition (a lot): compliance, prices, commercial and
technical scores, flags, ranking and the tender's outcome, from a ``Tender``.

``evaluate`` works on the dataclasses of ``evaluation.model``; ``result_to_json`` turns its
``Evaluation`` into the ``result`` part of a scoring file (decimal strings throughout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from evaluation.compliance import ComplianceVerdict, check_bids
from evaluation.criteria import CommercialScore, score_commercial
from evaluation.decimals import ZERO, evaluation_context, fmt
from evaluation.messages import Flag, Severity, render
from evaluation.model import Direction, PriceMethod, Tender
from evaluation.price import PriceEvaluation, abnormally_low_flags, score_prices
from evaluation.ranking import Contender, Ranking, rank_bids
from evaluation.technical import (
    TechnicalScore,
    aggregate,
    applied_method,
    minimum_experts,
    reason_flags,
    score_errors,
)

ENGINE = "fairbid-evaluation/1"


@dataclass(frozen=True)
class BidResult:
    bid_id: str
    price: Decimal | None
    compliance: ComplianceVerdict
    price_score: Decimal | None = None
    evaluated_price: Decimal | None = None
    commercial: CommercialScore | None = None
    technical: TechnicalScore | None = None
    total: Decimal | None = None
    rank: int | None = None


@dataclass(frozen=True)
class Outcome:
    """``ranked``, ``needs_draw`` (a tie among the candidates), ``failed`` or ``invalid``."""

    status: str
    code: str
    params: Mapping[str, str] = field(default_factory=dict)
    candidates: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return render(self.code, self.params)


@dataclass(frozen=True)
class Evaluation:
    outcome: Outcome
    bids_received: int
    bids: tuple[BidResult, ...] = ()
    price: PriceEvaluation | None = None
    panel: tuple[str, ...] = ()
    ranking: Ranking | None = None
    flags: tuple[Flag, ...] = ()


def evaluate(tender: Tender) -> Evaluation:
    """Evaluate one competition.  Pure: the same tender always gives the same evaluation."""
    received = len(tender.bids)
    if received < tender.min_bids:
        return Evaluation(
            Outcome(
                "failed",
                "too_few_bids",
                {"received": str(received), "min_bids": str(tender.min_bids)},
            ),
            received,
        )
    verdicts = check_bids(tender)
    compliant = [b for b in tender.bids if verdicts[b.id].compliant]
    if not compliant:
        results = tuple(BidResult(b.id, b.price, verdicts[b.id]) for b in tender.bids)
        return Evaluation(Outcome("failed", "no_compliant_bid"), received, results)

    flags: list[Flag] = []
    lep = tender.price.method is PriceMethod.LOWEST_EVALUATED_PRICE
    prices = score_prices(
        tender.price,
        {b.id: b.price for b in compliant},
        {b.id: b.adjustments for b in compliant},
    )
    if tender.direction is Direction.LOWEST_WINS:
        flags += abnormally_low_flags({b.id: b.price for b in compliant}, tender.abnormally_low)

    criteria = tender.technical_criteria
    for bid in tender.bids:
        flags += score_errors(bid.id, bid.technical, criteria)
    panel = sorted({e for b in compliant for e in b.technical}) if criteria else []
    technical: dict[str, TechnicalScore | None] = {}
    for bid in compliant:
        missing = [e for e in panel if e not in bid.technical]
        flags += [
            Flag("technical_sheet_missing", Severity.ERROR, {"bid": bid.id, "expert": e})
            for e in missing
        ]
        method = applied_method(tender.aggregation, len(bid.technical))
        if criteria and len(bid.technical) < minimum_experts(method):
            flags.append(
                Flag(
                    "too_few_experts",
                    Severity.ERROR,
                    {
                        "bid": bid.id,
                        "experts": str(len(bid.technical)),
                        "aggregation": str(method),
                        "required": str(minimum_experts(method)),
                    },
                )
            )
            technical[bid.id] = None
            continue
        technical[bid.id] = aggregate(bid.technical, criteria, tender.aggregation)
        flags += reason_flags(
            bid.id, bid.technical, criteria, tender.technical_outlier_pct, bid.technical_reasons
        )

    commercial = {b.id: score_commercial(tender.commercial_criteria, b.fields) for b in compliant}
    totals: dict[str, Decimal | None] = {}
    for bid in compliant:
        tech = technical[bid.id]
        priced = prices.by_bid[bid.id]
        if lep or tech is None or priced.score is None:
            totals[bid.id] = None
            continue
        with evaluation_context():
            totals[bid.id] = priced.score + commercial[bid.id].total + tech.total

    flags.sort(key=Flag.sort_key)
    errors = sum(1 for f in flags if f.severity is Severity.ERROR)
    ranking = None
    if errors:
        outcome = Outcome("invalid", "invalid_scores", {"errors": str(errors)})
    else:
        ranking = rank_bids(
            [
                Contender(
                    bid_id=b.id,
                    price=b.price,
                    technical=_technical_total(technical[b.id]),
                    total=totals[b.id],
                    evaluated_price=prices.by_bid[b.id].evaluated_price,
                    draw=b.draw,
                )
                for b in compliant
            ],
            tender.direction,
            by_evaluated_price=lep,
        )
        if ranking.needs_draw:
            outcome = Outcome("needs_draw", "needs_draw")
        else:
            outcome = Outcome(
                "ranked",
                "ranked",
                {"compliant": str(len(compliant)), "candidates": ", ".join(ranking.candidates)},
                ranking.candidates,
            )

    results = []
    for bid in tender.bids:
        verdict = verdicts[bid.id]
        if not verdict.compliant:
            results.append(BidResult(bid.id, bid.price, verdict))
            continue
        priced = prices.by_bid[bid.id]
        results.append(
            BidResult(
                bid.id,
                bid.price,
                verdict,
                price_score=priced.score,
                evaluated_price=priced.evaluated_price,
                commercial=commercial[bid.id],
                technical=technical[bid.id],
                total=totals[bid.id],
                rank=ranking.ranks[bid.id] if ranking else None,
            )
        )
    return Evaluation(
        outcome, received, tuple(results), prices, tuple(panel), ranking, tuple(flags)
    )


def _technical_total(score: TechnicalScore | None) -> Decimal:
    return ZERO if score is None else score.total


# --- JSON ---------------------------------------------------------------------------------


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def result_to_json(evaluation: Evaluation) -> dict[str, Any]:
    """The ``result`` part of a scoring file (without ``engine`` and ``input_sha256``)."""
    outcome = evaluation.outcome
    out: dict[str, Any] = {
        "outcome": {
            "status": outcome.status,
            "code": outcome.code,
            "params": dict(outcome.params),
            "message": outcome.message,
            "candidates": list(outcome.candidates),
        },
        "bids_received": evaluation.bids_received,
        "compliant_bids": sum(1 for b in evaluation.bids if b.compliance.compliant),
        "panel": list(evaluation.panel),
        "price": _price_json(evaluation.price) if evaluation.price else None,
        "bids": [_bid_json(b) for b in evaluation.bids],
        "ranking": _ranking_json(evaluation.ranking),
        "ties": _ties_json(evaluation.ranking),
        "flags": [f.to_json() for f in evaluation.flags],
    }
    return out


def _price_json(price: PriceEvaluation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": str(price.method),
        "max_points": fmt(price.max_points),
        "valid_prices": [{"bid": b, "price": fmt(p)} for b, p in price.valid_prices],
        "benchmark": _opt(price.benchmark),
    }
    if price.method is PriceMethod.AVERAGE_BENCHMARK and price.params is not None:
        params = price.params
        out.update(
            {
                "params": {
                    "drop_highest_from": params.drop_highest_from,
                    "drop_lowest_from": params.drop_lowest_from,
                    "k": fmt(params.k),
                    "above_per_pct": fmt(params.above_per_pct),
                    "below_per_pct": fmt(params.below_per_pct),
                },
                "n_valid": len(price.valid_prices),
                "dropped": [
                    {"bid": d.bid_id, "price": fmt(d.price), "position": d.position}
                    for d in price.dropped
                ],
                "used_prices": [fmt(p) for p in price.used_prices],
                "n_used": len(price.used_prices),
                "sum": _opt(price.total),
                "mean": _opt(price.mean),
            }
        )
    bids = []
    for b in price.bids:
        if price.method is PriceMethod.LOWEST_EVALUATED_PRICE:
            bids.append(
                {
                    "bid": b.bid_id,
                    "price": fmt(b.price),
                    "adjustments": _opt(b.adjustments),
                    "evaluated_price": _opt(b.evaluated_price),
                }
            )
            continue
        entry = {"bid": b.bid_id, "price": fmt(b.price)}
        if price.method is PriceMethod.AVERAGE_BENCHMARK:
            entry["deviation"] = _opt(b.deviation)
        entry["raw_score"] = _opt(b.raw_score)
        entry["score"] = _opt(b.score)
        bids.append(entry)
    out["bids"] = bids
    return out


def _bid_json(b: BidResult) -> dict[str, Any]:
    commercial = None
    if b.commercial is not None:
        commercial = {
            "criteria": {
                c.key: {
                    "field": c.field,
                    "value": fmt(c.value),
                    "raw": fmt(c.raw),
                    "score": fmt(c.score),
                }
                for c in b.commercial.criteria
            },
            "total": fmt(b.commercial.total),
        }
    technical = None
    if b.technical is not None:
        t = b.technical
        technical = {
            "method": str(t.method),
            "expert_totals": {e: fmt(v) for e, v in t.expert_totals.items()},
            "dropped_highest": t.dropped_highest,
            "dropped_lowest": t.dropped_lowest,
            "mean": fmt(t.mean),
            "criteria_means": {k: fmt(v) for k, v in t.criterion_means.items()},
            "total": fmt(t.total),
        }
    return {
        "id": b.bid_id,
        "price": None if b.price is None else fmt(b.price),
        "compliant": b.compliance.compliant,
        "automatic_compliant": b.compliance.automatic_compliant,
        "reasons": [r.to_json() for r in b.compliance.reasons],
        "price_score": _opt(b.price_score),
        "evaluated_price": _opt(b.evaluated_price),
        "commercial_score": commercial,
        "technical_score": technical,
        "total": _opt(b.total),
        "rank": b.rank,
    }


def _ranking_json(ranking: Ranking | None) -> list[dict[str, Any]]:
    if ranking is None:
        return []
    return [{"rank": ranking.ranks[bid], "bid": bid} for bid in ranking.order]


def _ties_json(ranking: Ranking | None) -> list[dict[str, Any]]:
    if ranking is None:
        return []
    return [
        {
            "bids": list(t.bids),
            "rank": t.rank,
            "on": t.on,
            "value": fmt(t.value),
            "resolved_by": list(t.resolved_by),
            "needs_draw": [
                {
                    "bids": list(group),
                    "message": render(
                        "tie_needs_draw",
                        {"bids": ", ".join(group), "rank": str(ranking.ranks[group[0]])},
                    ),
                }
                for group in t.needs_draw
            ],
        }
        for t in ranking.ties
    ]
