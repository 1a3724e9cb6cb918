"""The drill's stages: one whole tender through the real operations, as its real actors.

Each stage is a function of the running `Drill`; it acts as staff, custodians, bidders or
experts by calling the operations the views call, commits as a view or job does, and moves
the simulated clock (app.scenario.clock) to the moment of the timeline where it happens.
A stage whose service does not exist yet raises `StageUnavailable`: the drill stops there
and says so.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from pypdf import PdfReader
from sqlalchemy import select

from app.accounts.models import User
from app.bids import operations as bid_ops
from app.bids.jobs import seal_tender
from app.bids.models import Bid, BidStatus
from app.core.errors import OperationError
from app.custody.models import TenderKey
from app.custody.operations import envelope_tender_id
from app.evaluations import operations as evaluation_ops
from app.evaluations import queries as evaluation_queries
from app.evaluations import scoring_file
from app.evaluations.signals import evaluation_finalised
from app.extensions import db, get_queue
from app.opening import jobs as opening_jobs
from app.opening import operations as opening_ops
from app.opening.models import AnonymityDecision
from app.panels import operations as panels
from app.records import member_keys
from app.records import operations as records
from app.records.models import RecordStatus
from app.results import operations as results
from app.results import reading as result_reading
from app.scenario import cast as casting
from app.scenario import documents
from app.scenario.clock import SimulatedClock
from app.tenders import operations as tender_ops
from app.tenders import participation
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderDocument, TenderStatus, TenderTemplate
from app.tenders.template_ops import sync_builtin_templates
from bidding import envelope as envelopes

# In order. `run(options, stop_after=...)` stops after the named one.
STAGES = (
    "setup",  # the centre, staff, custodians, experts
    "create",  # the draft from the built-in template
    "publish",  # TOTP re-asked; the key ceremony
    "companies",  # sign-up, approval, registration, bid bonds
    "bids",  # sealed envelopes: replaced, withdrawn, non-compliant
    "deadline",  # a late envelope refused; the sealing record
    "opening",  # k of n custodians; the opening job
    "panel",  # the draw; experts accept and declare
    "review",  # automatic compliance and commercial scores; the panel confirms
    "scoring",  # blind technical scores (seeded random); sheets locked
    "unblinded",  # identities revealed, ranking
    "record",  # finalised; the signed evaluation record
    "candidates",  # the candidates notice; the objection window
    "award",  # the award notice
)


class StageUnavailable(RuntimeError):
    """A stage's service is not (yet) part of the platform."""


class TenderFailed(RuntimeError):
    """The tender failed on the way (e.g. fewer bids than the template's minimum)."""


@dataclass
class Options:
    template: str = "goods"
    bidders: int = 5
    experts: int = 5
    seed: int | None = None
    centre_code: str | None = None  # an existing centre; default: a fresh one per run
    reference: str | None = None
    title: str | None = None
    # The real moment the last stage run ends at (default: five minutes ago); the whole
    # timeline is laid out backwards from it.
    end_at: datetime | None = None
    # One late, one replaced, one withdrawn and one non-compliant bid (needs 4 bidders).
    incidents: bool = True
    custodians: list[casting.Custodian] | None = None  # default: three of the run's own
    admin: User | None = None  # the administrator who creates the accounts (default: new)
    countersign: bool = True  # every panel member countersigns the evaluation record
    # A tender divided into this many lots (1: one competition, as before). With several,
    # companies bid for two lots each and one for every lot (`lot_plan`); one company may
    # win at most `max_lots_won` of them (None: no limit).
    lots: int = 1
    max_lots_won: int | None = 1
    echo: Callable[[str], None] = print


@dataclass
class StageTime:
    stage: str
    seconds: float
    note: str = ""


