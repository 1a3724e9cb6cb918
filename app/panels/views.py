"""The panel pages: staff draw a tender's panel and manage its members; experts answer
invitations and sign their conflict declaration; anyone may fetch the replay data.

Access: the staff page needs VIEW_TENDERS in the tender's centre and its POSTs
MANAGE_TENDERS (checked again by the operations); the expert pages are for Role.EXPERT;
`draw.json` is public for published tenders and names no one: until the award or failure
notice it holds only a commitment (the seed, salted hashes of the eligible list and of the
outcome), then the full draw file to replay (user ids only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.accounts.models import Role, User
from app.core.boundary import run_operation as _run
from app.errors import abort_with
from app.extensions import db
from app.panels import operations
from app.panels.forms import (
    CAUSE_LABELS,
    EXCLUSION_LABELS,
    POOL_FILTER_CHOICES,
    SEAT_LABELS,
    SPECIALTY_LABELS,
    VACANCY_LABELS,
    AcceptInvitationForm,
    ConflictDeclarationForm,
    DeclineInvitationForm,
    DrawPanelForm,
    ExpertProfileForm,
    RemoveMemberForm,
    specialties_matching,
)
from app.panels.models import MemberStatus, PanelMember
from app.permissions import Permission, can
from app.tenders.access import public_tender, staff_tender
from app.tenders.models import Tender

bp = Blueprint("panels", __name__, url_prefix="/panels")


def _expert_only() -> None:
    if current_user.role != Role.EXPERT:
        abort(403)


def _seat_outcome(tender: Tender, member: PanelMember) -> str:
    """What became of the seat `member` left: refilled, or vacant and why."""
    refill = operations.refill_of(operations.draw_of(tender), member)
    if refill is None or refill["replacement"] is None:
        why = VACANCY_LABELS["scoring_locked" if refill is None else "none_eligible"]
        return _("The seat stays vacant: %(why)s.", why=why)
    return _("A replacement has been drawn for the seat (#%(id)s).", id=refill["replacement"])


def _remove_form(tender: Tender) -> RemoveMemberForm:
    form = RemoveMemberForm()
    form.member.choices = [
        SelectChoice(m.id, f"{m.position}. {m.user.full_name}")
        for m in operations.members_of(tender)
        if m.status in (MemberStatus.INVITED, MemberStatus.ACCEPTED)
    ]
    return form


@bp.route("/tenders/<int:tender_id>")
@login_required
def tender(tender_id: int) -> str:
    tender = staff_tender(current_user, tender_id, Permission.VIEW_TENDERS, public_only=True)
    draw = operations.draw_of(tender)
    min_size, default_size = operations.panel_size_rule(tender)
    eligible_now, excluded_now = (None, None) if draw else operations.screen_experts(tender)
    excluded = (draw.excluded or []) if draw else excluded_now
    return render_template(
        "panels/tender.html",
        tender=tender,
        draw=draw,
        members=operations.members_of(tender),
        eligible_now=eligible_now,
        excluded=excluded,
        excluded_users={
            u.id: u
            for u in db.session.scalars(
                select(User).where(User.id.in_([e["id"] for e in excluded]))
            )
        },
        min_size=min_size,
        required_core=operations.required_core_seats,
        vacant=operations.vacant_positions(tender),
        locked=operations.scoring_locked(tender),
        manage=can(current_user, Permission.MANAGE_TENDERS, tender.centre_id),
        draw_form=DrawPanelForm(size=default_size),
        remove_form=_remove_form(tender),
        specialty_labels=SPECIALTY_LABELS,
        seat_labels=SEAT_LABELS,
        exclusion_labels=EXCLUSION_LABELS,
        cause_labels=CAUSE_LABELS,
        statuses=MemberStatus,
    )


@bp.route("/tenders/<int:tender_id>/draw", methods=["POST"])
@login_required
def draw(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, public_only=True)
    form = DrawPanelForm()
    back = url_for(".tender", tender_id=tender.id)
    if not form.validate_on_submit():
        flash(_("Check the panel size and the quotas."), "error")
        return redirect(back, code=303)
    return _run(
        lambda actor, t: operations.draw_tender_panel(actor, t, form.size.data, form.quotas()),
        tender,
        success=_("The panel has been drawn; the experts see their invitations."),
        back=back,
    )


@bp.route("/tenders/<int:tender_id>/remove", methods=["POST"])
@login_required
def remove(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, public_only=True)
    form = _remove_form(tender)
    if not form.validate_on_submit():
        abort(400)
    member = db.session.get(PanelMember, form.member.data)
    if member is None:
        abort(404)
    return _run(
        lambda actor, t: operations.remove_member(actor, t, member, form.reason.data),
        tender,
        success=lambda removed: " ".join(
            (_("The member has been removed from the panel."), _seat_outcome(tender, removed))
        ),
        back=url_for(".tender", tender_id=tender.id),
    )


@bp.route("/pool", methods=["GET", "POST"])
@login_required
def pool() -> Response | tuple[str, int]:
    if not can(current_user, Permission.MANAGE_TENDERS, current_user.centre_id):
        abort(403)
    form = ExpertProfileForm()
    city_pool = can(current_user, Permission.MANAGE_USERS)
    if not city_pool:
        del form.city_pool  # administrators only: not offered to staff
    if form.validate_on_submit():
        # A staff member's forged city_pool still reaches the operation, which refuses it.
        to_city = form.city_pool.data if city_pool else bool(request.form.get("city_pool"))
        expert = db.session.scalar(select(User).where(User.email == form.email.data.lower()))
        if expert is None:
            flash(_("There is no account with this e-mail."), "error")
            return redirect(url_for(".pool"), code=303)
        return _run(
            lambda actor, user: operations.save_expert_profile(
                actor,
                user,
                centre_id=None if to_city else actor.centre_id,
                specialties=form.specialties.data or [],
                employer=form.employer.data or "",
                available=form.available.data,
            ),
            expert,
            success=_("The expert's profile has been saved."),
            back=url_for(".pool"),
        )
    filters = _pool_filters()
    page = db.paginate(
        operations.pool_query(current_user, **filters.query), per_page=25, error_out=False
    )
    return render_template(
        "panels/pool.html",
        form=form,
        page=page,
        filters=filters.chosen,
        specialty_labels=SPECIALTY_LABELS,
    ), 400 if form.errors else 200


@dataclass(frozen=True)
class PoolFilters:
    query: dict[str, Any]  # the keywords of operations.pool_query
    chosen: dict[str, str]  # the URL parameters as given (kept by the form and the pager)


def _pool_filters() -> PoolFilters:
    """The search and filters of the pool page from the URL; an unknown value is a 400
    naming the parameter (never silently ignored: the list would look filtered)."""
    args = request.args
    chosen = {key: args.get(key, "").strip() for key in POOL_FILTER_CHOICES if args.get(key)}
    for key, value in chosen.items():
        if value not in POOL_FILTER_CHOICES[key]:
            abort_with(400, _("Unknown value for the filter “%(name)s”.", name=key))
    search = args.get("q", "").strip()[:200]
    if search:
        chosen["q"] = search
    available = chosen.get("available")
    return PoolFilters(
        query={
            "search": search,
            "scope": chosen.get("pool"),
            "specialty": chosen.get("specialty"),
            "available": None if available is None else available == "yes",
            "ties": chosen.get("ties"),
            "search_specialties": specialties_matching(search),
        },
        chosen=chosen,
    )


@bp.route("/tenders/<int:tender_id>/draw.json")
def draw_json(tender_id: int) -> Response:
    tender = public_tender(tender_id)
    draw = operations.draw_of(tender)
    if draw is None:
        abort(404)
    return jsonify(operations.public_draw(draw))


@bp.route("/invitations")
@login_required
def invitations() -> str:
    _expert_only()
    members = operations.invitations_of(current_user)
    return render_template(
        "panels/invitations.html",
        members=members,
        tenders={m.tender_id: db.session.get(Tender, m.tender_id) for m in members},
        accept_form=AcceptInvitationForm(),
        decline_form=DeclineInvitationForm(),
        declaration_form=ConflictDeclarationForm(),
        statuses=MemberStatus,
    )


def _back_to_invitations() -> str:
    return url_for(".invitations")


@bp.route("/tenders/<int:tender_id>/accept", methods=["POST"])
@login_required
def accept(tender_id: int) -> Response:
    _expert_only()
    tender = public_tender(tender_id)
    if not AcceptInvitationForm().validate_on_submit():
        abort(400)
    return _run(
        operations.accept_invitation,
        tender,
        success=_("You have accepted. Sign your conflict declaration next."),
        back=_back_to_invitations(),
    )


@bp.route("/tenders/<int:tender_id>/decline", methods=["POST"])
@login_required
def decline(tender_id: int) -> Response:
    _expert_only()
    tender = public_tender(tender_id)
    form = DeclineInvitationForm()
    if not form.validate_on_submit():
        abort(400)
    return _run(
        lambda actor, t: operations.decline_invitation(actor, t, form.reason.data),
        tender,
        success=_("You have declined. A replacement is drawn when an eligible expert is left."),
        back=_back_to_invitations(),
    )


@bp.route("/tenders/<int:tender_id>/declare", methods=["POST"])
@login_required
def declare(tender_id: int) -> Response:
    _expert_only()
    tender = public_tender(tender_id)
    form = ConflictDeclarationForm()
    if not form.validate_on_submit():
        flash(_("Tick the declaration or describe your conflict."), "error")
        return redirect(_back_to_invitations(), code=303)
    return _run(
        lambda actor, t: operations.declare_conflict(
            actor, t, form.no_conflict.data, form.statement.data or ""
        ),
        tender,
        success=lambda member: (
            _("Your declaration has been signed and recorded.")
            if member.status != MemberStatus.REMOVED
            else _("Your declaration has been recorded: you have left the panel.")
        ),
        back=_back_to_invitations(),
    )
