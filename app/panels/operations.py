"""Panel operations: who is eligible, the draw, invitations, declarations and removals.

Every function that changes something takes the acting user, checks access first, flushes,
audits and never commits. The draw itself is `evaluation.draw`; this module only gathers
its inputs (the eligible list after exclusions, the seed from the sealing record) and stores
what a replay needs.

Rules (China's regulations, as configurable defaults):
- Size: odd, at least `MIN_PANEL_SIZE` (5), default 5; a template may set
  `panel_min_size: 3` (or a larger odd minimum) — see `panel_size_rule`.
- Two-thirds: at least two-thirds of the seats (rounded up) go to technical or economic
  experts, i.e. every specialty of `SPECIALTIES` except those in `NON_TECHNICAL` (only
  ``legal``). Quotas that break it are refused; the draw fills the seats the quotas leave
  so that it holds (see evaluation/draw.py), or is refused saying what is missing.
- Exclusions before the draw, each recorded with its reasons on the draw
  (`EXCLUSION_REASONS`): employed by a bidder (by name or alias), a declared relationship
  with a bidder, or a seat (accepted, not removed) on a panel drawn within
  `PANEL_COOLDOWN_DAYS` for a tender of the same procuring entity.
- A seat emptied before scoring locks (a declined invitation, a declared conflict, a
  removal; "locks" = the evaluation reaches UNBLINDED) is refilled from the same seed's
  stream for the same kind of seat and recorded in `PanelDraw.redraws`; when nobody fits,
  the attempt is recorded too and the seat stays vacant."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Select, func, literal, or_, select
from sqlalchemy.orm import contains_eager

from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.models import Bid
from app.bids.operations import sealing_record_of
from app.companies.models import Company, CompanyAlias
from app.core.errors import Conflict, OperationError
from app.core.text import clean_name
from app.core.types import utcnow
from app.extensions import db
from app.panels.models import (
    SPECIALTIES,
    ExpertProfile,
    ExpertRelationship,
    MemberStatus,
    PanelDraw,
    PanelMember,
)
from app.panels.signals import scoring_lock_asked, seat_vacated
from app.permissions import Permission, can, require
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderRegistration, TenderStatus
from app.tenders.operations import template_document
from app.tenders.suspension import refuse_if_suspended
from evaluation.draw import (
    CANONICAL_JSON,
    COMMITMENT_RULE,
    NON_TECHNICAL,
    DrawError,
    ExpertCandidate,
    commitment,
    draw_panel,
    draw_replacement,
    required_core_seats,
    seed_from,
)

MIN_PANEL_SIZE = 5  # the rules' minimum; the size must also be odd
DEFAULT_PANEL_SIZE = 5
TEMPLATE_MIN_PANEL_SIZE = 3  # the smallest a template may allow (`panel_min_size`)
# Why an expert of the pool was left out of a draw (stored on PanelDraw.excluded).
EXCLUSION_REASONS = ("bidder_employer", "bidder_relationship", "recent_service")
# Why a seat was emptied (PanelDraw.redraws[*]["cause"]).
VACATED_CAUSES = ("declined", "conflict", "removed")
# A panel is drawn once the bids are in and sealed, before the evaluation starts.
DRAWABLE_STATUSES = frozenset({TenderStatus.CLOSED, TenderStatus.OPENED})


# --- reading ------------------------------------------------------------------------------


def draw_of(tender: Tender) -> PanelDraw | None:
    return db.session.scalar(select(PanelDraw).where(PanelDraw.tender_id == tender.id))


def members_of(tender: Tender) -> list[PanelMember]:
    return list(
        db.session.scalars(
            select(PanelMember)
            .where(PanelMember.tender_id == tender.id)
            .order_by(PanelMember.position, PanelMember.id)
        )
    )


def panel_people(tender: Tender, **_: object) -> list[User]:
    """The experts invited to or sitting on the panel (`people_involved_asked`: they hear
    about a suspension of the tender)."""
    return list(
        db.session.scalars(
            select(User)
            .join(PanelMember, PanelMember.user_id == User.id)
            .where(
                PanelMember.tender_id == tender.id,
                PanelMember.status.in_((MemberStatus.INVITED, MemberStatus.ACCEPTED)),
            )
            .order_by(User.id)
        )
    )


def member_of(user: User, tender: Tender) -> PanelMember | None:
    return db.session.scalar(
        select(PanelMember).where(
            PanelMember.tender_id == tender.id, PanelMember.user_id == user.id
        )
    )


def invitations_of(user: User) -> list[PanelMember]:
    return list(
        db.session.scalars(
            select(PanelMember)
            .where(PanelMember.user_id == user.id)
            .order_by(PanelMember.created_at.desc())
        )
    )


# The result is decided: the panel's membership is no longer confidential.
RESULT_DECIDED = frozenset({TenderStatus.AWARDED, TenderStatus.FAILED})


def full_draw(draw: PanelDraw) -> dict:
    """The full draw file: enough to replay the draw, user ids only, never names; with the
    nonce that salts the commitment published before the result."""
    return {
        "tender_id": draw.tender_id,
        "state": "full",
        "size": draw.size,
        "quotas": draw.quotas,
        "seed": draw.seed,
        "seed_inputs": _seed_inputs(draw),
        "seed_rule": "sha256(bytes.fromhex(merkle_root) + draw_time.encode('utf-8'))",
        "eligible": draw.eligible,
        "non_technical": sorted(NON_TECHNICAL),
        "two_thirds_rule": "at least ceil(2 * size / 3) seats for experts with a specialty "
        "outside non_technical",
        "redraws": [
            {"vacated": _vacated_id(r), "cause": r.get("cause", "declined")} for r in draw.redraws
        ],
        # How many experts each exclusion reason left out (who, only staff see).
        "excluded": {
            reason: sum(reason in e["reasons"] for e in draw.excluded or [])
            for reason in EXCLUSION_REASONS
        },
        "nonce": _nonce(draw),
        "replay": "evaluation.draw.replay(eligible, size, quotas, seed, redraws, non_technical)",
        "commitment_rule": COMMITMENT_RULE,
        "canonical_json": CANONICAL_JSON,
    }


def draw_commitment(draw: PanelDraw) -> dict:
    """What is published before the result: the seed and its inputs, and salted hashes of
    the eligible list and of the outcome; no expert id (not even of a declined seat)."""
    committed = commitment(full_draw(draw))
    return {
        "tender_id": draw.tender_id,
        "state": "commitment",
        "size": draw.size,
        "quotas": draw.quotas,
        "seed": draw.seed,
        "seed_inputs": _seed_inputs(draw),
        "seed_rule": "sha256(bytes.fromhex(merkle_root) + draw_time.encode('utf-8'))",
        "non_technical": sorted(NON_TECHNICAL),
        "redraw_count": committed["redraw_count"],
        "eligible_sha256": committed["eligible_sha256"],
        "outcome_sha256": committed["outcome_sha256"],
        "commitment_rule": COMMITMENT_RULE,
        "canonical_json": CANONICAL_JSON,
        "hashed": {
            "eligible": "[{id, specialties}] sorted by id, specialties sorted",
            "outcome": "evaluation.draw.replay(...) after the first redraw_count refills: "
            "{initial, drawn_for, panel}",
        },
        "full_draw": "published here with the award or failure notice; check this "
        "commitment with: python -m evaluation draw-replay FULL.json --commitment THIS.json",
    }


def public_draw(draw: PanelDraw) -> dict:
    """The public draw.json: the commitment until the result is decided (award or failure
    notice), then the full draw file. The panel's membership stays confidential until then."""
    tender = db.session.get(Tender, draw.tender_id)
    if tender is not None and tender.status in RESULT_DECIDED:
        return full_draw(draw)
    return draw_commitment(draw)


