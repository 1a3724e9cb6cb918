"""The input data model of an evaluation (dataclasses), built from a scoring file.

``tender_from_document`` expects a document that already passed the JSON Schema (see
``scoring_file.validate``) and adds the checks a schema cannot express well (unique ids,
criteria a sheet refers to, method and direction that fit together); each problem names the
place in the file as a path such as ``$.bids[2].technical.E1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from evaluation.decimals import ZERO, is_decimal_string, parse_decimal


class Direction(StrEnum):
    LOWEST_WINS = "lowest_wins"  # procurement
    HIGHEST_WINS = "highest_wins"  # sales of assets and land-use rights


class PriceMethod(StrEnum):
    LOWEST_PRICE_BENCHMARK = "lowest_price_benchmark"
    AVERAGE_BENCHMARK = "average_benchmark"
    HIGHEST_PRICE = "highest_price"
    LOWEST_EVALUATED_PRICE = "lowest_evaluated_price"


# Which price methods make sense for which award direction.
METHODS_BY_DIRECTION: dict[Direction, frozenset[PriceMethod]] = {
    Direction.LOWEST_WINS: frozenset(
        {
            PriceMethod.LOWEST_PRICE_BENCHMARK,
            PriceMethod.AVERAGE_BENCHMARK,
            PriceMethod.LOWEST_EVALUATED_PRICE,
        }
    ),
    Direction.HIGHEST_WINS: frozenset({PriceMethod.HIGHEST_PRICE}),
}


class Aggregation(StrEnum):
    MEAN = "mean"
    TRIMMED_MEAN = "trimmed_mean"
    AUTO = "auto"  # trimmed mean when the panel has TRIM_FROM_EXPERTS or more experts


TRIM_FROM_EXPERTS = 5


class Better(StrEnum):
    LOWER = "lower"
    HIGHER = "higher"


class CriterionRule(StrEnum):
    LINEAR = "linear"
    STEPS = "steps"


FIELD_RULE_OPS = ("<", "<=", ">", ">=", "==", "!=", "in")


@dataclass(frozen=True)
class AverageBenchmarkParams:
    drop_highest_from: int = 6
    drop_lowest_from: int = 7
    k: Decimal = ZERO
    above_per_pct: Decimal = Decimal("1.0")
    below_per_pct: Decimal = Decimal("0.5")


@dataclass(frozen=True)
class PriceRule:
    method: PriceMethod
    max_points: Decimal = ZERO
    average: AverageBenchmarkParams = field(default_factory=AverageBenchmarkParams)


@dataclass(frozen=True)
class Step:
    """One line of a step table: reaching ``threshold`` earns ``points``."""

    threshold: Decimal
    points: Decimal


@dataclass(frozen=True)
class CommercialCriterion:
    """A commercial criterion scored automatically from one structured field of the bid.

    ``linear``: full points at the better bound, 0 at the worse one, linear between, clamped.
    ``steps``: the most points among the steps whose threshold the value reaches (``>=`` when
    higher is better, ``<=`` when lower is better), 0 when it reaches none.
    """

    key: str
    max_points: Decimal
    rule: CriterionRule
    field: str
    better: Better
    lower: Decimal | None = None
    upper: Decimal | None = None
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class TechnicalCriterion:
    key: str
    max_points: Decimal
    step: Decimal


@dataclass(frozen=True)
class AbnormallyLowRule:
    """Thresholds in percent; ``None`` switches a test off."""

    below_mean_of_others_pct: Decimal | None = Decimal(40)
    below_next_lowest_pct: Decimal | None = Decimal(30)


@dataclass(frozen=True)
class FieldRule:
    """A template rule on a structured field, e.g. ``delivery_days <= 90``."""

    field: str
    op: str
    value: str | bool | tuple[str, ...]


@dataclass(frozen=True)
class ComplianceRules:
    required_fields: tuple[str, ...] = ()
    required_documents: tuple[str, ...] = ()
    bid_bond: Decimal | None = None
    required_checks: tuple[str, ...] = ()
    field_rules: tuple[FieldRule, ...] = ()


@dataclass(frozen=True)
class Adjustment:
    """An adjustment of the evaluated price (lowest_evaluated_price), positive or negative."""

    reason: str
    amount: Decimal


@dataclass(frozen=True)
class ComplianceOverride:
    """The panel's recorded decision overruling the automatic compliance verdict."""

    compliant: bool
    reason: str


