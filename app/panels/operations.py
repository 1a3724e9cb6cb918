"""Panel operations: who is eligible, the draw, invitations, declarations and removals.

Every function that changes something takes the acting user, checks access first, flushes,
audits and never commits. The draw itself is `evaluation.draw`; this module only gathers
its inputs (the eligible list after exclusions, the seed from the sealing record) and stores
what a replay needs."""

from __future__ import annotations

import json
from collections.abc import Mapping

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.models import Bid
from app.bids.operations import sealing_record_of
from app.companies.models import Company, CompanyAlias
from app.core.errors import Conflict, OperationError
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
from app.permissions import Permission, require
from app.tenders.documents import blob_store
from app.tenders.models import Tender, TenderRegistration, TenderStatus
from evaluation.draw import (
    DrawError,
    ExpertCandidate,
    draw_panel,
    draw_replacement,
    seed_from,
)

MIN_PANEL_SIZE = 5  # the rules' minimum; the size must also be odd
DEFAULT_PANEL_SIZE = 5
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


def public_draw(draw: PanelDraw) -> dict:
    """What anyone may see: enough to replay the draw, user ids only, never names."""
    return {
        "tender_id": draw.tender_id,
        "size": draw.size,
        "quotas": draw.quotas,
        "seed": draw.seed,
        "seed_inputs": draw.seed_inputs,
        "seed_rule": "sha256(bytes.fromhex(merkle_root) + draw_time.encode('utf-8'))",
        "eligible": draw.eligible,
        "redraws": [{"declined": r["declined"]} for r in draw.redraws],
        "replay": "evaluation.draw.replay(eligible, size, quotas, seed, redraws)",
    }


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


def eligible_experts(tender: Tender) -> list[ExpertCandidate]:
    """The tender centre's pool and the shared city pool, minus the unavailable, disabled
    accounts, and anyone employed by or related to a company interested in the tender.
    Sorted by user id: the order is part of what the draw publishes."""
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
    return [
        ExpertCandidate(user.id, profile.specialty_set)
        for profile, user in rows
        if user.id not in related and _normalised(profile.employer) not in names
    ]


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


def _check_quotas(size: int, quotas: Mapping[str, int]) -> dict[str, int]:
    if size < MIN_PANEL_SIZE or size % 2 == 0:
        raise OperationError(
            _l("The panel needs an odd number of members, at least %(n)s.", n=MIN_PANEL_SIZE),
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
    return clean


def draw_tender_panel(
    actor: User,
    tender: Tender,
    size: int = DEFAULT_PANEL_SIZE,
    quotas: Mapping[str, int] | None = None,
) -> PanelDraw:
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    if tender.status not in DRAWABLE_STATUSES:
        raise Conflict(
            _l("A panel is drawn once the tender is closed or opened."), code="bad_status"
        )
    if draw_of(tender) is not None:
        raise Conflict(_l("This tender's panel has already been drawn."), code="already_drawn")
    clean = _check_quotas(size, quotas or {})
    root = merkle_root_of(tender)
    now = utcnow()
    draw_time = now.isoformat()
    seed = seed_from(root, draw_time)
    eligible = eligible_experts(tender)
    try:
        result = draw_panel(eligible, size, clean, seed)
    except DrawError as error:
        raise Conflict(
            _l("The panel cannot be drawn: %(reason)s.", reason=str(error)), code="cannot_draw"
        ) from error
    draw = PanelDraw(
        tender_id=tender.id,
        size=size,
        quotas=clean,
        seed=seed.hex(),
        seed_inputs={"merkle_root": root, "draw_time": draw_time},
        eligible=[{"id": c.id, "specialties": sorted(c.specialties)} for c in eligible],
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
            "eligible": [c.id for c in eligible],
            "members": list(result.members),
        },
    )
    return draw


