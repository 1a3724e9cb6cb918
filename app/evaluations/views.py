"""Pages of the evaluation's review stage.

- `/evaluations/tenders/<id>`: the review page, for panel members (accepted, no conflict)
  and the centre's staff and supervisors (read-only): each bid by company name with its
  compliance verdict and reasons, price and commercial scores, the benchmark and its
  working, abnormally-low flags. Nothing here shows or is keyed by a technical code.
  Staff start the evaluation here; the chair acts here.
- `/evaluations/tenders/<id>/anonymity`: the anonymity questions by technical code, hits
  only (identity masked; no names, no prices).
- `/evaluations/tenders/<id>/justification`: the bidder's answer to a price-justification
  request.

Access: the role gate first (403), then membership (404 for an expert not on the panel),
then the operation's own check (the chair)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.accounts.models import Role
from app.core.boundary import run_operation as _run
from app.core.types import utcnow
from app.core.urls import public_url
from app.evaluations import operations, presentation, queries, scoring_file
from app.evaluations.forms import (
    AnonymityForm,
    CheckForm,
    ConfirmForm,
    DecisionForm,
    JustificationForm,
    OverruleForm,
    RequestJustificationForm,
    StartEvaluationForm,
)
from app.evaluations.models import LowPriceStatus
from app.panels.access import panel_or_overseer_tender, panel_tender
from app.permissions import Permission, can
from app.tender_templates import TemplateValidationError
from app.tenders.access import public_tender, staff_tender
from app.tenders.documents import Upload, blob_store
from app.tenders.models import Tender, TenderStatus

bp = Blueprint("evaluations", __name__, url_prefix="/evaluations")

VIEWER_ROLES = (Role.EXPERT, Role.STAFF, Role.SUPERVISOR, Role.ADMIN)


def _require_role(*roles: str) -> None:
    """The role gate comes first: 403 before anything about the tender is said."""
    if current_user.role not in roles:
        abort(403)


def _viewer_tender(tender_id: int) -> Tender:
    """Panel members and the centre's staff / supervisors / admins."""
    _require_role(*VIEWER_ROLES)
    return panel_or_overseer_tender(current_user, tender_id)


def _chair_tender(tender_id: int) -> Tender:
    """The chair's POSTs: experts on the panel (the operation checks the chair)."""
    _require_role(Role.EXPERT)
    return panel_tender(current_user, tender_id)


def _back(tender: Tender, anchor: str = "") -> str:
    return url_for(".review_page", tender_id=tender.id) + (f"#{anchor}" if anchor else "")


def _form_errors(form: FlaskForm) -> None:
    for errors in form.errors.values():
        for error in errors:
            flash(str(error), "error")


def _start_form(tender: Tender) -> StartEvaluationForm:
    form = StartEvaluationForm()
    form.chair.choices = [
        SelectChoice(m.user_id, f"{m.position}. {m.user.full_name}")
        for m in queries.panel_experts(tender)
    ]
    return form


@bp.route("/tenders/<int:tender_id>")
@login_required
def review_page(tender_id: int) -> str:
    tender = _viewer_tender(tender_id)
    current = queries.evaluation_of(tender)
    data, problem = None, None
    if current is not None or tender.status == TenderStatus.OPENED:
        try:
            data = presentation.review_data(tender)
        except TemplateValidationError:
            problem = _("The tender's template does not load: nothing can be computed.")
    chair = queries.is_chair(current_user, tender)
    check_form = CheckForm()
    check_form.check.choices = [
        SelectChoice(c["check"], c["label"]) for c in (data or {}).get("manual_checks", [])
    ]
    return render_template(
        "evaluations/review.html",
        tender=tender,
        evaluation=current,
        data=data,
        problem=problem,
        chair=chair,
        in_review=current is not None and current.stage == "review",
        manage=can(current_user, Permission.MANAGE_TENDERS, tender.centre_id)
        and current_user.role != Role.EXPERT,
        start_form=_start_form(tender) if current is None else None,
        overrule_form=OverruleForm(),
        check_form=check_form,
        request_form=RequestJustificationForm(days=queries.justification_days()),
        decision_form=DecisionForm(),
        confirm_form=ConfirmForm(),
        statuses=LowPriceStatus,
        progress=_staff_progress(tender, current),
    )


def _staff_progress(tender, current) -> list | None:
    """The experts' scoring progress for staff who follow the evaluation (not its members)."""
    if current is None or current.stage not in queries.READABLE_STAGES:
        return None
    if current_user.role == Role.EXPERT:
        return None
    return operations.scoring_progress(current_user, tender)


@bp.route("/tenders/<int:tender_id>/start", methods=["POST"])
@login_required
def start(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, public_only=True)
    form = _start_form(tender)
    chair = None
    if form.validate_on_submit():
        chair = next(
            (m.user for m in queries.panel_experts(tender) if m.user_id == form.chair.data), None
        )
    return _run(
        lambda actor, t: operations.start_evaluation(actor, t, chair),
        tender,
        success=_("The evaluation has started: the panel sees the review."),
        back=_back(tender),
    )


def _bid_action(
    tender: Tender,
    bid_id: int,
    form: FlaskForm,
    operation: Callable[[Any, Tender, Any], object],
    success: str,
) -> Response:
    back = _back(tender, f"bid-{bid_id}")
    if not form.validate_on_submit():
        _form_errors(form)
        return redirect(back, code=303)
    return _run(lambda actor, t: operation(actor, t, form), tender, success=success, back=back)