@dataclass
class Drill:
    options: Options
    rng: random.Random
    run_id: str
    template: dict = field(default_factory=dict)
    cast: casting.Cast | None = None
    tender: Tender | None = None
    clock: SimulatedClock | None = None
    publication: datetime | None = None
    envelopes: dict[int, bytes] = field(default_factory=dict)  # bid id -> envelope
    # Several lots: each lot's reference price (its ceiling or reserve), by lot reference.
    lot_amounts: dict[str, Decimal] = field(default_factory=dict)
    objected_lot: str | None = None  # several lots: the lot a company objected to
    refusals: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    timings: list[StageTime] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.options.echo(text)

    # --- the timeline --------------------------------------------------------------------

    def submission_days(self) -> int:
        days = self.template.get("submission_days_min")
        return int(
            days or current_app.config["SUBMISSION_DAYS_MIN"].get(self.template["category"], 20)
        )

    def moments(self, publication: datetime) -> dict[str, datetime]:
        """When each stage ends, from the publication time."""
        deadline = publication + timedelta(days=self.submission_days() + 1)
        grace = timedelta(seconds=current_app.config["SEALING_GRACE_SECONDS"])
        opening = deadline + timedelta(hours=1)
        evaluation = opening + timedelta(days=1)
        candidates = evaluation + timedelta(days=1)
        objection_days = results.objection_days()
        return {
            "setup": publication - timedelta(hours=3),
            "create": publication - timedelta(hours=1),
            "publish": publication,
            "companies": publication + timedelta(hours=2),
            "bids": publication + timedelta(days=3),
            "deadline": deadline + grace + timedelta(minutes=1),
            "opening": opening + timedelta(minutes=15),
            "panel": opening + timedelta(hours=3),
            "review": evaluation,
            "scoring": evaluation + timedelta(hours=3),
            "unblinded": evaluation + timedelta(hours=4),
            "record": evaluation + timedelta(hours=5),
            "candidates": candidates,
            "award": candidates + timedelta(days=objection_days, hours=1),
        }

    def at(self, stage: str, delta: timedelta = timedelta(0)) -> datetime:
        return self.moments(self.publication)[stage] + delta

    def travel(self, stage: str, delta: timedelta = timedelta(0)) -> datetime:
        return self.clock.travel_to(self.at(stage, delta))

    @property
    def deadline(self) -> datetime:
        return self.tender.submission_deadline

    @property
    def several_lots(self) -> bool:
        return self.options.lots > 1

    def lots_of(self, bidder: User) -> list[str | None]:
        """The lots a bidder bids for ([None]: a tender of one lot)."""
        if not self.several_lots:
            return [None]
        plan = lot_plan(len(self.cast.bidders), lot_references(self.options.lots))
        return plan[self.cast.bidders.index(bidder)]

    @property
    def strong_bidder(self) -> User | None:
        """Several lots: the company bidding for every lot with the strongest proposal (it
        tops every lot's ranking, so the win limit decides what it wins)."""
        return self.cast.bidders[-1] if self.several_lots and self.cast.bidders else None


def commit() -> None:
    db.session.commit()


def run_queued_jobs() -> None:
    """With Redis, work the queue here in a burst worker (in this process and context, so
    the jobs see the drill's clock); without Redis the jobs already ran inline."""
    if current_app.config["REDIS_URL"]:
        from rq import SimpleWorker

        queue = get_queue()
        SimpleWorker([queue], connection=queue.connection).work(burst=True)


# --- stages ----------------------------------------------------------------------------------


def stage_setup(drill: Drill) -> str:
    sync_builtin_templates()
    drill.cast = casting.make_cast(
        drill.run_id,
        centre_code=drill.options.centre_code,
        experts=drill.options.experts,
        custodians=drill.options.custodians,
        admin=drill.options.admin,
    )
    commit()
    cast = drill.cast
    return (
        f"centre {cast.centre.code}, staff {cast.staff.email}, "
        f"{len(cast.custodians)} custodians, {len(cast.experts)} experts"
    )


def _template_version(key: str):
    template = db.session.scalar(
        select(TenderTemplate).where(TenderTemplate.key == key, TenderTemplate.centre_id.is_(None))
    )
    if template is None:
        raise OperationError(f"no built-in template {key!r}")
    return template.latest


def reference_amount(drill: Drill) -> Decimal:
    return Decimal("500000.00") + Decimal(drill.rng.randint(0, 400)) * 1000


def lot_references(lots: int) -> list[str]:
    return [f"L{n}" for n in range(1, lots + 1)]


def lot_plan(bidders: int, lots: list[str]) -> list[list[str]]:
    """Who bids for which lot in a tender of several lots, per bidder (in order): the last
    company bids for every lot; each other company for two neighbouring lots, the i-th
    starting at lot i (so the companies spread over the lots)."""
    plan = []
    for index in range(bidders):
        if index == bidders - 1:
            plan.append(list(lots))
        else:
            first = index % len(lots)
            plan.append([lots[first], lots[(first + 1) % len(lots)]])
    return plan


def standing_per_lot(bidders: int, lots: list[str], incidents: bool) -> dict[str, int]:
    """The envelopes each lot holds at the deadline under `lot_plan` (the withdrawn one
    left out, when there are incidents)."""
    plan = lot_plan(bidders, lots)
    counts = dict.fromkeys(lots, 0)
    for chosen in plan:
        for lot in chosen:
            counts[lot] += 1
    if incidents and bidders >= 4:  # the second company withdraws its first lot's bid
        counts[plan[1][0]] -= 1
    return counts


def _default_reference(drill) -> str:
    """The drill tender's reference: a fresh centre already carries the run id in its code,
    so the reference does not repeat it (the ocid is prefix-centre-reference); in an existing
    centre the run id keeps it unique."""
    if drill.options.centre_code:
        return f"DRILL-{drill.run_id.upper()}"
    return f"{drill.publication:%Y}-001"


