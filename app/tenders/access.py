"""One way to load a tender for each audience. Every route that takes a tender id loads it
through one of these (or `app.panels.access` for panel members), so a new route cannot forget
the check.

404 when the caller may not even know that the tender exists; 403 when it may see the tender
but not act on it. The operation the route then calls still makes its own permission check
(`app.permissions.require`): this is the early, uniform answer, not the only one.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import abort
from sqlalchemy.sql.base import ExecutableOption

from app.accounts.models import User
from app.extensions import db
from app.permissions import Permission, PermissionDenied, can, require
from app.tenders.models import Tender, TenderTemplate
from app.tenders.participation import can_see_tender


def existing_tender(tender_id: int, options: Sequence[ExecutableOption] = ()) -> Tender:
    """Any tender, drafts included (404 if there is none): callers check access next.
    `options`: loader options for the tender's row (e.g. its lots in the same statement)."""
    tender = db.session.get(Tender, tender_id, options=options)
    if tender is None:
        abort(404)
    return tender


def public_tender(tender_id: int) -> Tender:
    """Everybody's view: published and later tenders; a draft is a 404."""
    tender = existing_tender(tender_id)
    if not tender.is_public:
        abort(404)
    return tender


def visible_tender(
    user: User | None, tender_id: int, options: Sequence[ExecutableOption] = ()
) -> Tender:
    """Bidders' and overseers' view: public tenders, and drafts the user oversees (404)."""
    tender = existing_tender(tender_id, options)
    if not can_see_tender(user, tender):
        abort(404)
    return tender


def staff_tender(
    user: User | None,
    tender_id: int,
    permission: Permission = Permission.MANAGE_TENDERS,
    *,
    public_only: bool = False,
) -> Tender:
    """Staff of the tender's centre (and overseers, by `permission`): 404 if it does not exist
    (or, with `public_only`, is still a draft), 403 without `permission` for its centre."""
    tender = public_tender(tender_id) if public_only else existing_tender(tender_id)
    if not can(user, permission, tender.centre_id):
        raise PermissionDenied()
    return tender


def staff_template(user: User | None, template_id: int) -> TenderTemplate:
    """A tender template for staff: 404 if there is none; 403 unless the user may view
    tenders (a built-in template) or tenders of the copy's centre."""
    template = db.session.get(TenderTemplate, template_id)
    if template is None:
        abort(404)
    require(user, Permission.VIEW_TENDERS, centre_id=template.centre_id)
    return template
