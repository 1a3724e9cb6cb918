"""What an evaluation record shows, gathered from the scoring file and the database.

The scoring file (`Evaluation.scoring_json`, embedded byte-identical in the PDF) is the
source of every number: compliance verdicts and their reasons, the price working, the
experts' scores and reasons, the aggregation, the ranking. The database adds what the file
does not carry: the tender's identification and schedule, the sealing and opening records,
the panel with their conflict declarations, the codes the experts saw and whom they hid,
and the audit-chain head.

A tender divided into lots (`Evaluation.lots_json`, format `fairbid-lots-evaluation/1`) has
no whole-tender scoring file: its record is made from the lots file (`record_content` tells
them apart). Then `RecordContent` holds the tender-wide parts (tender, sealing, opening
record hash, panel, audit head) and:

- `scoring` / `scoring_text`: the lots file itself (parsed / its exact text, attached as
  `lots-evaluation.json`; `document_hash` is its SHA-256);
- `lots`: one `LotSection` per lot, in the tender's lot order: `lot` (reference), `title`,
  `ceiling_price` / `reserve_price` (from the lot's scoring file), `attachment`
  (`scoring-<lot>.json`, see `evaluation.pdf.lot_attachment_name`), `scoring_text` (the
  lot's scoring file, canonical text, attached byte-identical) and its `sha256`, `opening`
  (the lot's opening lines), `ties` (the lot's ties, how each was resolved, the drawn
  positions), `award` (this lot's entry of the award's result: `winner`, `rank`,
  `passed_over`, with names) and `content`: a `RecordContent` of the lot's scoring file as
  a single-lot record has it (compliance, price, criteria, expert_sheets, aggregated,
  ranking, candidates, outcome, flags, charts; names and codes of that lot's bids);
- `award`: the cross-lot award step (`award_section`): `rule`, `limit`, `input` (per lot
  its ranking: bidder, name, total, price), `result` (per lot winner and passed-over
  bidders), `search` (the trace: method, states, complete, fallback, awarded, objective,
  tie) and `document` (the award JSON as recorded in the lots file).

The tender-wide `compliance`, `price`, `criteria`, `ranking`... are empty then. A tender of
one lot has `lots == []` and `award is None`, and its record is what it always was.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.accounts.models import User
from app.audit import chain_head
from app.bids.models import Bid
from app.bids.operations import bidder_id, sealing_record_of
from app.companies.models import Company
from app.evaluations.charts import price_chart_svg, score_spread_svg
from app.evaluations.models import Evaluation
from app.extensions import db
from app.opening.models import EvaluatedBid, OpeningLine
from app.opening.operations import record_of
from app.opening.problems import line_problems
from app.panels.models import PanelMember
from app.records import labels
from app.tender_templates.rendering import localized
from app.tenders.documents import blob_store
from app.tenders.models import Tender
from app.tenders.operations import current_locale, template_of

log = logging.getLogger(__name__)

# Charts are drawn for at most this many bids per chart (the tables list every one).
CHART_MAX_ROWS = 40


@dataclass
class RecordContent:
    tender: Tender
    evaluation: Evaluation
    scoring: dict[str, Any]
    scoring_text: str
    names: dict[str, str]  # bidder id -> company name
    codes: dict[str, str]  # bidder id -> technical code
    sealing: dict[str, Any] | None
    opening: list[dict[str, Any]]
    opening_sha256: str | None
    panel: list[dict[str, Any]]
    compliance: list[dict[str, Any]]
    price: dict[str, Any]
    criteria: list[dict[str, Any]]
    experts: list[str]
    expert_sheets: list[dict[str, Any]]
    aggregated: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    outcome: dict[str, Any]
    flags: list[Any]
    audit_seq: int
    audit_head: str
    charts: dict[str, Any] = field(default_factory=dict)
    lots: list[LotSection] = field(default_factory=list)  # several lots only
    award: dict[str, Any] | None = None  # the award across lots (several lots only)

    def as_context(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class LotSection:
    """One lot's part of the record of a tender divided into lots (see the module's
    docstring)."""

    lot: str
    title: str
    ceiling_price: str | None
    reserve_price: str | None
    attachment: str
    scoring_text: str
    sha256: str
    opening: list[dict[str, Any]]
    ties: list[dict[str, Any]]
    award: dict[str, Any]
    content: RecordContent


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _identities(tender: Tender) -> tuple[dict[str, str], dict[str, str]]:
    names: dict[str, str] = {}
    codes: dict[str, str] = {}
    rows = db.session.execute(
        select(EvaluatedBid.code, Company)
        .join(Bid, Bid.id == EvaluatedBid.bid_id)
        .join(Company, Company.id == Bid.company_id)
        .where(EvaluatedBid.tender_id == tender.id)
        .order_by(EvaluatedBid.code)
    ).all()
    for code, company in rows:
        names[bidder_id(company)] = company.name
        codes[bidder_id(company)] = code
    return names, codes


def bidder_names(tender: Tender) -> dict[str, str]:
    """Bidder id -> company name, for the tender's evaluated bids."""
    return _identities(tender)[0]


