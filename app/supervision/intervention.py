"""A supervisor's intervention in one tender: suspend, ask to resume, approve (dual control).
The state and its rules live in the tender stage (`app.tenders.suspension`); this is the page
and its buttons."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.centres.operations import oversees
from app.core.boundary import attempt, run_operation
from app.core.forms import ButtonForm
from app.permissions import Permission, can, require
from app.supervision.forms import ResumeRequestForm, SuspendForm
from app.supervision.timeline import tender_timeline
from app.supervision.views import bp
from app.tenders import suspension as ops
from app.tenders.access import staff_tender


def _tender(tender_id: int):
    tender = staff_tender(current_user, tender_id, Permission.VIEW_TENDERS, public_only=True)
    if not oversees(current_user, tender.centre_id):
        abort(404)  # another jurisdiction's tender
    return tender


def _page(tender, suspend_form=None, request_form=None, status: int = 200):
    active = ops.active_suspension(tender.id)
    return (
        render_template(
            "supervision/tender.html",
            tender=tender,
            active=active,
            history=ops.suspensions_of(tender),
            suspendable=tender.status in ops.SUSPENDABLE,
            may_intervene=can(current_user, Permission.SUPERVISE_TENDERS),
            suspend_form=suspend_form or SuspendForm(formdata=None),
            request_form=request_form or ResumeRequestForm(formdata=None),
            button=ButtonForm(formdata=None),
            timeline=tender_timeline(tender),
        ),
        status,
    )


@bp.route("/tenders/<int:tender_id>")
def tender(tender_id: int):
    return _page(_tender(tender_id))


@bp.route("/tenders/<int:tender_id>/suspend", methods=["POST"])
def suspend(tender_id: int):
    require(current_user, Permission.SUPERVISE_TENDERS)
    tender = _tender(tender_id)
    form = SuspendForm()
    if not form.validate_on_submit():
        return _page(tender, suspend_form=form, status=400)
    outcome = attempt(ops.suspend_tender, current_user, tender, form.reason.data)
    if outcome.error is not None:
        return _page(tender, suspend_form=form, status=outcome.error.status)
    return _done(
        tender, _("The tender is suspended. A second supervisor must approve its resumption.")
    )


@bp.route("/tenders/<int:tender_id>/resume-request", methods=["POST"])
def request_resume(tender_id: int):
    require(current_user, Permission.SUPERVISE_TENDERS)
    tender = _tender(tender_id)
    form = ResumeRequestForm()
    if not form.validate_on_submit():
        return _page(tender, request_form=form, status=400)
    outcome = attempt(ops.request_resumption, current_user, tender, form.kind.data, form.note.data)
    if outcome.error is not None:
        return _page(tender, request_form=form, status=outcome.error.status)
    return _done(tender, _("Resumption requested: a second supervisor must approve it."))


@bp.route("/tenders/<int:tender_id>/resume-request/withdraw", methods=["POST"])
def withdraw_resume(tender_id: int) -> Response:
    require(current_user, Permission.SUPERVISE_TENDERS)
    tender = _tender(tender_id)
    return run_operation(
        ops.withdraw_request,
        tender,
        success=_("The request is withdrawn; the tender stays suspended."),
        back=url_for(".tender", tender_id=tender.id),
    )


@bp.route("/tenders/<int:tender_id>/resume-approve", methods=["POST"])
def approve_resume(tender_id: int) -> Response:
    require(current_user, Permission.SUPERVISE_TENDERS)
    tender = _tender(tender_id)
    return run_operation(
        ops.approve_resumption,
        tender,
        success=_("Approved: the tender resumes with the time it had left."),
        back=url_for(".tender", tender_id=tender.id),
    )


def _done(tender, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for(".tender", tender_id=tender.id))