def _seed_inputs(draw: PanelDraw) -> dict:
    inputs = draw.seed_inputs or {}
    return {"merkle_root": inputs.get("merkle_root"), "draw_time": inputs.get("draw_time")}


def _nonce(draw: PanelDraw) -> str:
    """The commitment's salt, kept with the seed inputs at draw time ("" for draws made
    before commitments were published)."""
    return str((draw.seed_inputs or {}).get("commitment_nonce", ""))


def _vacated_id(redraw: Mapping) -> int:
    return int(redraw["vacated"] if "vacated" in redraw else redraw["declined"])


def refill_of(draw: PanelDraw, member: PanelMember) -> dict | None:
    """The recorded refill attempt for the seat `member` left (None: none was attempted,
    e.g. because scoring had locked); its "replacement" is None when nobody fit."""
    return next((r for r in draw.redraws if _vacated_id(r) == member.user_id), None)


def vacant_positions(tender: Tender) -> list[int]:
    """Seats nobody holds now (every member drawn for it declined or was removed)."""
    draw = draw_of(tender)
    if draw is None:
        return []
    held = {
        m.position
        for m in members_of(tender)
        if m.status in (MemberStatus.INVITED, MemberStatus.ACCEPTED)
    }
    return [p for p in range(1, draw.size + 1) if p not in held]


