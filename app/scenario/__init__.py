"""The end-to-end drill: one whole tender through the real operations and storage, as its
real actors, in seconds (`flask scenario run`; the `make run` demo seed; the tests).

    from app.scenario import Options, run
    result = run(Options(template="goods", bidders=5, experts=5, seed=7), out=Path("drill"))
    result = run(Options(...), stop_after="opening")   # a tender left awaiting evaluation

Stages are listed in `STAGES` (app/scenario/stages.py). The run is backdated on a simulated
clock (app/scenario/clock.py): its last stage ends shortly before the real now, so whatever
it leaves behind is consistent with the real clock. Needs an app context; the caller applies
migrations first (`flask scenario run` does).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from flask import current_app, has_request_context

from app import tender_templates
from app.clock.service import checkpoint_audit
from app.core.errors import OperationError
from app.core.types import utcnow
from app.evaluations.models import Evaluation
from app.extensions import db
from app.opening.operations import session_of
from app.panels.operations import MIN_PANEL_SIZE
from app.results.reading import LOT_PENDING, lot_states
from app.scenario import output
from app.scenario.cast import Custodian, new_run_id
from app.scenario.clock import SimulatedClock
from app.scenario.stages import (
    STAGE_FUNCTIONS,
    STAGES,
    Drill,
    Options,
    StageTime,
    StageUnavailable,
    TenderFailed,
    _template_version,
    lot_references,
    lot_results,
    ranking_of,
    standing_per_lot,
)
from app.tenders.operations import template_document
from app.tenders.template_ops import sync_builtin_templates

__all__ = ["STAGES", "Custodian", "Options", "Result", "StageUnavailable", "run"]

END_MARGIN = timedelta(minutes=5)
MAX_LOTS = 5  # as many as staff may define


@dataclass
class Result:
    tender_id: int | None
    reference: str | None
    reached: str | None  # the last stage completed
    stopped: str | None  # why the run stopped before the requested stage (None: it did not)
    failed: bool
    timings: list[StageTime]
    summary: dict
    files: dict[str, str] = field(default_factory=dict)


def _check(options: Options, stop_after: str) -> None:
    if stop_after not in STAGES:
        raise ValueError(f"stop_after must be one of {', '.join(STAGES)}")
    if options.template not in tender_templates.BUILTIN_KEYS:
        raise ValueError(f"template must be one of {', '.join(tender_templates.BUILTIN_KEYS)}")
    if options.bidders < 1:
        raise ValueError("the drill needs at least one bidder")
    if not 1 <= options.lots <= MAX_LOTS:
        raise ValueError(f"the drill's tender has 1 to {MAX_LOTS} lots")
    if options.lots > 1:
        if options.max_lots_won is not None and not 1 <= options.max_lots_won <= options.lots:
            raise ValueError("the win limit is between 1 and the number of lots, or none")
        doc = tender_templates.load_template(tender_templates.builtin_template(options.template))
        needed = doc.get("min_bids", 3) if isinstance(doc.get("min_bids"), int) else 3
        if not _enough_bidders(options.bidders, options.lots, options.incidents, needed):
            fewest = next(
                n
                for n in range(2, 501)
                if _enough_bidders(n, options.lots, options.incidents, needed)
            )
            raise ValueError(
                f"{options.lots} lots of the {options.template} template need at least "
                f"{fewest} bidders (each lot needs {needed} bids)"
            )
    if STAGES.index(stop_after) >= STAGES.index("panel"):
        doc = tender_templates.load_template(tender_templates.builtin_template(options.template))
        smallest = doc.get("panel_min_size")
        if not (isinstance(smallest, int) and smallest >= 3 and smallest % 2):
            smallest = MIN_PANEL_SIZE
        if options.experts < smallest or options.experts % 2 == 0:
            raise ValueError(
                f"the {options.template} template's panel needs an odd number of experts, "
                f"at least {smallest}"
            )


def _enough_bidders(bidders: int, lots: int, incidents: bool, needed: int) -> bool:
    counts = standing_per_lot(bidders, lot_references(lots), incidents)
    return bidders >= 2 and min(counts.values()) >= needed


def run(options: Options, *, stop_after: str = "award", out: Path | None = None) -> Result:
    """Run the stages up to and including `stop_after`; write the artefacts to `out`."""
    _check(options, stop_after)
    if not has_request_context():
        # Operations translate lazily and mail links are absolute URLs: give them a request.
        with current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"]):
            return run(options, stop_after=stop_after, out=out)
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    # Not for secrets: the seed makes the prices and scores reproducible.
    rng = random.Random(seed)  # noqa: S311
    drill = Drill(options=options, rng=rng, run_id=new_run_id())
    drill.notes["seed"] = str(seed)
    # Lay the timeline out backwards from its end: publication such that `stop_after` ends
    # at end_at (by default a few minutes ago).
    end_at = options.end_at or utcnow() - END_MARGIN

    sync_builtin_templates()
    db.session.commit()
    drill.template = template_document(_template_version(options.template))
    zero = end_at  # any moment: only differences matter here
    moments = drill.moments(zero)
    drill.publication = end_at - (moments[stop_after] - zero)
    start = drill.moments(drill.publication)["setup"] - timedelta(minutes=30)
    drill.say(
        f"Drill {drill.run_id}: template {options.template}, "
        + (f"{options.lots} lots, " if options.lots > 1 else "")
        + f"{options.bidders} bidders, "
        f"{options.experts} experts, seed {seed}; simulated time from {start:%Y-%m-%d %H:%M} UTC"
    )
    stopped = None
    failed = False
    reached = None
    with SimulatedClock(start) as clock:
        drill.clock = clock
        for stage in STAGES[: STAGES.index(stop_after) + 1]:
            began = time.perf_counter()
            try:
                note = STAGE_FUNCTIONS[stage](drill)
            except StageUnavailable as missing:
                db.session.rollback()
                stopped = f"stage {stage!r} is not available yet: {missing}"
                drill.say(f"  {stage:<11} STOPPED: {stopped}")
                break
            except TenderFailed as failure:
                db.session.rollback()
                failed = True
                stopped = f"the tender failed at stage {stage!r}: {failure}"
                reached = stage
                seconds = time.perf_counter() - began
                drill.timings.append(StageTime(stage, seconds, f"tender failed: {failure}"))
                drill.say(f"  {stage:<11} {seconds:7.2f} s  tender FAILED: {failure}")
                break
            except OperationError as refusal:
                db.session.rollback()
                raise RuntimeError(
                    f"stage {stage!r} was refused: {refusal.message} ({refusal.code})"
                ) from refusal
            seconds = time.perf_counter() - began
            drill.timings.append(StageTime(stage, seconds, note))
            clock.travel_to(drill.at(stage))
            # The clock signs the audit chain's head at each milestone (the drill does not
            # run the tick): the export of the tender's events ends at a signed checkpoint.
            checkpoint_audit(clock.now())
            reached = stage
            drill.say(f"  {stage:<11} {seconds:7.2f} s  {note}")
        checkpoint_audit(clock.now(), force="drill_end")
    summary = _summary(drill, reached, stopped)
    result = Result(
        tender_id=drill.tender.id if drill.tender else None,
        reference=drill.tender.reference if drill.tender else None,
        reached=reached,
        stopped=stopped,
        failed=failed,
        timings=drill.timings,
        summary=summary,
    )
    if out is not None:
        began = time.perf_counter()
        result.files = output.write_all(Path(out), drill)
        (Path(out) / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        result.files["summary.json"] = str(Path(out) / "summary.json")
        drill.say(
            f"  {'output':<11} {time.perf_counter() - began:7.2f} s  "
            f"{len(result.files)} files in {out}"
        )
    total = sum(t.seconds for t in drill.timings)
    drill.say(
        f"Drill {drill.run_id}: reached {reached or 'nothing'} in {total:.2f} s"
        + (f" ({stopped})" if stopped else "")
    )
    return result


def _summary(drill: Drill, reached: str | None, stopped: str | None) -> dict:
    tender = drill.tender
    ranking: list[dict] = []
    if tender is not None:
        db.session.expire_all()

        evaluation = db.session.get(Evaluation, tender.id)
        if evaluation is not None and evaluation.unblinded_at is not None:
            ranking = ranking_of(evaluation.scoring_json)
        bidders = drill.cast.bidders if drill.cast else []
        names = {b.company.registration_number: b.company.name for b in bidders}
        for row in ranking:
            row["company"] = names.get(row["bidder"])
    winner = ranking[0]["bidder"] if ranking and reached == "award" else None
    lots = _lots_summary(drill, reached) if drill.options.lots > 1 else None
    return {
        "tender_id": tender.id if tender else None,
        "reference": tender.reference if tender else None,
        "envelope_tender_id": f"T{tender.id}" if tender else None,
        "template": drill.options.template,
        "status": str(tender.status) if tender else None,
        "seed": int(drill.notes["seed"]),
        "bidders": drill.options.bidders,
        "experts": drill.options.experts,
        "reached": reached,
        "stopped": stopped,
        "winner": winner,
        "winner_company": ranking[0]["company"] if winner else None,
        "ranking": ranking,
        **({"lots": lots, "max_lots_won": drill.options.max_lots_won} if lots is not None else {}),
        "refusals": drill.refusals,
        "stages": [
            {"stage": t.stage, "seconds": round(t.seconds, 3), "note": t.note}
            for t in drill.timings
        ],
    }


def _lots_summary(drill: Drill, reached: str | None) -> list[dict]:
    """Each lot: its status, its winner under the award across lots (once the evaluation
    is unblinded) and its ranking.

    Status: once the lot has a result notice, the lot's (app.results.reading.lot_states):
    `candidates`, `awarded` or `failed`. Before: `open` (before the opening), `failed` (fewer
    than min_bids envelopes: not opened), `evaluating`, `ranked` (the evaluation's winner
    under the limit is known), `unsuccessful` (no winner: no compliant bid, or every one
    passed over)."""
    tender = drill.tender
    if tender is None:
        return []
    names = {b.company.registration_number: b.company.name for b in drill.cast.bidders}
    session = session_of(tender)
    failed = {item["lot"] for item in (session.failed_lots or [])} if session else set()
    opened = reached is not None and STAGES.index(reached) >= STAGES.index("opening")
    evaluation = db.session.get(Evaluation, tender.id)
    ranked = {}
    if evaluation is not None and evaluation.unblinded_at is not None:
        ranked = {lot["lot"]: lot for lot in lot_results(evaluation.lots_json)}
    published = {state["lot"].id: state["status"] for state in lot_states(tender)}
    out = []
    for lot in tender.lots:
        entry = ranked.get(lot.reference)
        ranking = entry["ranking"] if entry else []
        for row in ranking:
            row["company"] = names.get(row["bidder"])
        winner = entry["winner"] if entry else None
        if published.get(lot.id, LOT_PENDING) != LOT_PENDING:
            status = published[lot.id]
        elif lot.reference in failed:
            status = "failed"
        elif not opened:
            status = "open"
        elif entry is None:
            status = "evaluating"
        elif winner is None:
            status = "unsuccessful"
        else:
            status = "ranked"
        out.append(
            {
                "lot": lot.reference,
                "title": lot.title,
                "status": status,
                "winner": winner,
                "winner_company": names.get(winner) if winner else None,
                "winner_rank": entry["winner_rank"] if entry else None,
                "passed_over": entry["passed_over"] if entry else [],
                "ranking": ranking,
            }
        )
    return out
