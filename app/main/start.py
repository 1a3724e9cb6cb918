"""Each role's start page after sign-in: what needs the person's action now, read through
the same operations (and so the same permission checks) as the pages it links to."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.accounts.models import Role, User
from app.bids.models import Bid, BidStatus
from app.companies.models import CompanyStatus
from app.companies.operations import companies_visible_to
from app.custody.operations import shares_of, tenders_awaiting_key
from app.evaluations.models import EvaluationStage
from app.evaluations.queries import expert_evaluations, sheet_of
from app.extensions import db
from app.main.stages import REACHED, Action, next_action
from app.opening.models import ShareUnlock
from app.opening.operations import line_of_company
from app.panels.models import MemberStatus
from app.panels.operations import invitations_of
from app.permissions import Permission, require
from app.tenders import participation
from app.tenders.models import Tender, TenderStatus
from app.tenders.operations import tenders_visible_to

Row = tuple[Tender | None, Action]
DONE_STATUSES = (TenderStatus.AWARDED, TenderStatus.CANCELLED, TenderStatus.FAILED)


@dataclass
class StartPage:
    """Named sections of (tender or None, what to do and where) rows, in display order."""

    sections: dict[str, list[Row]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _current_bid(user: User, tender: Tender) -> Bid | None:
    return db.session.scalar(
        select(Bid).where(
            Bid.tender_id == tender.id,
            Bid.company_id == user.company_id,
            Bid.status == BidStatus.SUBMITTED,
        )
    )


def _bidder(user: User) -> StartPage:
    to_bid: list[Row] = []
    to_confirm: list[Row] = []
    submitted: list[Row] = []
    registered: list[Row] = []
    for registration in participation.company_registrations(user):
        tender = registration.tender
        bid_page = url_for("bids.tender", tender_id=tender.id)
        if tender.status == TenderStatus.PUBLISHED:
            if _current_bid(user, tender) is None:
                to_bid.append((tender, Action(_("Seal and submit your bid"), bid_page)))
            else:
                text = _("Bid received: replace or withdraw it until the deadline if needed")
                submitted.append((tender, Action(text, bid_page)))
            continue
        line = line_of_company(user, tender)
        if line is not None and line.confirmed_at is None and line.objected_at is None:
            text = _("Confirm your opening line, or object to it")
            page = url_for("opening.tender", tender_id=tender.id)
            to_confirm.append((tender, Action(text, page)))
        elif tender.status not in DONE_STATUSES:
            text = _("Follow the tender")
            registered.append((tender, Action(text, url_for("portal.tender", tender_id=tender.id))))
    return StartPage(
        {
            "to_bid": to_bid,
            "to_confirm": to_confirm,
            "submitted": submitted,
            "registered": registered,
        }
    )


def _staff(user: User) -> StartPage:
    pending = db.session.scalars(companies_visible_to(user, CompanyStatus.PENDING).limit(50))
    tenders = db.session.scalars(
        tenders_visible_to(user, None)
        .where(Tender.status.not_in(list(DONE_STATUSES)))
        .order_by(None)
        .order_by(Tender.submission_deadline, Tender.id)
        .limit(100)
    )
    return StartPage(
        {
            "companies": [
                (None, Action(c.name, url_for("companies.show", company_id=c.id))) for c in pending
            ],
            # Grouped by stage (so by next action), the nearest deadline first in each.
            "tenders": [
                (tender, next_action(tender))
                for tender in sorted(
                    tenders, key=lambda t: (REACHED.get(t.status, 99), t.submission_deadline)
                )
            ],
        }
    )


def _custodian(user: User) -> StartPage:
    due: list[Row] = []
    for row in shares_of(user):
        if row.tender.status != TenderStatus.CLOSED:
            continue
        unlocked = db.session.scalar(
            select(ShareUnlock.id).where(
                ShareUnlock.tender_id == row.tender.id, ShareUnlock.custodian_id == user.id
            )
        )
        if unlocked is None:
            text = _("Unlock your key share at the public opening")
            page = url_for("opening.tender", tender_id=row.tender.id)
            due.append((row.tender, Action(text, page)))
    text = _("Set up your custodian key: the tender cannot be published without it")
    awaiting = [
        (tender, Action(text, url_for("custody.create_key")))
        for tender in tenders_awaiting_key(user)
    ]
    return StartPage({"ceremonies": due, "awaiting_key": awaiting})


def _expert(user: User) -> StartPage:
    invited: list[Row] = []
    for member in invitations_of(user):
        waiting = member.status == MemberStatus.INVITED or (
            member.status == MemberStatus.ACCEPTED and member.conflict_declared_at is None
        )
        if waiting:
            text = _("Answer the invitation and declare any conflict of interest")
            tender = db.session.get(Tender, member.tender_id)
            invited.append((tender, Action(text, url_for("panels.invitations"))))
    sheets: list[Row] = []
    for tender, evaluation in expert_evaluations(user):
        if evaluation.stage != EvaluationStage.SCORING:
            continue
        sheet = sheet_of(user, tender)
        if sheet is None or sheet.locked_at is None:
            text = _("Score the bids and lock your sheet")
            sheets.append((tender, Action(text, url_for("scoring.sheet", tender_id=tender.id))))
    return StartPage({"invitations": invited, "sheets": sheets})


def _admin(user: User) -> StartPage:
    require(user, Permission.MANAGE_USERS)
    counts = dict(
        db.session.execute(select(User.role, func.count(User.id)).group_by(User.role)).all()
    )
    disabled = db.session.scalars(
        select(User).where(User.is_enabled.is_(False)).order_by(User.email).limit(50)
    )
    return StartPage(
        {
            "disabled": [
                (None, Action(u.email, url_for("admin.user", user_id=u.id))) for u in disabled
            ]
        },
        counts,
    )


BUILDERS = {
    Role.BIDDER: _bidder,
    Role.STAFF: _staff,
    Role.CUSTODIAN: _custodian,
    Role.EXPERT: _expert,
    Role.ADMIN: _admin,
}


def start_page(user: User) -> StartPage | None:
    """The user's start page, or None for a role whose start page is elsewhere."""
    builder = BUILDERS.get(user.role)
    return builder(user) if builder else None