def panel_size_rule(tender: Tender) -> tuple[int, int]:
    """(smallest allowed size, default size) for the tender: 5 and 5 unless its template
    sets `panel_min_size` (3, or a larger odd number)."""
    try:
        document = template_document(tender.template_version)
    except Exception:  # a template that does not load cannot lower the rule
        document = {}
    value = document.get("panel_min_size") if isinstance(document, dict) else None
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= TEMPLATE_MIN_PANEL_SIZE
        and value % 2
    ):
        return value, max(value, DEFAULT_PANEL_SIZE)
    return MIN_PANEL_SIZE, DEFAULT_PANEL_SIZE


# --- eligibility --------------------------------------------------------------------------


def _interested_companies(tender: Tender) -> set[int]:
    """Every company that registered for the tender or sent an envelope to it."""
    registered = db.session.scalars(
        select(TenderRegistration.company_id).where(TenderRegistration.tender_id == tender.id)
    )
    bidding = db.session.scalars(select(Bid.company_id).where(Bid.tender_id == tender.id))
    return set(registered) | set(bidding)


def _normalised(name: str) -> str:
    return " ".join(name.casefold().split())


def _recent_service(tender: Tender, now: datetime) -> set[int]:
    """Experts who sat (accepted, not removed) on the panel of another tender of the same
    procuring entity (normalised; none when empty) drawn within PANEL_COOLDOWN_DAYS."""
    entity = _normalised(tender.procuring_entity or "")
    if not entity:
        return set()
    since = now - timedelta(days=current_app.config.get("PANEL_COOLDOWN_DAYS", 180))
    rows = db.session.execute(
        select(PanelMember.user_id, Tender.procuring_entity)
        .join(PanelDraw, PanelDraw.tender_id == PanelMember.tender_id)
        .join(Tender, Tender.id == PanelMember.tender_id)
        .where(
            PanelMember.status == MemberStatus.ACCEPTED,
            PanelMember.tender_id != tender.id,
            PanelDraw.drawn_at >= since,
            Tender.procuring_entity != "",
        )
    ).all()
    return {user_id for user_id, other in rows if _normalised(other) == entity}


def screen_experts(
    tender: Tender, now: datetime | None = None
) -> tuple[list[ExpertCandidate], list[dict]]:
    """The tender centre's pool and the shared city pool, minus unavailable experts and
    disabled accounts, split into the eligible (sorted by user id: the order is part of what
    the draw publishes) and the excluded with their reasons ([{"id", "reasons"}], sorted by
    id): employed by a company interested in the tender (registered or bidding, by name or
    alias), a declared relationship with one, or recent service for the same procuring
    entity."""
    now = now or utcnow()
    companies = _interested_companies(tender)
    names = {
        _normalised(n)
        for n in db.session.scalars(select(Company.name).where(Company.id.in_(companies)))
    } | {
        _normalised(a)
        for a in db.session.scalars(
            select(CompanyAlias.alias).where(CompanyAlias.company_id.in_(companies))
        )
    }
    related = set(
        db.session.scalars(
            select(ExpertRelationship.user_id).where(ExpertRelationship.company_id.in_(companies))
        )
    )
    rows = db.session.execute(
        select(ExpertProfile, User)
        .join(User, User.id == ExpertProfile.user_id)
        .where(
            User.role == Role.EXPERT,
            User.is_enabled.is_(True),
            ExpertProfile.available.is_(True),
            or_(ExpertProfile.centre_id == tender.centre_id, ExpertProfile.centre_id.is_(None)),
        )
        .order_by(User.id)
    ).all()
    recent = _recent_service(tender, now)
    eligible: list[ExpertCandidate] = []
    excluded: list[dict] = []
    for profile, user in rows:
        reasons = [
            reason
            for reason, applies in (
                ("bidder_employer", _normalised(profile.employer) in names),
                ("bidder_relationship", user.id in related),
                ("recent_service", user.id in recent),
            )
            if applies
        ]
        if reasons:
            excluded.append({"id": user.id, "reasons": reasons})
        else:
            eligible.append(ExpertCandidate(user.id, profile.specialty_set))
    return eligible, excluded