def _redraw(draw: PanelDraw, tender: Tender, declined: PanelMember) -> PanelMember:
    """Replace a declined member from the remaining eligible experts, continuing the same
    seed's stream. The eligible list is the published one, so the redraw is replayable."""
    candidates = [ExpertCandidate(e["id"], frozenset(e["specialties"])) for e in draw.eligible]
    already = {m.user_id for m in members_of(tender)}
    try:
        new_id, counter = draw_replacement(
            candidates, already, declined.drawn_for, bytes.fromhex(draw.seed), draw.counter
        )
    except DrawError as error:
        raise Conflict(
            _l("No eligible expert is left to replace the member who declined."),
            code="cannot_redraw",
        ) from error
    draw.redraws = [
        *draw.redraws,
        {"declined": declined.user_id, "replacement": new_id, "counter": draw.counter},
    ]
    draw.counter = counter
    member = PanelMember(
        tender_id=tender.id,
        user_id=new_id,
        position=declined.position,
        drawn_for=declined.drawn_for,
    )
    db.session.add(member)
    return member


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
    Returns the replacement, or None when no eligible expert is left for the seat."""
    member = _own_invitation(actor, tender)
    if member.status != MemberStatus.INVITED:
        raise Conflict(_l("This invitation has already been answered."), code="answered")
    draw = draw_of(tender)
    member.status = MemberStatus.DECLINED
    member.declined_reason = reason
    try:
        replacement = _redraw(draw, tender, member)
    except Conflict:
        # Nobody with the seat's specialty is left: the decline stands and the seat stays
        # vacant for staff to resolve (the audit event says so).
        replacement = None
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
            "replacement": replacement.user_id if replacement else None,
            "counter": draw.redraws[-1]["counter"] if replacement else None,
        },
    )
    return replacement


def declare_conflict(actor: User, tender: Tender, no_conflict: bool, statement: str) -> PanelMember:
    """The member's conflict-of-interest declaration, before anything of the tender is shown.
    Declaring a conflict removes the member (and draws nobody: staff decide)."""
    member = _own_invitation(actor, tender)
    if member.status != MemberStatus.ACCEPTED:
        raise Conflict(_l("Accept the invitation before declaring."), code="not_accepted")
    if member.conflict_declared_at is not None:
        raise Conflict(_l("You have already signed your declaration."), code="declared")
    member.conflict_declared_at = utcnow()
    member.conflict_statement = statement
    if not no_conflict:
        member.status = MemberStatus.REMOVED
        member.removed_reason = statement
    db.session.flush()
    append_event(
        "panel.conflict_declared",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"member": member.user_id, "no_conflict": no_conflict, "statement": statement},
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
    """Remove a member for a conflict discovered later. Their scores go with them once
    scoring exists (the evaluation reads only ACCEPTED members)."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    if member.tender_id != tender.id:
        raise OperationError(_l("There is no such panel member."), code="not_found", status=404)
    if member.status == MemberStatus.REMOVED:
        raise Conflict(_l("This member has already been removed."), code="removed")
    if not reason.strip():
        raise OperationError(_l("Give the reason for the removal."), code="no_reason")
    previous = member.status
    member.status = MemberStatus.REMOVED
    member.removed_reason = reason
    db.session.flush()
    append_event(
        "panel.member_removed",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"member": member.user_id, "previous": previous, "reason": reason},
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
    """Staff put an expert in their centre's pool; only admins manage the city pool."""
    require(actor, Permission.MANAGE_TENDERS, centre_id)
    if centre_id is None:
        require(actor, Permission.MANAGE_USERS)
    if expert.role != Role.EXPERT:
        raise OperationError(_l("Only expert accounts join the pool."), code="not_expert")
    unknown = set(specialties) - set(SPECIALTIES)
    if unknown:
        raise OperationError(
            _l("Unknown specialty: %(name)s.", name=", ".join(sorted(unknown))),
            code="bad_specialty",
        )
    profile = db.session.get(ExpertProfile, expert.id) or ExpertProfile(user_id=expert.id)
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
    where = [ExpertProfile.centre_id.is_(None)]
    if actor.centre_id is not None:
        where.append(ExpertProfile.centre_id == actor.centre_id)
    return list(
        db.session.execute(
            select(ExpertProfile, User)
            .join(User, User.id == ExpertProfile.user_id)
            .where(or_(*where))
            .order_by(User.full_name, User.id)
        ).all()
    )


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