@bp.route("/tenders/<int:tender_id>/bids/<int:bid_id>/overrule", methods=["POST"])
@login_required
def overrule(tender_id: int, bid_id: int) -> Response:
    choice = {"compliant": True, "non_compliant": False, "withdraw": None}
    return _bid_action(
        _chair_tender(tender_id),
        bid_id,
        OverruleForm(),
        lambda actor, t, form: operations.overrule(
            actor, t, bid_id, choice[form.decision.data], form.reason.data
        ),
        _("The panel's decision is recorded and the scores are computed again."),
    )


@bp.route("/tenders/<int:tender_id>/bids/<int:bid_id>/check", methods=["POST"])
@login_required
def record_check(tender_id: int, bid_id: int) -> Response:
    tender = _chair_tender(tender_id)
    form = CheckForm()
    form.check.choices = [SelectChoice(c, c) for c in _manual_checks(tender)]
    return _bid_action(
        tender,
        bid_id,
        form,
        lambda actor, t, f: operations.record_check(
            actor, t, bid_id, f.check.data, f.result.data == "pass", f.reason.data
        ),
        _("The check is recorded and the scores are computed again."),
    )


def _manual_checks(tender: Tender) -> list[str]:
    try:
        return scoring_file.manual_checks(tender)
    except TemplateValidationError:
        return []


@bp.route("/tenders/<int:tender_id>/bids/<int:bid_id>/justification/request", methods=["POST"])
@login_required
def request_justification(tender_id: int, bid_id: int) -> Response:
    return _bid_action(
        _chair_tender(tender_id),
        bid_id,
        RequestJustificationForm(),
        lambda actor, t, f: operations.request_justification(
            actor,
            t,
            bid_id,
            f.days.data,
            link=public_url(".justification", tender_id=t.id),
        ),
        _("The bidder has been asked to justify its price."),
    )


@bp.route("/tenders/<int:tender_id>/bids/<int:bid_id>/justification/decide", methods=["POST"])
@login_required
def decide_justification(tender_id: int, bid_id: int) -> Response:
    return _bid_action(
        _chair_tender(tender_id),
        bid_id,
        DecisionForm(),
        lambda actor, t, f: operations.decide_justification(
            actor, t, bid_id, f.decision.data == "accept", f.reason.data
        ),
        _("The decision on the price is recorded and the scores are computed again."),
    )


@bp.route("/tenders/<int:tender_id>/bids/<int:bid_id>/justification/file")
@login_required
def justification_file(tender_id: int, bid_id: int) -> Response:
    tender = _viewer_tender(tender_id)
    sha = request.args.get("sha", "")
    evaluated = queries.evaluated_for_bid(tender, bid_id)
    found = next(
        (a for a in (evaluated.low_price_attachments if evaluated else []) if a["sha256"] == sha),
        None,
    )
    if found is None:
        abort(404)
    return send_file(
        blob_store().path_for(found["sha256"]),
        mimetype=found["content_type"],
        as_attachment=True,
        download_name=found["filename"],
    )


@bp.route("/tenders/<int:tender_id>/confirm", methods=["POST"])
@login_required
def confirm(tender_id: int) -> Response:
    tender = _chair_tender(tender_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _run(
        operations.confirm_review,
        tender,
        success=_("The review is confirmed: technical scoring is open."),
        back=_back(tender),
    )


@bp.route("/tenders/<int:tender_id>/anonymity")
@login_required
def anonymity(tender_id: int) -> str:
    tender = _viewer_tender(tender_id)
    current = queries.evaluation_of(tender)
    return render_template(
        "evaluations/anonymity.html",
        tender=tender,
        data=presentation.anonymity_data(tender) if current is not None else None,
        chair=queries.is_chair(current_user, tender),
        in_review=current is not None and current.stage == "review",
        form=AnonymityForm(),
    )


@bp.route("/tenders/<int:tender_id>/anonymity", methods=["POST"])
@login_required
def decide_anonymity(tender_id: int) -> Response:
    tender = _chair_tender(tender_id)
    form = AnonymityForm()
    back = url_for(".anonymity", tender_id=tender.id)
    if not form.validate_on_submit():
        _form_errors(form)
        return redirect(back, code=303)
    return _run(
        lambda actor, t: operations.decide_anonymity(
            actor, t, form.code.data, form.decision.data == "accept", form.reason.data
        ),
        tender,
        success=_("The anonymity question is decided."),
        back=back,
    )


@bp.route("/tenders/<int:tender_id>/justification", methods=["GET", "POST"])
@login_required
def justification(tender_id: int) -> Response | str:
    _require_role(Role.BIDDER)
    tender = public_tender(tender_id)
    evaluated = queries.justification_request(current_user, tender)
    if evaluated is None:
        abort(404)
    form = JustificationForm()
    back = url_for(".justification", tender_id=tender.id)
    if request.method == "POST":
        if not form.validate_on_submit():
            _form_errors(form)
            return redirect(back, code=303)
        uploads = [
            Upload(f.filename or "", f.mimetype, f.stream)
            for f in (form.files.data or [])
            if f and f.filename
        ]
        return _run(
            lambda actor, t: operations.submit_justification(actor, t, form.text.data, uploads),
            tender,
            success=_("Your justification has been submitted to the evaluation panel."),
            back=back,
        )
    return render_template(
        "evaluations/justification.html",
        tender=tender,
        evaluated=evaluated,
        form=form,
        statuses=LowPriceStatus,
        overdue=evaluated.low_price_due_at is not None and evaluated.low_price_due_at < utcnow(),
    )