def eligible_experts(tender: Tender) -> list[ExpertCandidate]:
    """The experts a draw made now would draw from (see `screen_experts`)."""
    return screen_experts(tender)[0]


# --- the draw -----------------------------------------------------------------------------


def merkle_root_of(tender: Tender) -> str:
    record = sealing_record_of(tender)
    if record is None:
        raise Conflict(
            _l("The tender has no sealing record yet: the panel is drawn after sealing."),
            code="not_sealed",
        )
    with blob_store().open(record.sha256) as stream:
        document = json.load(stream)
    return document["record"]["root"]


def _check_quotas(
    size: int, quotas: Mapping[str, int], min_size: int = MIN_PANEL_SIZE
) -> dict[str, int]:
    if size < min_size or size % 2 == 0:
        raise OperationError(
            _l("The panel needs an odd number of members, at least %(n)s.", n=min_size),
            code="bad_size",
        )
    clean = {}
    for specialty, count in quotas.items():
        if specialty not in SPECIALTIES:
            raise OperationError(
                _l("Unknown specialty: %(name)s.", name=specialty), code="bad_quota"
            )
        if count < 0:
            raise OperationError(_l("A quota cannot be negative."), code="bad_quota")
        if count:
            clean[specialty] = count
    if sum(clean.values()) > size:
        raise OperationError(
            _l("The quotas ask for more seats than the panel has."), code="bad_quota"
        )
    other = sum(n for key, n in clean.items() if key in NON_TECHNICAL)
    required = required_core_seats(size)
    if other > size - required:
        raise OperationError(
            _l(
                "At least %(required)s of the %(size)s seats must go to technical or economic "
                "experts: quotas for other specialties (law) may take at most %(free)s "
                "seats, not %(other)s.",
                required=required,
                size=size,
                free=size - required,
                other=other,
            ),
            code="two_thirds",
        )
    return clean


def _draw_refusal(error: DrawError) -> Conflict:
    """The draw library's refusal, worded for people."""
    params = error.params
    if error.code == "two_thirds_pool":
        message = _l(
            "The panel cannot be drawn: the two-thirds rule needs %(needed)s more technical or "
            "economic experts once the quotas are filled, and only %(available)s are "
            "eligible.",
            needed=params["needed"],
            available=params["available"],
        )
    elif error.code == "too_few":
        message = _l(
            "The panel cannot be drawn: only %(eligible)s experts are eligible for a panel "
            "of %(size)s.",
            eligible=params["eligible"],
            size=params["size"],
        )
    elif error.code == "specialty":
        message = _l(
            "The panel cannot be drawn: not enough eligible experts in %(specialty)s for its "
            "quota of %(quota)s.",
            specialty=params["specialty"],
            quota=params["quota"],
        )
    else:
        message = _l("The panel cannot be drawn: %(reason)s.", reason=str(error))
    return Conflict(message, code="cannot_draw")