def stage_create(drill: Drill) -> str:
    cast, opts = drill.cast, drill.options
    version = _template_version(opts.template)
    drill.template = tender_ops.template_document(version)
    compliance = drill.template.get("compliance") or {}
    amount = reference_amount(drill)
    drill.notes["reference_amount"] = str(amount)
    lot = tender_ops.LotInput(
        opts.title or f"Drill lot ({opts.template})",
        ceiling_price=amount if compliance.get("ceiling_price_required") else None,
        reserve_price=amount if compliance.get("reserve_price_required") else None,
    )
    lots = [lot]
    budget = amount + Decimal("10000.00")
    if drill.several_lots:
        # Each lot its own competition: its own reference price (a quarter more per lot),
        # ceiling or reserve, and bid bond (1 %).
        lots = []
        for number, reference in enumerate(lot_references(opts.lots), start=1):
            lot_amount = (amount * (1 + Decimal(number - 1) / 4)).quantize(Decimal("1.00"))
            drill.lot_amounts[reference] = lot_amount
            lots.append(
                tender_ops.LotInput(
                    f"Drill lot {number} ({opts.template})",
                    budget=lot_amount + Decimal("10000.00"),
                    ceiling_price=lot_amount if compliance.get("ceiling_price_required") else None,
                    reserve_price=lot_amount if compliance.get("reserve_price_required") else None,
                    reference=reference,
                    bid_bond_amount=(lot_amount / 100).quantize(Decimal("1.00")),
                )
            )
        budget = sum((lot.budget for lot in lots), Decimal(0))
    deadline = drill.publication + timedelta(days=drill.submission_days() + 1)
    custodians = [c.user.id for c in cast.custodians]
    data = tender_ops.TenderInput(
        reference=opts.reference or _default_reference(drill),
        title=opts.title or f"Drill tender ({opts.template}, {drill.run_id})",
        description="A rehearsal tender run by `flask scenario run`.",
        budget=budget,
        bid_bond_amount=(amount / 100).quantize(Decimal("1.00")),
        publication_at=drill.publication,
        enquiry_deadline=deadline - timedelta(days=5),
        submission_deadline=deadline,
        opening_at=deadline + timedelta(hours=1),
        lots=lots,
        custodian_ids=custodians,
        custodian_threshold=2,
        multi_lot_bidding=True,
        max_lots_won=opts.max_lots_won if drill.several_lots else None,
        lot_award_rule="lot_order",
    )
    drill.tender = tender_ops.create_tender(cast.staff, cast.centre.id, version, data)
    commit()
    if drill.several_lots:
        limit = opts.max_lots_won or "any number"
        return (
            f"tender {drill.tender.id} {drill.tender.reference} (draft), lots "
            f"{', '.join(drill.lot_amounts)}; a company may win {limit} of them"
        )
    return f"tender {drill.tender.id} {drill.tender.reference} (draft)"


def stage_publish(drill: Drill) -> str:
    staff = drill.cast.staff
    drill.travel("publish")
    tender_ops.publish_tender(staff, drill.tender, casting.totp_code(staff))
    commit()
    key = db.session.get(TenderKey, drill.tender.id)
    return (
        f"published; key {key.fingerprint} split {key.threshold} of "
        f"{len(drill.cast.custodians)}; deadline {drill.deadline:%Y-%m-%d %H:%M} UTC"
    )


def stage_companies(drill: Drill) -> str:
    cast = drill.cast
    for n in range(1, drill.options.bidders + 1):
        cast.bidders.append(casting.sign_up_company(drill.run_id, n, cast.centre))
    commit()
    drill.clock.advance(timedelta(hours=1))
    for bidder in cast.bidders:
        casting.approve(cast.staff, bidder)
    commit()
    drill.clock.advance(timedelta(minutes=30))
    for bidder in cast.bidders:
        lots = drill.lots_of(bidder) if drill.several_lots else None
        registration = participation.register_for_tender(bidder, drill.tender, lots)
        # Per lot in a tender of several lots: the chosen lots' bonds together.
        bond = participation.bond_required(drill.tender, registration)
        if bond:
            participation.record_bond(
                cast.staff,
                registration,
                "payment",
                bond,
                f"BOND-{drill.run_id}-{bidder.company_id}",
            )
    commit()
    note = f"{len(cast.bidders)} companies signed up, approved, registered, bonds recorded"
    if drill.several_lots:
        spread = "; ".join(
            f"{lot}: {n} companies"
            for lot, n in standing_per_lot(
                len(cast.bidders), list(drill.lot_amounts), False
            ).items()
        )
        note += f" ({spread}; {drill.strong_bidder.company.name} bids for every lot)"
    return note