def _sealing(tender: Tender) -> dict[str, Any] | None:
    document = sealing_record_of(tender)
    if document is None:
        return None
    out: dict[str, Any] = {"sha256": document.sha256, "root": None, "count": None}
    try:
        with blob_store().open(document.sha256) as handle:
            data = json.loads(handle.read())
        record = data.get("record", data)
        out["root"] = record.get("root")
        leaves = record.get("leaves") or record.get("envelopes") or record.get("hashes")
        out["count"] = len(leaves) if isinstance(leaves, list) else record.get("count")
        out["sealed_at"] = record.get("sealed_at") or record.get("time")
    except Exception:  # a missing blob is shown as such, never hidden
        log.exception("sealing record %s of tender %s unreadable", document.id, tender.id)
    return out


def _opening(tender: Tender) -> tuple[list[dict[str, Any]], str | None]:
    """The opening lines, their reasons in the reader's language, and each malformed
    commercial part's problems as the published opening record lists them."""
    problems = line_problems(tender)
    rows = db.session.execute(
        select(OpeningLine, Company)
        .join(Company, Company.id == OpeningLine.company_id)
        .where(OpeningLine.tender_id == tender.id)
        .order_by(OpeningLine.bid_id)
    ).all()
    lines = [
        {
            "bidder": bidder_id(company),
            "company": company.name,
            "status": line.status,
            "price": line.price,
            "envelope_sha256": line.envelope_sha256,
            "reason": labels.opening_reason(line.reason, problems.get(line.bid_id)),
            "problems": problems.get(line.bid_id) or [],
            "objection": line.objection,
            "lot_id": line.lot_id,
        }
        for line, company in rows
    ]
    document = record_of(tender)
    return lines, document.sha256 if document else None