@dataclass(frozen=True)
class Bid:
    id: str
    # None: the bid has no readable price (its commercial part was malformed); such a bid
    # is never compliant.
    price: Decimal | None
    fields: Mapping[str, str | bool] = field(default_factory=dict)
    compliance: Mapping[str, bool | str] = field(default_factory=dict)
    # expert id -> criterion key -> score
    technical: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    technical_reasons: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    documents: tuple[str, ...] = ()
    bid_bond: Decimal | None = None
    adjustments: tuple[Adjustment, ...] = ()
    draw: int | None = None
    compliance_override: ComplianceOverride | None = None


@dataclass(frozen=True)
class Tender:
    direction: Direction
    price: PriceRule
    bids: tuple[Bid, ...]
    ceiling_price: Decimal | None = None
    reserve_price: Decimal | None = None
    min_bids: int = 3
    commercial_criteria: tuple[CommercialCriterion, ...] = ()
    technical_criteria: tuple[TechnicalCriterion, ...] = ()
    aggregation: Aggregation = Aggregation.AUTO
    technical_outlier_pct: Decimal = Decimal(30)
    abnormally_low: AbnormallyLowRule = field(default_factory=AbnormallyLowRule)
    compliance_rules: ComplianceRules = field(default_factory=ComplianceRules)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scoring file: where (``$.bids[0].price``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ScoringFileError(ValueError):
    """The scoring file is not valid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def json_path(parts: Iterable[str | int]) -> str:
    """``["bids", 2, "price"]`` -> ``$.bids[2].price`` (keys that are not names are quoted)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


# Records a problem at a path (list of keys and indexes) with a message.
Report = Callable[[Sequence[str | int], str], None]


def _dec(value: Any) -> Decimal:
    return parse_decimal(value)


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else parse_decimal(value)


def tender_from_document(doc: Mapping[str, Any]) -> Tender:
    """Build the ``Tender`` of a schema-valid scoring file; raise ``ScoringFileError``."""
    problems: list[Problem] = []

    def problem(parts: Sequence[str | int], message: str) -> None:
        problems.append(Problem(json_path(parts), message))

    direction = Direction(doc["direction"])
    price = _price_rule(doc["price"])
    if price.method not in METHODS_BY_DIRECTION[direction]:
        allowed = ", ".join(sorted(METHODS_BY_DIRECTION[direction]))
        problem(
            ["price", "method"],
            f"{price.method} does not fit direction {direction}; use one of: {allowed}",
        )
    ceiling = _opt_dec(doc.get("ceiling_price"))
    reserve = _opt_dec(doc.get("reserve_price"))
    if ceiling is not None and direction is Direction.HIGHEST_WINS:
        problem(["ceiling_price"], "a ceiling price applies to lowest_wins tenders only")
    if reserve is not None and direction is Direction.LOWEST_WINS:
        problem(["reserve_price"], "a reserve price applies to highest_wins tenders only")
    avg = price.average
    if max(avg.drop_highest_from, avg.drop_lowest_from) < 3:
        problem(
            ["price", "params"],
            "drop_highest_from and drop_lowest_from cannot both be 2: two bids would leave "
            "no price for the benchmark",
        )
    if avg.k <= -1:
        problem(["price", "params", "k"], "k must be greater than -1 (B = mean × (1 + k))")

    commercial = tuple(
        _commercial_criterion(raw, ["commercial_criteria", i], problem)
        for i, raw in enumerate(doc.get("commercial_criteria", []))
    )
    _unique([c.key for c in commercial], "commercial_criteria", "key", problem)
    technical = tuple(
        TechnicalCriterion(raw["key"], _dec(raw["max_points"]), _dec(raw["step"]))
        for raw in doc.get("technical_criteria", [])
    )
    for i, criterion in enumerate(technical):
        if criterion.step > criterion.max_points:
            problem(["technical_criteria", i, "step"], "the step is larger than max_points")
    _unique([c.key for c in technical], "technical_criteria", "key", problem)
    technical_keys = [c.key for c in technical]

    raw_bids = doc["bids"]
    _unique([b["id"] for b in raw_bids], "bids", "id", problem)
    bids = tuple(
        _bid(raw, ["bids", i], price.method, technical_keys, problem)
        for i, raw in enumerate(raw_bids)
    )

    rules_raw = doc.get("compliance_rules", {})
    compliance_rules = ComplianceRules(
        required_fields=tuple(rules_raw.get("required_fields", ())),
        required_documents=tuple(rules_raw.get("required_documents", ())),
        bid_bond=_opt_dec(rules_raw.get("bid_bond")),
        required_checks=tuple(rules_raw.get("required_checks", ())),
        field_rules=tuple(
            _field_rule(raw, ["compliance_rules", "field_rules", i], problem)
            for i, raw in enumerate(rules_raw.get("field_rules", ()))
        ),
    )
    low_raw = doc.get("abnormally_low", {})
    defaults = AbnormallyLowRule()
    abnormally_low = AbnormallyLowRule(
        below_mean_of_others_pct=(
            _opt_dec(low_raw["below_mean_of_others_pct"])
            if "below_mean_of_others_pct" in low_raw
            else defaults.below_mean_of_others_pct
        ),
        below_next_lowest_pct=(
            _opt_dec(low_raw["below_next_lowest_pct"])
            if "below_next_lowest_pct" in low_raw
            else defaults.below_next_lowest_pct
        ),
    )
    if problems:
        raise ScoringFileError(problems)
    return Tender(
        direction=direction,
        price=price,
        bids=bids,
        ceiling_price=ceiling,
        reserve_price=reserve,
        min_bids=doc.get("min_bids", 3),
        commercial_criteria=commercial,
        technical_criteria=technical,
        aggregation=Aggregation(doc.get("aggregation", Aggregation.AUTO)),
        technical_outlier_pct=_dec(doc.get("technical_outlier_pct", "30")),
        abnormally_low=abnormally_low,
        compliance_rules=compliance_rules,
    )


def _price_rule(raw: Mapping[str, Any]) -> PriceRule:
    method = PriceMethod(raw["method"])
    params = raw.get("params", {})
    defaults = AverageBenchmarkParams()
    average = AverageBenchmarkParams(
        drop_highest_from=params.get("drop_highest_from", defaults.drop_highest_from),
        drop_lowest_from=params.get("drop_lowest_from", defaults.drop_lowest_from),
        k=_dec(params["k"]) if "k" in params else defaults.k,
        above_per_pct=(
            _dec(params["above_per_pct"]) if "above_per_pct" in params else defaults.above_per_pct
        ),
        below_per_pct=(
            _dec(params["below_per_pct"]) if "below_per_pct" in params else defaults.below_per_pct
        ),
    )
    return PriceRule(method=method, max_points=_dec(raw.get("max_points", "0")), average=average)


def _commercial_criterion(
    raw: Mapping[str, Any], where: list[str | int], problem: Report
) -> CommercialCriterion:
    rule = CriterionRule(raw["rule"])
    max_points = _dec(raw["max_points"])
    lower, upper = _opt_dec(raw.get("lower")), _opt_dec(raw.get("upper"))
    steps = tuple(Step(_dec(s["threshold"]), _dec(s["points"])) for s in raw.get("steps", ()))
    if rule is CriterionRule.LINEAR:
        if "steps" in raw:
            problem([*where, "steps"], "steps belong to rule 'steps', not 'linear'")
        if lower is not None and upper is not None and lower >= upper:
            problem(where, f"lower ({raw['lower']}) must be less than upper ({raw['upper']})")
    else:
        for name in ("lower", "upper"):
            if name in raw:
                problem([*where, name], f"{name} belongs to rule 'linear', not 'steps'")
        for j, step in enumerate(steps):
            if step.points > max_points:
                problem(
                    [*where, "steps", j, "points"],
                    f"{raw['steps'][j]['points']} exceeds the criterion's max_points "
                    f"{raw['max_points']}",
                )
        thresholds = [s.threshold for s in steps]
        if len(set(thresholds)) != len(thresholds):
            problem([*where, "steps"], "two steps have the same threshold")
    return CommercialCriterion(
        key=raw["key"],
        max_points=max_points,
        rule=rule,
        field=raw["field"],
        better=Better(raw["better"]),
        lower=lower,
        upper=upper,
        steps=steps,
    )


def _field_rule(raw: Mapping[str, Any], where: list[str | int], problem: Report) -> FieldRule:
    op, value = raw["op"], raw["value"]
    if op == "in":
        if not isinstance(value, list):
            problem([*where, "value"], "op 'in' needs a list of strings")
            value = []
        return FieldRule(raw["field"], op, tuple(value))
    if isinstance(value, list):
        problem([*where, "value"], f"op '{op}' needs a single value, not a list")
        value = ""
    if op in ("<", "<=", ">", ">=") and not is_decimal_string(value):
        problem([*where, "value"], f"op '{op}' compares numbers: value must be a decimal string")
    return FieldRule(raw["field"], op, value)


def _bid(
    raw: Mapping[str, Any],
    where: list[str | int],
    method: PriceMethod,
    technical_keys: Sequence[str],
    problem: Report,
) -> Bid:
    technical: dict[str, dict[str, Decimal]] = {}
    for expert, sheet in raw.get("technical", {}).items():
        unknown = sorted(set(sheet) - set(technical_keys))
        missing = [k for k in technical_keys if k not in sheet]
        if unknown:
            problem(
                [*where, "technical", expert],
                f"no technical criterion named {', '.join(map(repr, unknown))}",
            )
        if missing:
            problem(
                [*where, "technical", expert],
                f"sheet has no score for {', '.join(map(repr, missing))}",
            )
        technical[expert] = {k: _dec(v) for k, v in sheet.items()}
    for expert, reasons in raw.get("technical_reasons", {}).items():
        if expert not in technical:
            problem([*where, "technical_reasons", expert], "no technical sheet for this expert")
        elif set(reasons) - set(technical[expert]):
            extra = sorted(set(reasons) - set(technical[expert]))
            problem(
                [*where, "technical_reasons", expert],
                f"reason for a score the expert did not give: {', '.join(map(repr, extra))}",
            )
    adjustments = tuple(
        Adjustment(a["reason"], _dec(a["amount"])) for a in raw.get("adjustments", ())
    )
    if adjustments and method is not PriceMethod.LOWEST_EVALUATED_PRICE:
        problem([*where, "adjustments"], "adjustments are used by lowest_evaluated_price only")
    override = raw.get("compliance_override")
    return Bid(
        id=raw["id"],
        price=_opt_dec(raw.get("price")),
        fields=dict(raw.get("fields", {})),
        compliance=dict(raw.get("compliance", {})),
        technical=technical,
        technical_reasons={e: dict(r) for e, r in raw.get("technical_reasons", {}).items()},
        documents=tuple(raw.get("documents", ())),
        bid_bond=_opt_dec(raw.get("bid_bond")),
        adjustments=adjustments,
        draw=raw.get("draw"),
        compliance_override=(
            ComplianceOverride(override["compliant"], override["reason"]) if override else None
        ),
    )


def _unique(values: Sequence[str], where: str, name: str, problem: Report) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            problem([where, i, name], f"duplicate {name} {value!r}")
        seen.add(value)