def _seal(
    drill: Drill,
    bidder: User,
    *,
    compliant: bool = True,
    variant: int = 1,
    lot: str | None = None,
) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    key = db.session.get(TenderKey, drill.tender.id)
    public = X25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))
    strong = bidder is drill.strong_bidder
    reference_price = (
        drill.lot_amounts[lot] if lot is not None else Decimal(drill.notes["reference_amount"])
    )
    fields = documents.commercial_fields(
        drill.template,
        reference_price=reference_price,
        rng=drill.rng,
        deadline=drill.deadline.date(),
        compliant=compliant,
        strong=strong,
    )
    technical = documents.technical_proposal(drill.template, variant, drill.rng, strong=strong)
    company = bidder.company
    qualifications = documents.qualification_documents(
        drill.template, company.name, company.registration_number
    )
    parts = envelopes.bid_parts(
        fields, io.BytesIO(technical), [io.BytesIO(q) for q in qualifications]
    )
    out = io.BytesIO()
    envelopes.seal(
        out,
        public,
        envelope_tender_id(drill.tender),
        bid_ops.bidder_id(company),
        parts,
        chunk_size=64 * 1024,
        lot=lot,
    )
    return out.getvalue()


def _submit(drill: Drill, bidder: User, body: bytes, lot: str | None = None) -> Bid:
    bid = bid_ops.submit_envelope(
        bidder, drill.tender, io.BytesIO(body), user_agent="drill", lot=lot
    )
    commit()
    drill.envelopes[bid.id] = body
    return bid


def incident_roles(drill: Drill) -> dict[str, User]:
    """Who does what: the first bidder replaces its bid, the second withdraws, the third
    bids above the ceiling (below the reserve, for a sale), the fourth also tries a late
    envelope after the deadline."""
    bidders = drill.cast.bidders
    if not drill.options.incidents or len(bidders) < 4:
        return {}
    return {
        "replaced": bidders[0],
        "withdrawn": bidders[1],
        "noncompliant": bidders[2],
        "late": bidders[3],
    }


def stage_bids(drill: Drill) -> str:
    roles = incident_roles(drill)
    drill.travel("publish", timedelta(days=1))
    accepted = 0
    for number, bidder in enumerate(drill.cast.bidders, start=1):
        compliant = bidder is not roles.get("noncompliant")
        for lot in drill.lots_of(bidder):
            body = _seal(drill, bidder, compliant=compliant, variant=number, lot=lot)
            _submit(drill, bidder, body, lot)
            accepted += 1
            drill.clock.advance(timedelta(minutes=7))
    lines = [f"{accepted} sealed envelopes accepted"]
    if "replaced" in roles:
        drill.travel("publish", timedelta(days=2))
        bidder = roles["replaced"]
        lot = drill.lots_of(bidder)[0]
        bid = _submit(drill, bidder, _seal(drill, bidder, variant=100, lot=lot), lot)
        lines.append(f"bid {bid.supersedes_id} replaced by bid {bid.id}" + _for_lot(lot))
    if "withdrawn" in roles:
        drill.travel("publish", timedelta(days=3) - timedelta(hours=1))
        bidder = roles["withdrawn"]
        lot = drill.lots_of(bidder)[0]
        lot_id = None if lot is None else drill.tender.lot_by_reference(lot).id
        current = next(
            b
            for b in bid_ops.company_bids(bidder, drill.tender)
            if b.status == BidStatus.SUBMITTED and b.lot_id == lot_id
        )
        bid_ops.withdraw_bid(bidder, current)
        commit()
        lines.append(f"bid {current.id} withdrawn" + _for_lot(lot))
    if "noncompliant" in roles:
        lines.append(f"{roles['noncompliant'].company.name}: priced on the wrong side of the limit")
    return "; ".join(lines)


def _for_lot(lot: str | None) -> str:
    return "" if lot is None else f" (lot {lot})"


def stage_deadline(drill: Drill) -> str:
    roles = incident_roles(drill)
    lines = []
    drill.clock.travel_to(drill.deadline + timedelta(minutes=1))
    if "late" in roles:
        bidder = roles["late"]
        lot = drill.lots_of(bidder)[0]
        body = _seal(drill, bidder, variant=200, lot=lot)
        try:
            bid_ops.submit_envelope(
                bidder, drill.tender, io.BytesIO(body), user_agent="drill", lot=lot
            )
        except OperationError as refusal:
            db.session.rollback()
            message = str(refusal.message)
            drill.refusals.append(message)
            lines.append(f"late envelope refused: {message}")
        else:  # never expected: the deadline is the server's
            db.session.rollback()
            raise RuntimeError("a late envelope was accepted")
    drill.travel("deadline")
    tender_id = drill.tender.id
    commit()  # the sealing job has a session of its own: end this one's transaction first
    record_id = seal_tender(tender_id)
    sealing = db.session.get(TenderDocument, record_id)
    lines.append(f"sealing record {sealing.sha256[:16]}…")
    return "; ".join(lines)