def draw_tender_panel(
    actor: User,
    tender: Tender,
    size: int | None = None,
    quotas: Mapping[str, int] | None = None,
) -> PanelDraw:
    """Draw the panel (size None: the tender's default). Refusals store nothing."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    if tender.status not in DRAWABLE_STATUSES:
        raise Conflict(
            _l("A panel is drawn once the tender is closed or opened."), code="bad_status"
        )
    if draw_of(tender) is not None:
        raise Conflict(_l("This tender's panel has already been drawn."), code="already_drawn")
    min_size, default_size = panel_size_rule(tender)
    size = default_size if size is None else size
    clean = _check_quotas(size, quotas or {}, min_size)
    root = merkle_root_of(tender)
    now = utcnow()
    draw_time = now.isoformat()
    seed = seed_from(root, draw_time)
    eligible, excluded = screen_experts(tender, now)
    try:
        result = draw_panel(eligible, size, clean, seed, NON_TECHNICAL)
    except DrawError as error:
        raise _draw_refusal(error) from error
    draw = PanelDraw(
        tender_id=tender.id,
        size=size,
        quotas=clean,
        seed=seed.hex(),
        # The nonce salts the commitment published until the result (see `draw_commitment`).
        seed_inputs={
            "merkle_root": root,
            "draw_time": draw_time,
            "commitment_nonce": secrets.token_hex(32),
        },
        eligible=[{"id": c.id, "specialties": sorted(c.specialties)} for c in eligible],
        excluded=excluded,
        redraws=[],
        counter=result.counter,
        drawn_at=now,
        drawn_by_id=actor.id,
    )
    db.session.add(draw)
    for position, (user_id, specialty) in enumerate(
        zip(result.members, result.drawn_for, strict=True), start=1
    ):
        db.session.add(
            PanelMember(
                tender_id=tender.id, user_id=user_id, position=position, drawn_for=specialty
            )
        )
    db.session.flush()
    append_event(
        "panel.drawn",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "seed": draw.seed,
            "seed_inputs": draw.seed_inputs,
            "size": size,
            "quotas": clean,
            "non_technical": sorted(NON_TECHNICAL),
            "eligible": [c.id for c in eligible],
            "excluded": excluded,
            "members": list(result.members),
            "drawn_for": list(result.drawn_for),
        },
    )
    return draw


def scoring_locked(tender: Tender) -> bool:
    """Whether technical scoring has locked (the evaluation stage answers: unblinded or
    finalised). Until then an emptied seat is refilled."""
    return any(locked for _receiver, locked in scoring_lock_asked.send(tender))


def _vacate(tender: Tender, member: PanelMember, reason: str, cause: str) -> dict:
    """Take `member` off the panel for `reason` and refill the seat (see `_refill`); the
    evaluation stage follows (`seat_vacated`: its sheets no longer count)."""
    member.status = MemberStatus.REMOVED
    member.removed_reason = reason
    refill = _refill(tender, member, cause)
    db.session.flush()
    seat_vacated.send(tender, member=member)
    return refill


def _refill(tender: Tender, vacated: PanelMember, cause: str) -> dict:
    """Refill the seat `vacated` just left, continuing the same seed's stream from the
    published eligible list (so the refill is replayable), for the same kind of seat.
    Returns what the audit event records: {"replacement", "counter", "vacant"} where
    "vacant" is None (refilled), "scoring_locked" or "none_eligible"."""
    draw = draw_of(tender)
    if scoring_locked(tender):
        return {"replacement": None, "counter": None, "vacant": "scoring_locked"}
    candidates = [ExpertCandidate(e["id"], frozenset(e["specialties"])) for e in draw.eligible]
    already = {m.user_id for m in members_of(tender)}
    entry = {"vacated": vacated.user_id, "cause": cause, "counter": draw.counter}
    try:
        new_id, counter = draw_replacement(
            candidates,
            already,
            vacated.drawn_for,
            bytes.fromhex(draw.seed),
            draw.counter,
            NON_TECHNICAL,
        )
    except DrawError:
        # Nobody fit for the seat is left: the attempt is recorded (a replay finds nobody
        # too) and the seat stays vacant for staff to resolve.
        draw.redraws = [*draw.redraws, {**entry, "replacement": None}]
        return {"replacement": None, "counter": entry["counter"], "vacant": "none_eligible"}
    draw.redraws = [*draw.redraws, {**entry, "replacement": new_id}]
    draw.counter = counter
    db.session.add(
        PanelMember(
            tender_id=tender.id,
            user_id=new_id,
            position=vacated.position,
            drawn_for=vacated.drawn_for,
        )
    )
    return {"replacement": new_id, "counter": entry["counter"], "vacant": None}


def _own_invitation(actor: User, tender: Tender) -> PanelMember:
    member = member_of(actor, tender)
    if member is None or actor.role != Role.EXPERT:
        raise OperationError(
            _l("You are not on this tender's panel."), code="not_found", status=404
        )
    return member


def accept_invitation(actor: User, tender: Tender) -> PanelMember:
    member = _own_invitation(actor, tender)
    if member.status != MemberStatus.INVITED:
        raise Conflict(_l("This invitation has already been answered."), code="answered")
    member.status = MemberStatus.ACCEPTED
    db.session.flush()
    append_event(
        "panel.accepted",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"member": member.user_id, "position": member.position},
    )
    return member


def decline_invitation(actor: User, tender: Tender, reason: str) -> PanelMember | None:
    """Decline, and draw the replacement at once (recorded with the stream counter).
    Returns the replacement, or None when the seat stays vacant (nobody eligible is left
    for it, or scoring has locked)."""
    member = _own_invitation(actor, tender)
    if member.status != MemberStatus.INVITED:
        raise Conflict(_l("This invitation has already been answered."), code="answered")
    member.status = MemberStatus.DECLINED
    member.declined_reason = reason
    refill = _refill(tender, member, "declined")
    db.session.flush()
    append_event(
        "panel.declined",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "member": member.user_id,
            "position": member.position,
            "reason": reason,
            **refill,
        },
    )
    return member_of_id(tender, refill["replacement"])


def member_of_id(tender: Tender, user_id: int | None) -> PanelMember | None:
    if user_id is None:
        return None
    return db.session.scalar(
        select(PanelMember).where(
            PanelMember.tender_id == tender.id, PanelMember.user_id == user_id
        )
    )


def declare_conflict(actor: User, tender: Tender, no_conflict: bool, statement: str) -> PanelMember:
    """The member's conflict-of-interest declaration, before anything of the tender is shown.
    Declaring a conflict removes the member and refills the seat like a decline (or leaves
    it vacant; see `refill_of`)."""
    member = _own_invitation(actor, tender)
    if member.status != MemberStatus.ACCEPTED:
        raise Conflict(_l("Accept the invitation before declaring."), code="not_accepted")
    if member.conflict_declared_at is not None:
        raise Conflict(_l("You have already signed your declaration."), code="declared")
    member.conflict_declared_at = utcnow()
    member.conflict_statement = statement
    refill = {} if no_conflict else _vacate(tender, member, statement, "conflict")
    db.session.flush()
    append_event(
        "panel.conflict_declared",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "member": member.user_id,
            "position": member.position,
            "no_conflict": no_conflict,
            "statement": statement,
            **refill,
        },
    )
    return member


def may_see_tender(user: User, tender: Tender) -> bool:
    """A panel member sees the tender's bids only after accepting and declaring no conflict."""
    member = member_of(user, tender)
    return (
        member is not None
        and member.status == MemberStatus.ACCEPTED
        and member.conflict_declared_at is not None
    )