def _panel(tender: Tender, evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = db.session.execute(
        select(PanelMember, User)
        .join(User, User.id == PanelMember.user_id)
        .where(PanelMember.tender_id == tender.id)
        .order_by(PanelMember.position, PanelMember.id)
    ).all()
    return [
        {
            "seat": member.position,
            "expert": f"E{member.position}",
            "name": user.full_name,
            "user_id": user.id,
            "specialty": member.drawn_for or "",
            "status": member.status,
            "chair": user.id == evaluation.chair_id,
            "declared_at": member.conflict_declared_at,
            "statement": member.conflict_statement,
            "removed_reason": member.removed_reason,
            "declined_reason": member.declined_reason,
        }
        for member, user in rows
    ]


def _input_bids(scoring: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {bid["id"]: bid for bid in scoring.get("bids", [])}


def _compliance(
    scoring: dict[str, Any],
    names: dict[str, dict[str, str]] | None = None,
    problems: dict[str, list] | None = None,
) -> list[dict[str, Any]]:
    inputs = _input_bids(scoring)
    out = []
    for bid in scoring.get("result", {}).get("bids", []):
        source = inputs.get(bid["id"], {})
        override = source.get("compliance_override")
        out.append(
            {
                "bid": bid["id"],
                "automatic": bid.get("automatic_compliant"),
                "compliant": bid.get("compliant"),
                # in the reader's language, as the ranking page shows them; the scoring
                # file keeps the code, its parameters and the English message
                "reasons": [
                    labels.reason(r, names, (problems or {}).get(bid["id"]))
                    for r in bid.get("reasons", [])
                ],
                "override": override,
                "checks": source.get("compliance", {}),
                "documents": source.get("documents", []),
            }
        )
    return out


def _criteria(
    scoring: dict[str, Any], titles: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The technical criteria, numbered C1, C2... (the score tables' column headers, so a
    works tender's seven criteria fit a page), titled in the reader's language when the
    tender's template names them."""
    return [
        {
            "key": c["key"],
            "label": f"C{n}",
            "title": (titles or {}).get(c["key"])
            or c.get("title")
            or c["key"].replace("_", " ").capitalize(),
            "max_points": c.get("max_points"),
        }
        for n, c in enumerate(scoring.get("technical_criteria", []), start=1)
    ]


def _template_names(tender: Tender) -> dict[str, dict[str, str]]:
    """The names the tender's template gives, in the current language: technical criteria
    (`criteria`), qualification documents (`documents`) and bid-form fields (`fields`), so
    the record shows "Audited financial statements", not `financial_statement`. Empty when
    the template cannot be read (the scoring file's titles or keys are shown)."""
    try:
        template = template_of(tender)
    except Exception:  # a template that no longer parses still gets its record
        log.warning("template of tender %s unreadable for the record", tender.id)
        return {}
    locale = current_locale()

    def names(section: str, attribute: str) -> dict[str, str]:
        out = {}
        for item in template.get(section) or []:
            if isinstance(item, dict) and item.get("key"):
                text = localized(item.get(attribute), locale)
                if text:
                    out[item["key"]] = text
        return out

    return {
        "criteria": names("technical_criteria", "title"),
        "documents": names("qualification_documents", "label"),
        "fields": names("commercial_fields", "label"),
    }


def _experts(scoring: dict[str, Any]) -> list[str]:
    panel = scoring.get("result", {}).get("panel")
    if panel:
        return list(panel)
    seen: dict[str, None] = {}
    for bid in scoring.get("bids", []):
        for expert in bid.get("technical", {}):
            seen.setdefault(expert, None)
    return sorted(seen, key=lambda e: (len(e), e))


def _expert_sheets(
    scoring: dict[str, Any], experts: list[str], criteria: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    sheets = []
    for expert in experts:
        rows = []
        for bid in scoring.get("bids", []):
            scores = bid.get("technical", {}).get(expert)
            if scores is None:
                continue
            reasons = bid.get("technical_reasons", {}).get(expert, {})
            rows.append(
                {
                    "bid": bid["id"],
                    "scores": [scores.get(c["key"]) for c in criteria],
                    "reasons": [
                        (c["label"], reasons[c["key"]]) for c in criteria if reasons.get(c["key"])
                    ],
                }
            )
        sheets.append({"expert": expert, "rows": rows})
    return sheets


def _aggregated(scoring: dict[str, Any], criteria: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for bid in scoring.get("result", {}).get("bids", []):
        technical = bid.get("technical_score") or {}
        commercial = bid.get("commercial_score") or {}
        out.append(
            {
                "bid": bid["id"],
                "price": bid.get("price"),
                "evaluated_price": bid.get("evaluated_price"),
                "price_score": bid.get("price_score"),
                "commercial": commercial.get("total"),
                "technical": technical.get("total"),
                "technical_method": technical.get("method"),
                "dropped": ", ".join(
                    x
                    for x in (technical.get("dropped_highest"), technical.get("dropped_lowest"))
                    if x
                ),
                "means": [technical.get("criteria_means", {}).get(c["key"]) for c in criteria],
                "total": bid.get("total"),
                "rank": bid.get("rank"),
                "compliant": bid.get("compliant"),
            }
        )
    out.sort(key=lambda row: (row["rank"] is None, row["rank"] or 0, row["bid"]))
    return out


def _charts(content: RecordContent) -> dict[str, Any]:
    from flask_babel import gettext as _

    charts: dict[str, Any] = {}
    label = {bid: content.codes.get(bid) or bid for bid in content.names} | {}
    priced = [
        (label.get(row["bid"], row["bid"]), _dec(row["price"]))
        for row in (content.price or {}).get("bids", [])
        if _dec(row.get("price")) is not None
    ]
    if not priced:
        priced = [
            (label.get(row["bid"], row["bid"]), _dec(row["price"]))
            for row in content.aggregated
            if _dec(row["price"]) is not None
        ]
    currency = current_app.config["FAIRBID_CURRENCY"]
    if priced:
        charts["price"] = price_chart_svg(
            priced[:CHART_MAX_ROWS],
            _dec((content.price or {}).get("benchmark")),
            title=_("Price distribution"),
            benchmark_label=_("Benchmark"),
            price_label=_("Bid price"),
            axis_label=_("Price (%(currency)s)", currency=currency),
            format_value=labels.money,
        )
    spreads = []
    outlier_pct = _dec(content.scoring.get("technical_outlier_pct")) or Decimal(30)
    inputs = _input_bids(content.scoring)
    bids = [row["bid"] for row in content.aggregated if row["technical"] is not None]
    for criterion in content.criteria:
        rows = []
        for bid in bids[:CHART_MAX_ROWS]:
            scores = {
                expert: value
                for expert, sheet in inputs.get(bid, {}).get("technical", {}).items()
                if (value := _dec(sheet.get(criterion["key"]))) is not None
            }
            if scores:
                flagged = frozenset(
                    params.get("expert")
                    for flag in content.flags
                    if isinstance(flag, dict) and flag.get("code") == "outlier_score"
                    for params in [flag.get("params") or {}]
                    if params.get("bid") == bid and params.get("criterion") == criterion["key"]
                )
                rows.append((label.get(bid, bid), scores, flagged))
        maximum = _dec(criterion["max_points"])
        if rows and maximum:
            spreads.append(
                {
                    "criterion": criterion,
                    "svg": score_spread_svg(
                        rows,
                        maximum,
                        title=_("Score spread: %(criterion)s", criterion=criterion["title"]),
                        mean_label=_("panel mean"),
                        outlier_label=_("outlier"),
                        outlier_pct=outlier_pct,
                        band_label=_(
                            "panel mean ± %(pct)s %% of the maximum points (no outlier)",
                            pct=labels.points(outlier_pct),
                        ),
                        axis_label=_("Points"),
                        format_value=labels.points,
                    ),
                }
            )
    charts["spreads"] = spreads
    charts["truncated"] = len(bids) > CHART_MAX_ROWS or len(priced) > CHART_MAX_ROWS
    return charts


def record_content(tender: Tender, evaluation: Evaluation) -> RecordContent:
    """Everything the record template shows. Needs `evaluation.scoring_json`, or for a
    tender divided into lots `evaluation.lots_json` (`lots_record_content`)."""
    if evaluation.lots_json:
        return lots_record_content(tender, evaluation)
    if not evaluation.scoring_json:
        raise ValueError("the evaluation has no scoring file")
    names, codes = _identities(tender)
    opening, opening_sha256 = _opening(tender)
    for line in opening:
        names.setdefault(line["bidder"], line["company"])
    seq, head = chain_head()
    return build_content(
        evaluation.scoring_json,
        tender,
        evaluation,
        names=names,
        codes=codes,
        sealing=_sealing(tender),
        opening=opening,
        opening_sha256=opening_sha256,
        panel=_panel(tender, evaluation),
        audit_seq=seq,
        audit_head=head,
        template_names=_template_names(tender),
    )


def build_content(
    scoring_text: str,
    tender: Any,
    evaluation: Any,
    *,
    names: dict[str, str],
    codes: dict[str, str],
    sealing: dict[str, Any] | None,
    opening: list[dict[str, Any]],
    opening_sha256: str | None,
    panel: list[dict[str, Any]],
    audit_seq: int,
    audit_head: str,
    template_names: dict[str, dict[str, str]] | None = None,
) -> RecordContent:
    """The record's content from the scoring file and the facts read from the database
    (the benchmark passes its own)."""
    scoring = json.loads(scoring_text)
    result = scoring.get("result", {})
    criteria = _criteria(scoring, (template_names or {}).get("criteria"))
    experts = _experts(scoring)
    aggregated = _aggregated(scoring, criteria)
    outcome = result.get("outcome", {})
    candidates = [
        {"rank": i + 1, "bid": bid, "name": names.get(bid, ""), "code": codes.get(bid, "")}
        for i, bid in enumerate(outcome.get("candidates", [])[:3])
    ]
    by_bid = {row["bid"]: row for row in aggregated}
    ranking = [
        {**by_bid.get(entry["bid"], {}), "rank": entry["rank"], "bid": entry["bid"]}
        for entry in result.get("ranking", [])
    ]
    content = RecordContent(
        tender=tender,
        evaluation=evaluation,
        scoring=scoring,
        scoring_text=scoring_text,
        names=names,
        codes=codes,
        sealing=sealing,
        opening=opening,
        opening_sha256=opening_sha256,
        panel=panel,
        compliance=_compliance(
            scoring,
            template_names,
            {line["bidder"]: line["problems"] for line in opening if line.get("problems")},
        ),
        price=result.get("price") or {},
        criteria=criteria,
        experts=experts,
        expert_sheets=_expert_sheets(scoring, experts, criteria),
        aggregated=aggregated,
        ranking=ranking,
        candidates=candidates,
        outcome=outcome,
        flags=result.get("flags", []),
        audit_seq=audit_seq,
        audit_head=audit_head,
    )
    content.charts = _charts(content)
    return content


# --- a tender divided into lots ------------------------------------------------------------


def _identities_by_lot(tender: Tender) -> dict[int | None, tuple[dict[str, str], dict[str, str]]]:
    """Per lot id: bidder id -> company name, bidder id -> technical code (a company bidding
    for several lots has one bid, and one code, in each)."""
    out: dict[int | None, tuple[dict[str, str], dict[str, str]]] = {}
    rows = db.session.execute(
        select(Bid.lot_id, EvaluatedBid.code, Company)
        .join(Bid, Bid.id == EvaluatedBid.bid_id)
        .join(Company, Company.id == Bid.company_id)
        .where(EvaluatedBid.tender_id == tender.id)
        .order_by(EvaluatedBid.code)
    ).all()
    for lot_id, code, company in rows:
        names, codes = out.setdefault(lot_id, ({}, {}))
        names[bidder_id(company)] = company.name
        codes[bidder_id(company)] = code
    return out


def _ties(scored: dict[str, Any]) -> list[dict[str, Any]]:
    """The lot's ties as the record lists them: the level bids, their rank, on what they
    were level, the tie-breaks that separated them and the positions drawn by lot."""
    drawn = {bid["id"]: bid.get("draw") for bid in scored.get("bids", [])}
    return [
        {
            "bids": list(tie.get("bids", [])),
            "rank": tie.get("rank"),
            "on": tie.get("on"),
            "value": tie.get("value"),
            "resolved_by": list(tie.get("resolved_by", [])),
            "draws": [
                (bid, drawn.get(bid)) for bid in tie.get("bids", []) if drawn.get(bid) is not None
            ],
            "needs_draw": [list(group.get("bids", [])) for group in tie.get("needs_draw", [])],
        }
        for tie in scored.get("result", {}).get("ties", [])
    ]


def award_section(award: dict[str, Any], names: dict[str, str], titles: dict[str, str]) -> dict:
    """The award across lots as the record shows it (see the module's docstring)."""
    result = award.get("result") or {}
    search = result.get("search")
    return {
        "rule": award.get("rule"),
        "limit": award.get("limit"),
        "input": [
            {
                "lot": entry.get("lot"),
                "title": titles.get(entry.get("lot"), ""),
                "ranking": [
                    {
                        "position": position,
                        "bidder": row.get("company"),
                        "name": names.get(row.get("company"), ""),
                        "total": row.get("total"),
                        "price": row.get("price"),
                    }
                    for position, row in enumerate(entry.get("ranking", []), start=1)
                ],
            }
            for entry in award.get("lots", [])
        ],
        "result": [_lot_award(entry, names, titles) for entry in result.get("lots", [])],
        "search": search,
        "document": award,
    }


def _lot_award(entry: dict[str, Any], names: dict[str, str], titles: dict[str, str]) -> dict:
    return {
        "lot": entry.get("lot"),
        "title": titles.get(entry.get("lot"), ""),
        "winner": entry.get("winner"),
        "winner_name": names.get(entry.get("winner"), "") if entry.get("winner") else "",
        "rank": entry.get("rank"),
        "passed_over": [
            {
                "bidder": p.get("company"),
                "name": names.get(p.get("company"), ""),
                "rank": p.get("rank"),
                "reason": p.get("reason"),
                "won": list(p.get("won", [])),
            }
            for p in entry.get("passed_over", [])
        ],
    }


def lots_record_content(tender: Tender, evaluation: Evaluation) -> RecordContent:
    """The record's content for a tender divided into lots, from `evaluation.lots_json`."""
    from evaluation import dumps
    from evaluation.pdf import lot_attachment_name

    text = evaluation.lots_json
    document = json.loads(text)
    names, codes = _identities(tender)
    opening, opening_sha256 = _opening(tender)
    for line in opening:
        names.setdefault(line["bidder"], line["company"])
    seq, head = chain_head()
    panel = _panel(tender, evaluation)
    sealing = _sealing(tender)
    template_names = _template_names(tender)
    lots = {lot.reference: lot for lot in tender.lots}
    by_lot = _identities_by_lot(tender)
    titles = {ref: lot.title for ref, lot in lots.items()}
    awarded = {
        entry.get("lot"): _lot_award(entry, names, titles)
        for entry in (document.get("award", {}).get("result") or {}).get("lots", [])
    }
    sections = []
    for entry in document.get("lots", []):
        reference = str(entry["lot"])
        lot = lots.get(reference)
        lot_id = lot.id if lot is not None else None
        scored = entry["scoring_file"]
        lot_text = dumps(scored)
        lot_names, lot_codes = by_lot.get(lot_id, ({}, {}))
        lot_names = dict(lot_names)
        lot_opening = [line for line in opening if line["lot_id"] == lot_id]
        for line in lot_opening:
            lot_names.setdefault(line["bidder"], line["company"])
        content = build_content(
            lot_text,
            tender,
            evaluation,
            names=lot_names,
            codes=dict(lot_codes),
            sealing=sealing,
            opening=lot_opening,
            opening_sha256=opening_sha256,
            panel=panel,
            audit_seq=seq,
            audit_head=head,
            template_names=template_names,
        )
        sections.append(
            LotSection(
                lot=reference,
                title=lot.title if lot is not None else "",
                ceiling_price=scored.get("ceiling_price"),
                reserve_price=scored.get("reserve_price"),
                attachment=lot_attachment_name(reference),
                scoring_text=lot_text,
                sha256=hashlib.sha256(lot_text.encode("utf-8")).hexdigest(),
                opening=lot_opening,
                ties=_ties(scored),
                award=awarded.get(reference) or _lot_award({"lot": reference}, names, titles),
                content=content,
            )
        )
    return RecordContent(
        tender=tender,
        evaluation=evaluation,
        scoring=document,
        scoring_text=text,
        names=names,
        codes=codes,
        sealing=sealing,
        opening=opening,
        opening_sha256=opening_sha256,
        panel=panel,
        compliance=[],
        price={},
        criteria=[],
        experts=[],
        expert_sheets=[],
        aggregated=[],
        ranking=[],
        candidates=[],
        outcome={},
        flags=[],
        audit_seq=seq,
        audit_head=head,
        lots=sections,
        award=award_section(document.get("award") or {}, names, titles),
    )