def stage_opening(drill: Drill) -> str:
    tender = drill.tender
    drill.clock.travel_to(tender.opening_at + timedelta(minutes=1))
    session = opening_ops.start_opening(drill.cast.staff, tender)
    tender_id = tender.id
    commit()
    seal_tender(tender_id)
    db.session.refresh(tender)
    if tender.status == TenderStatus.FAILED:
        raise TenderFailed(f"the opening found too few bids: {session.reason}")
    drill.travel("opening", -timedelta(minutes=10))
    threshold = db.session.get(TenderKey, tender.id).threshold
    custodians = [c for c in drill.cast.custodians if opening_ops.is_custodian_of(c.user, tender)]
    for custodian in custodians[:threshold]:
        ready = opening_ops.unlock_share(custodian.user, tender, custodian.passphrase)
        commit()
        drill.clock.advance(timedelta(minutes=2))
        if ready:
            opening_jobs.enqueue_opening(tender_id)
            run_queued_jobs()
    _wait_for(lambda: _status(tender) == TenderStatus.OPENED, "the opening job")
    lines = opening_ops.lines_of(tender)
    counts: dict[str, int] = {}
    for line in lines:
        counts[str(line.status)] = counts.get(str(line.status), 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if drill.several_lots:
        lot_ids = {lot.id: lot.reference for lot in tender.lots}
        per_lot: dict[str, int] = {}
        for line in lines:
            per_lot[lot_ids.get(line.lot_id, "?")] = (
                per_lot.get(lot_ids.get(line.lot_id, "?"), 0) + 1
            )
        summary += " (" + ", ".join(f"lot {lot}: {n}" for lot, n in per_lot.items()) + ")"
        failed = [item["lot"] for item in (opening_ops.session_of(tender).failed_lots or [])]
        if failed:
            summary += f"; lots failed unopened: {', '.join(failed)}"
    return f"{threshold} of {len(drill.cast.custodians)} custodians unlocked; {summary}"


def _status(tender: Tender) -> str:
    db.session.expire(tender)
    return db.session.get(Tender, tender.id).status


def _settled(condition: Callable[[], bool]) -> bool:
    """Check, then end the read transaction (SQLite: a reader blocks the job's commit)."""
    try:
        return condition()
    finally:
        db.session.commit()


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    """A job that an outside worker picked up: wait for its result."""
    give_up = time.monotonic() + seconds
    while not _settled(condition):
        if time.monotonic() > give_up:
            raise RuntimeError(f"{what} did not finish within {seconds:.0f} seconds")
        time.sleep(0.5)
        run_queued_jobs()


def stage_panel(drill: Drill) -> str:
    tender = drill.tender
    drill.travel("opening", timedelta(hours=1))
    panels.draw_tender_panel(drill.cast.staff, tender, size=drill.options.experts)
    commit()
    drill.clock.advance(timedelta(minutes=30))
    members = panels.members_of(tender)
    for member in members:
        expert = db.session.get(User, member.user_id)
        panels.accept_invitation(expert, tender)
        panels.declare_conflict(expert, tender, True, "No relationship with any bidder.")
        commit()
        drill.clock.advance(timedelta(minutes=3))
    return f"panel of {len(members)} drawn; all accepted and declared no conflict"


def _members(drill: Drill) -> list[User]:
    return [db.session.get(User, m.user_id) for m in panels.members_of(drill.tender)]


def stage_review(drill: Drill) -> str:
    tender = drill.tender
    drill.travel("review", -timedelta(hours=2))
    evaluation = evaluation_ops.start_evaluation(drill.cast.staff, tender)
    commit()
    chair = db.session.get(User, evaluation.chair_id)
    drill.travel("review", -timedelta(hours=1))
    recorded = 0
    for evaluated in evaluation_queries.evaluated_bids(tender):
        for check in scoring_file.manual_checks(tender):
            evaluation_ops.record_check(
                chair, tender, evaluated.bid_id, check, True, "Checked (drill)."
            )
            recorded += 1
        if evaluated.anonymity_decision == AnonymityDecision.PENDING:
            evaluation_ops.decide_anonymity(
                chair, tender, evaluated.code, True, "Harmless (drill)."
            )
    commit()
    drill.travel("review")
    evaluation_ops.confirm_review(chair, tender)
    commit()
    lots = scoring_file.stored_lots(evaluation_queries.evaluation_of(tender))
    if lots is not None:
        # Several lots: each lot's review file.
        files = [(entry["lot"], entry["scoring_file"]) for entry in lots["lots"]]
    else:
        files = [(None, evaluation_queries.review_result(tender) or {})]
    counts = []
    for lot, scored in files:
        bids = (scored.get("result") or {}).get("bids") or []
        passed = sum(1 for b in bids if _passes_review(b))
        counts.append(f"{passed} of {len(bids)} bids pass the review{_in_lot(lot)}")
    return f"chair seat {_seat_of(drill, chair)}; {recorded} checks recorded; " + ", ".join(counts)


def _in_lot(lot: str | None) -> str:
    return "" if lot is None else f" in lot {lot}"


def _passes_review(bid: dict) -> bool:
    """Compliant, or failing only the technical pass marks that blind scoring decides later
    (the review file holds no technical score yet)."""
    if bid.get("compliant"):
        return True
    return all(
        r.get("code") == "check_not_recorded"
        and str((r.get("params") or {}).get("check", "")).startswith("technical_pass_")
        for r in bid.get("reasons") or []
    )


def _compliant_count(scoring_json: str | None) -> tuple[int, int]:
    bids = (json.loads(scoring_json or "{}").get("result") or {}).get("bids") or []
    return sum(1 for b in bids if b.get("compliant")), len(bids)


def _seat_of(drill: Drill, user: User) -> int | None:
    member = panels.member_of(user, drill.tender)
    return member.position if member else None


def _random_score(
    rng: random.Random,
    maximum: Decimal,
    step: Decimal,
    band: tuple[float, float] = (0.5, 0.9),
) -> Decimal:
    """A score between 50 % and 90 % of the maximum (or the given band), in the criterion's
    step."""
    steps = int(maximum / step)
    low, high = max(1, int(steps * band[0])), max(1, int(steps * band[1]))
    return step * rng.randint(low, min(high, steps - 1) if steps > 1 else 1)


# What the experts of a drill of several lots read in a proposal: the strongest company's
# promises more (documents.STRONG_LINE) and scores in the upper band; the others lower.
STRONG_BAND = (0.85, 0.95)
REGULAR_BAND = (0.5, 0.8)


def _proposal_text(expert: User, tender: Tender, code: str) -> str:
    """The stripped technical part behind `code`, as the expert reads it (its text)."""
    row = evaluation_ops.technical_part(expert, tender, code)
    with blob_store().open(row.technical_sha256) as stream:
        reader = PdfReader(io.BytesIO(stream.read()))
        return "\n".join(page.extract_text() or "" for page in reader.pages)


def _band(drill: Drill, expert: User, code: str, has_document: bool) -> tuple[float, float]:
    if not drill.several_lots:
        return (0.5, 0.9)
    if has_document and documents.STRONG_LINE in _proposal_text(expert, drill.tender, code):
        return STRONG_BAND
    return REGULAR_BAND


def stage_scoring(drill: Drill) -> str:
    tender = drill.tender
    drill.travel("review", timedelta(minutes=30))
    experts = _members(drill)
    codes = 0
    for expert in experts:
        sheet = evaluation_ops.my_sheet(expert, tender)
        entries = []
        for bid in sheet.bids:
            band = _band(drill, expert, bid.code, bid.has_document)
            for criterion in sheet.criteria:
                value = _random_score(drill.rng, criterion.max_points, criterion.step, band)
                reason = "Complete answer." if value in (0, criterion.max_points) else ""
                entries.append(
                    evaluation_ops.ScoreEntry(bid.code, criterion.key, str(value), reason)
                )
        codes = len(sheet.bids)
        evaluation_ops.save_scores(expert, tender, entries)
        commit()
        evaluation_ops.lock_sheet(expert, tender)
        commit()
        drill.clock.advance(timedelta(minutes=20))
    reasons = 0
    for code, criterion, _expert in evaluation_queries.open_outliers(tender):
        for expert in experts:
            try:
                evaluation_ops.give_outlier_reason(
                    expert, tender, code, criterion, "My reading of the proposal (drill)."
                )
                reasons += 1
            except OperationError:
                db.session.rollback()
    commit()
    return f"{len(experts)} experts scored {codes} bids blind and locked; {reasons} outlier reasons"


def _chair(drill: Drill) -> User:
    return db.session.get(User, evaluation_queries.evaluation_of(drill.tender).chair_id)


def stage_unblinded(drill: Drill) -> str:
    drill.travel("unblinded")
    chair = _chair(drill)
    evaluation = evaluation_ops.unblind(chair, drill.tender)
    commit()
    drawn = ""
    if evaluation_queries.needs_lot_draw(evaluation):
        # Bids the tie-breaks left level (e.g. a sale without technical scores, at the same
        # price): the chair draws lots, as the rules say.
        drill.clock.advance(timedelta(minutes=5))
        evaluation = evaluation_ops.draw_lots(chair, drill.tender)
        commit()
        drawn = "; tie settled by a lot draw"
    if evaluation.lots_json:
        return _unblinded_lots(drill, evaluation, drawn)
    compliant, total = _compliant_count(evaluation.scoring_json)
    ranking = ranking_of(evaluation.scoring_json)
    if not ranking:
        # What staff do when the panel found no compliant bid: declare the tender failed.
        reasons = _first_reasons(evaluation.scoring_json)
        results.declare_failed(drill.cast.staff, drill.tender, "no_compliant_bid")
        commit()
        raise TenderFailed(f"no compliant bid ({reasons})")
    return (
        f"identities revealed; {compliant} of {total} bids compliant{drawn}; "
        f"rank 1: {ranking[0]['bidder']}"
    )


def _unblinded_lots(drill: Drill, evaluation, drawn: str) -> str:
    """Several lots: each lot's ranking and the award across lots under the win limit."""
    lots = lot_results(evaluation.lots_json)
    if not any(lot["winner"] for lot in lots):
        reasons = "; ".join(
            f"lot {lot['lot']}: {_first_reasons(json.dumps(lot['scoring_file']))}" for lot in lots
        )
        results.declare_failed(drill.cast.staff, drill.tender, "no_compliant_bid")
        commit()
        raise TenderFailed(f"no compliant bid in any lot ({reasons})")
    parts = []
    for lot in lots:
        compliant, total = _compliant_count(json.dumps(lot["scoring_file"]))
        first = lot["ranking"][0]["bidder"] if lot["ranking"] else "none"
        parts.append(
            f"lot {lot['lot']}: {compliant} of {total} compliant, rank 1 {first}, "
            f"winner under the limit {lot['winner'] or 'none'}"
        )
    return "identities revealed" + drawn + "; " + "; ".join(parts)


def lot_results(lots_json: str | None) -> list[dict]:
    """Each lot of an evaluation of several lots: its reference, ranking (as `ranking_of`),
    scored file, and its winner and passed-over companies under the award across lots."""
    if not lots_json:
        return []
    document = json.loads(lots_json)
    awarded = {entry["lot"]: entry for entry in document["award"]["result"]["lots"]}
    out = []
    for entry in document["lots"]:
        award = awarded.get(entry["lot"], {})
        out.append(
            {
                "lot": entry["lot"],
                "ranking": ranking_of(json.dumps(entry["scoring_file"])),
                "scoring_file": entry["scoring_file"],
                "winner": award.get("winner"),
                "winner_rank": award.get("rank"),
                "passed_over": award.get("passed_over") or [],
            }
        )
    return out


def _first_reasons(scoring_json: str | None) -> str:
    bids = (json.loads(scoring_json or "{}").get("result") or {}).get("bids") or []
    reasons = {r.get("code", "?") for b in bids for r in b.get("reasons") or []}
    return ", ".join(sorted(reasons)) or "no reasons given"


def ranking_of(scoring_json: str | None) -> list[dict]:
    if not scoring_json:
        return []
    result = json.loads(scoring_json).get("result") or {}
    rows = [b for b in result.get("bids") or [] if b.get("rank") is not None]
    rows.sort(key=lambda b: b["rank"])
    return [
        {
            "rank": b["rank"],
            "bidder": b["id"],
            "total": b.get("total"),
            "compliant": b.get("compliant"),
        }
        for b in rows
    ]


def stage_record(drill: Drill) -> str:
    if not evaluation_finalised.receivers:
        raise StageUnavailable("no finalise hook makes the signed evaluation record yet")
    tender = drill.tender
    drill.travel("record", -timedelta(minutes=50))
    evaluation_ops.finalise(_chair(drill), tender)
    commit()
    run_queued_jobs()
    done = (RecordStatus.SIGNED, RecordStatus.COMPLETE, RecordStatus.FAILED)

    def finished() -> bool:
        db.session.expire_all()
        record = records.current_record(tender)
        return record is not None and record.status in done

    _wait_for(finished, "the evaluation record job", seconds=600)
    record = records.current_record(tender)
    if record.status == RecordStatus.FAILED:
        raise RuntimeError(f"the evaluation record job failed: {record.error}")
    signed = 0
    if drill.options.countersign:
        # Each panel member enrols a key of their own and countersigns with it (a fresh TOTP
        # code each time); the drill plays their browsers (`_countersign_with_own_key`).
        for member in records.signing_members(tender):
            drill.clock.advance(timedelta(minutes=5))
            expert = db.session.get(User, member.user_id)
            _countersign_with_own_key(expert, record)
            signed += 1
    db.session.refresh(record)
    pages = record.pages or "?"
    return f"evaluation record {record.status} ({pages} pages, {signed} countersignatures)"


def _countersign_with_own_key(expert: User, record) -> None:
    """What the member's browser does (static/js/member_key.js): make an ECDSA P-256 key,
    enrol it with a signed request, then sign the signed attributes the server prepares.
    The key lives only in this function, as it would only in the browser."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    nonce = records.issue_enrolment_nonce(expert).nonce
    commit()
    message = member_keys.enrolment_message(expert.id, nonce, spki)
    proof = member_keys.sign_raw(key, message)
    records.enrol_signing_key(expert, casting.totp_code(expert), spki, nonce, proof)
    commit()
    pending = records.prepare_countersignature(expert, record, casting.totp_code(expert))
    commit()
    value = member_keys.sign_raw(key, bytes(pending.signed_attrs))
    records.finish_countersignature(expert, record, pending.id, value)
    commit()


def stage_candidates(drill: Drill) -> str:
    drill.travel("candidates")
    notice = results.publish_candidates(drill.cast.staff, drill.tender)
    commit()
    run_queued_jobs()
    deadline = getattr(notice, "objection_deadline", None)
    if drill.several_lots:
        states = result_reading.lot_states(drill.tender)
        published = ", ".join(f"lot {s['lot'].reference}: {s['status']}" for s in states)
        note = f"{published}; objections until {deadline:%Y-%m-%d %H:%M} UTC"
        objection = _object_to_one_lot(drill)
        return note + (f"; {objection}" if objection else "")
    return (
        f"candidates published; objections until {deadline:%Y-%m-%d %H:%M} UTC"
        if deadline
        else "candidates published"
    )


def _object_to_one_lot(drill: Drill) -> str | None:
    """Several lots, with incidents: the lowest-ranked company of the second lot objects to
    that lot's candidates (its award waits for the decision; the other lots' do not)."""
    if not drill.options.incidents or drill.objected_lot is not None:
        return None
    evaluation = evaluation_queries.evaluation_of(drill.tender)
    lots = lot_results(evaluation.lots_json)
    lot = lots[1] if len(lots) > 1 else None
    losers = [r["bidder"] for r in (lot["ranking"] if lot else []) if r["bidder"] != lot["winner"]]
    if not losers:
        return None
    by_code = {b.company.registration_number: b for b in drill.cast.bidders}
    objector = by_code[losers[-1]]
    drill.clock.advance(timedelta(hours=2))
    results.file_objection(
        objector,
        drill.tender,
        "The winner's delivery period cannot be met (drill).",
        [],
        drill.tender.lot_by_reference(lot["lot"]),
    )
    commit()
    drill.objected_lot = lot["lot"]
    return f"{objector.company.name} objects to lot {lot['lot']}"


def stage_award(drill: Drill) -> str:
    drill.travel("award")
    if drill.several_lots:
        # Each lot is awarded on its own once its objection window is over: the lots
        # without an open objection first; the objected lot once staff decided.
        awarded, lines = [], []
        for state in result_reading.lot_states(drill.tender):
            if state["status"] != result_reading.LOT_CANDIDATES:
                continue
            if state["open_objections"]:
                continue
            results.publish_award(drill.cast.staff, drill.tender, state["lot"])
            commit()
            awarded.append(state["lot"].reference)
            drill.clock.advance(timedelta(minutes=5))
        lines.append(f"award notices published for lots {', '.join(awarded)}")
        if drill.objected_lot is not None:
            lot = drill.tender.lot_by_reference(drill.objected_lot)
            try:
                results.publish_award(drill.cast.staff, drill.tender, lot)
            except OperationError as refusal:
                db.session.rollback()
                drill.refusals.append(str(refusal.message))
                waits = str(refusal.message).rstrip(".")
                lines.append(f"lot {lot.reference}'s award waits: {waits}")
            else:  # never expected: an open objection holds up its lot's award
                db.session.rollback()
                raise RuntimeError("a lot with an open objection was awarded")
            drill.clock.advance(timedelta(hours=1))
            for objection in result_reading.open_objections(drill.tender):
                results.decide_objection(
                    drill.cast.staff,
                    objection,
                    "dismissed",
                    "The delivery period offered is within the tender's limit (drill).",
                )
            commit()
            results.publish_award(drill.cast.staff, drill.tender, lot)
            commit()
            lines.append(f"objection dismissed; lot {lot.reference} awarded")
        run_queued_jobs()
        lines.append(f"tender {_status(drill.tender)}")
        return "; ".join(lines)
    results.publish_award(drill.cast.staff, drill.tender)
    commit()
    run_queued_jobs()
    return "award notice published"


STAGE_FUNCTIONS: dict[str, Callable[[Drill], str]] = {
    "setup": stage_setup,
    "create": stage_create,
    "publish": stage_publish,
    "companies": stage_companies,
    "bids": stage_bids,
    "deadline": stage_deadline,
    "opening": stage_opening,
    "panel": stage_panel,
    "review": stage_review,
    "scoring": stage_scoring,
    "unblinded": stage_unblinded,
    "record": stage_record,
    "candidates": stage_candidates,
    "award": stage_award,
}