def remove_member(actor: User, tender: Tender, member: PanelMember, reason: str) -> PanelMember:
    """Remove a member for a conflict discovered later, with the reason. Their technical
    scores are void (the scoring reads only ACCEPTED members; the audit event says so).
    Before scoring locks the seat is refilled like a declined invitation, or left vacant
    when nobody eligible is left (see `refill_of`)."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    if member.tender_id != tender.id:
        raise OperationError(_l("There is no such panel member."), code="not_found", status=404)
    if member.status == MemberStatus.REMOVED:
        raise Conflict(_l("This member has already been removed."), code="removed")
    if member.status == MemberStatus.DECLINED:
        raise Conflict(
            _l("This expert declined the invitation and holds no seat."), code="declined"
        )
    if not reason.strip():
        raise OperationError(_l("Give the reason for the removal."), code="no_reason")
    previous = member.status
    refill = _vacate(tender, member, reason, "removed")
    db.session.flush()
    append_event(
        "panel.member_removed",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "member": member.user_id,
            "position": member.position,
            "previous": previous,
            "reason": reason,
            "scores_void": True,
            "note": "Any technical scores of this member are void and left out of the evaluation.",
            **refill,
        },
    )
    return member


def save_expert_profile(
    actor: User,
    expert: User,
    *,
    centre_id: int | None,
    specialties: list[str],
    employer: str,
    available: bool,
) -> ExpertProfile:
    """Staff put an expert in their centre's pool; only admins manage the city pool.

    Staff edit only experts of their own centre (or not yet in any pool): an expert already
    in another centre's pool, or in the shared city pool, is that centre's (the
    administrators') to edit, move or make unavailable."""
    require(actor, Permission.MANAGE_TENDERS, centre_id)
    if centre_id is None:
        require(actor, Permission.MANAGE_USERS)
    current = db.session.get(ExpertProfile, expert.id)
    owner = current.centre_id if current is not None else expert.centre_id
    if current is not None and owner is None and not can(actor, Permission.MANAGE_USERS):
        raise OperationError(
            _l("This expert is in the shared city pool: only administrators edit the profile."),
            code="city_pool_expert",
            status=403,
        )
    if owner is not None and not can(actor, Permission.MANAGE_TENDERS, owner):
        raise OperationError(
            _l("This expert belongs to another centre: only its staff edit the profile."),
            code="other_centre_expert",
            status=403,
        )
    if expert.role != Role.EXPERT:
        raise OperationError(_l("Only expert accounts join the pool."), code="not_expert")
    employer = clean_name(employer, _l("Employer"))
    unknown = set(specialties) - set(SPECIALTIES)
    if unknown:
        raise OperationError(
            _l("Unknown specialty: %(name)s.", name=", ".join(sorted(unknown))),
            code="bad_specialty",
        )
    profile = current or ExpertProfile(user_id=expert.id)
    profile.centre_id = centre_id
    profile.specialties = ",".join(s for s in SPECIALTIES if s in specialties)
    profile.employer = employer
    profile.available = available
    db.session.add(profile)
    db.session.flush()
    append_event(
        "panel.expert_profile_saved",
        actor=actor,
        object_type="user",
        object_id=expert.id,
        centre_id=centre_id,
        data={
            "specialties": profile.specialties,
            "employer": employer,
            "available": available,
        },
    )
    return profile


def pool_of(actor: User) -> list[tuple[ExpertProfile, User]]:
    """The pool the actor manages: their centre's and the shared city pool."""
    return [(profile, profile.user) for profile in db.session.scalars(pool_query(actor))]


# The pool filters of the page and the API: which pool, availability, declared ties.
POOL_SCOPES = ("centre", "city")
TIES_FILTERS = ("declared", "none")


def pool_query(
    actor: User,
    *,
    search: str = "",
    scope: str | None = None,
    specialty: str | None = None,
    available: bool | None = None,
    ties: str | None = None,
    search_specialties: tuple[str, ...] = (),
) -> Select[tuple[ExpertProfile]]:
    """The actor's pool (their centre's and the shared city pool, profiles with their
    user loaded, by name), filtered: `search` in
    the name, e-mail or employer (case-insensitive), `scope` "centre" or "city",
    `specialty` one key of SPECIALTIES, `available`, `ties` "declared" (the expert
    declared a relationship with some company) or "none". `search_specialties`: keys
    whose label (in the reader's language) matches `search`, so that searching "civil"
    or "土木" also finds the civil engineers. Unknown values are the caller's to refuse
    before (ValueError here)."""
    if scope is not None and scope not in POOL_SCOPES:
        raise ValueError(scope)
    if specialty is not None and specialty not in SPECIALTIES:
        raise ValueError(specialty)
    if ties is not None and ties not in TIES_FILTERS:
        raise ValueError(ties)
    where = [ExpertProfile.centre_id.is_(None)]
    if actor.centre_id is not None:
        where.append(ExpertProfile.centre_id == actor.centre_id)
    query = (
        select(ExpertProfile)
        .join(ExpertProfile.user)
        .options(contains_eager(ExpertProfile.user))
        .where(or_(*where))
        .order_by(User.full_name, User.id)
    )
    if scope == "city":
        query = query.where(ExpertProfile.centre_id.is_(None))
    elif scope == "centre":
        query = query.where(ExpertProfile.centre_id.is_not(None))
    if specialty is not None:
        query = query.where(_has_specialty(specialty))
    if available is not None:
        query = query.where(ExpertProfile.available.is_(available))
    if ties is not None:
        declared = select(ExpertRelationship.user_id).where(
            ExpertRelationship.user_id == ExpertProfile.user_id
        )
        query = query.where(declared.exists() if ties == "declared" else ~declared.exists())
    search = search.strip()
    if search:
        needle = f"%{_escape_like(search.lower())}%"
        query = query.where(
            or_(
                func.lower(User.full_name).like(needle, escape="\\"),
                func.lower(User.email).like(needle, escape="\\"),
                func.lower(ExpertProfile.employer).like(needle, escape="\\"),
                *(_has_specialty(key) for key in search_specialties if key in SPECIALTIES),
            )
        )
    return query


def _has_specialty(key: str) -> ColumnElement[bool]:
    # Keys hold no comma: match the whole key in the comma list.
    return (literal(",") + ExpertProfile.specialties + literal(",")).contains(f",{key},")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def declare_relationship(expert: User, company: Company, kind: str) -> ExpertRelationship:
    """The expert declares a tie to a company (kept; drawn panels exclude them for its
    tenders)."""
    if expert.role != Role.EXPERT:
        raise OperationError(_l("Only experts declare relationships."), code="not_expert")
    relationship = ExpertRelationship(user_id=expert.id, company_id=company.id, kind=kind)
    db.session.add(relationship)
    db.session.flush()
    append_event(
        "panel.relationship_declared",
        actor=expert,
        object_type="user",
        object_id=expert.id,
        data={"company": company.id, "kind": kind},
    )
    return relationship
