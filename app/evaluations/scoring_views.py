"""Pages of blind technical scoring: the expert's sheet (bids by technical code only), a
page per code with its technical part and the criteria, the chair's progress page (scores
only once every sheet is locked), unblinding, the results and finalising.

Access: Role.EXPERT for every page (403 for the other roles), then the operation's own
check: a panel member who may see the tender (404 for everyone else, so nothing about the
tender is confirmed); the chair's pages and actions also need the chair's seat (403). The
results are also shown to staff of the tender's centre and supervisors (VIEW_TENDERS)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from app.accounts.models import Role
from app.core.boundary import attempt
from app.core.boundary import run_operation as _run
from app.evaluations import operations, presentation, queries, scoring_file
from app.evaluations.models import EvaluationStage
from app.evaluations.operations import MemberProgress, SheetBid, SheetView
from app.evaluations.scoring_forms import (
    DrawLotsForm,
    FinaliseForm,
    LockSheetForm,
    OutlierReasonForm,
    ReopenSheetForm,
    UnblindForm,
    bid_scores_form,
)
from app.extensions import db, talisman
from app.opening.models import EvaluatedBid
from app.storage import BlobNotFound, InvalidBlobId
from app.tenders import participation
from app.tenders.access import public_tender
from app.tenders.documents import blob_store
from app.tenders.models import Tender

bp = Blueprint("scoring", __name__, url_prefix="/scoring")


def _expert_tender(tender_id: int) -> Tender:
    """Experts only (403 for the other roles), then any public tender (404): the
    operation checks the seat (404 for everyone off the panel)."""
    if current_user.role != Role.EXPERT:
        abort(403)
    return public_tender(tender_id)


def _sheet_url(tender: Tender) -> str:
    return url_for(".sheet", tender_id=tender.id)


@bp.route("/")
@login_required
def index() -> str:
    if current_user.role != Role.EXPERT:
        abort(403)
    return render_template(
        "scoring/index.html",
        items=queries.expert_evaluations(current_user),
        stages=EvaluationStage,
        # The clock's reminders (a sheet to lock, a window closed) and other notices.
        unread=db.session.scalars(
            participation.notifications_query(current_user, unread_only=True).limit(10)
        ).all(),
    )


@bp.route("/tenders/<int:tender_id>")
@login_required
def sheet(tender_id: int) -> str:
    tender = _expert_tender(tender_id)
    view = operations.my_sheet(current_user, tender)
    return render_template(
        "scoring/sheet.html",
        tender=tender,
        view=view,
        chair=queries.is_panel_chair(current_user, tender),
        stages=EvaluationStage,
        lock_form=LockSheetForm(),
        outlier_form=OutlierReasonForm(),
    )


def _bid_form(view: SheetView, entry: SheetBid) -> FlaskForm:
    data = {}
    for c in view.criteria:
        score = entry.scores.get(c.key)
        data[f"score_{c.key}"] = score.score if score else ""
        data[f"reason_{c.key}"] = score.reason if score else ""
    return bid_scores_form(view.criteria, data=data)


@bp.route("/tenders/<int:tender_id>/bids/<code>", methods=["GET", "POST"])
@login_required
def bid(tender_id: int, code: str) -> Response | tuple[str, int]:
    tender = _expert_tender(tender_id)
    view = operations.my_sheet(current_user, tender)
    entry = view.bid(code)
    form = bid_scores_form(view.criteria)
    if not form.is_submitted():
        return _render_bid(tender, view, entry, _bid_form(view, entry))
    if not form.validate():
        flash(_("Check the fields marked below."), "error")
        return _render_bid(tender, view, entry, form, 400)
    entries = [
        operations.ScoreEntry(code, key, score, reason)
        for key, score, reason in form.entries(view.criteria)
    ]
    here = url_for(".bid", tender_id=tender.id, code=code)
    outcome = attempt(operations.save_scores, current_user, tender, entries, flash_refusal=False)
    if isinstance(outcome.error, operations.ScoresRefused):
        for (_code, key), message in outcome.error.problems.items():
            field = getattr(form, f"score_{key}", None)
            if field is not None:
                field.errors = [*field.errors, str(message)]
        flash(_("Nothing was saved: correct the scores marked below."), "error")
        return _render_bid(tender, view, entry, form, 400)
    if not outcome.ok:
        if outcome.error.status == 404:
            abort(404)
        flash(str(outcome.error.message), "error")
        return redirect(here, code=303)
    flash(_("Your draft scores for %(code)s are saved.", code=code), "success")
    return redirect(here)


def _render_bid(
    tender: Tender, view: SheetView, entry: SheetBid, form: FlaskForm, status: int = 200
) -> tuple[str, int]:
    codes = [b.code for b in view.bids]
    index = codes.index(entry.code)
    return (
        render_template(
            "scoring/bid.html",
            tender=tender,
            view=view,
            entry=entry,
            form=form,
            previous=codes[index - 1] if index > 0 else None,
            next=codes[index + 1] if index + 1 < len(codes) else None,
            editable=view.evaluation.stage == EvaluationStage.SCORING and not view.locked,
        ),
        status,
    )


# The technical part opens in the browser's own PDF viewer, which Chromium runs as a plugin
# (object-src) with inline styles on its generated page. This response is a PDF, never
# HTML (nosniff), so the relaxed policy holds no script; nothing may frame it.
PDF_CSP = {
    "default-src": "'none'",
    "object-src": "'self'",
    "style-src": "'unsafe-inline'",
    "frame-ancestors": "'none'",
}


@bp.route("/tenders/<int:tender_id>/bids/<code>/document")
@talisman(content_security_policy=PDF_CSP)
@login_required
def document(tender_id: int, code: str) -> Response:
    """The stripped technical part, inline, under a neutral name (the code), never cached."""
    tender = _expert_tender(tender_id)
    return send_technical_part(operations.technical_part(current_user, tender, code))


def send_technical_part(row: EvaluatedBid) -> Response:
    """The stripped technical part of `row` under its code: a PDF inline, anything else as
    a download; never cached. Shared with the API."""
    try:
        with blob_store().open(row.technical_sha256) as handle:
            data = handle.read()
    except (BlobNotFound, InvalidBlobId):
        abort(404)
    is_pdf = data.startswith(b"%PDF-")
    response = Response(data, mimetype="application/pdf" if is_pdf else "application/octet-stream")
    filename = f"{row.code}.pdf" if is_pdf else f"{row.code}.bin"
    disposition = "inline" if is_pdf else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/tenders/<int:tender_id>/lock", methods=["POST"])
@login_required
def lock(tender_id: int) -> Response:
    tender = _expert_tender(tender_id)
    if not LockSheetForm().validate_on_submit():
        abort(400)
    return _run(
        operations.lock_sheet,
        tender,
        success=_("Your sheet is submitted and locked."),
        back=_sheet_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/outliers", methods=["POST"])
@login_required
def outlier_reason(tender_id: int) -> Response:
    tender = _expert_tender(tender_id)
    form = OutlierReasonForm()
    if not form.validate_on_submit():
        flash(_("Write the reason for this score."), "error")
        return redirect(_sheet_url(tender), code=303)
    return _run(
        lambda actor, t: operations.give_outlier_reason(
            actor, t, form.code.data, form.criterion.data, form.reason.data
        ),
        tender,
        success=_("Your reason is recorded."),
        back=_sheet_url(tender),
    )


def _reopen_form(progress: list[MemberProgress]) -> ReopenSheetForm:
    form = ReopenSheetForm()
    form.seat.choices = [
        (p.member.position, f"{p.member.position}. {p.member.user.full_name}")
        for p in progress
        if p.locked_at is not None
    ]
    return form


@bp.route("/tenders/<int:tender_id>/panel")
@login_required
def panel(tender_id: int) -> str:
    tender = _expert_tender(tender_id)
    progress = operations.progress(current_user, tender)
    everyone_locked = queries.all_locked(tender)
    data = charts = None
    open_outliers = []
    if everyone_locked:
        data = operations.panel_scores(current_user, tender)
        charts = presentation.spread_charts(data, scoring_file.outlier_pct_of(tender))
        open_outliers = queries.open_outliers(tender)
    return render_template(
        "scoring/panel.html",
        tender=tender,
        evaluation=queries.evaluation_of(tender),
        stages=EvaluationStage,
        progress=progress,
        everyone_locked=everyone_locked,
        data=data,
        charts=charts,
        open_outliers=open_outliers,
        reopen_form=_reopen_form(progress),
        unblind_form=UnblindForm(),
    )


@bp.route("/tenders/<int:tender_id>/reopen", methods=["POST"])
@login_required
def reopen(tender_id: int) -> Response:
    tender = _expert_tender(tender_id)
    form = _reopen_form(operations.progress(current_user, tender))
    back = url_for(".panel", tender_id=tender.id)
    if not form.validate_on_submit():
        flash(_("Choose a locked sheet and give the reason."), "error")
        return redirect(back, code=303)
    return _run(
        lambda actor, t: operations.reopen_sheet(actor, t, form.seat.data, form.reason.data),
        tender,
        success=_("The sheet is reopened; its author can change the scores and lock again."),
        back=back,
    )


@bp.route("/tenders/<int:tender_id>/unblind", methods=["POST"])
@login_required
def unblind(tender_id: int) -> Response:
    tender = _expert_tender(tender_id)
    if not UnblindForm().validate_on_submit():
        abort(400)
    return _run(
        operations.unblind,
        tender,
        success=_("The identities are revealed and the bids ranked."),
        back=url_for(".results", tender_id=tender.id),
        refused_back=url_for(".panel", tender_id=tender.id),
    )


@bp.route("/tenders/<int:tender_id>/results")
@login_required
def results(tender_id: int) -> str:
    tender = public_tender(tender_id)
    if current_user.role == Role.EXPERT:
        outcome = operations.results(current_user, tender)
    else:
        outcome = operations.results_for_staff(current_user, tender)
    result = outcome.document.get("result")  # None for several lots: see outcome.lots
    names = {line.bidder: line.company.name for line in outcome.lines}
    labels = {line.code: f"{line.code} · {line.company.name}" for line in outcome.lines}
    return render_template(
        "scoring/results.html",
        tender=tender,
        outcome=outcome,
        result=result,
        price_svg=None if result is None else presentation.price_chart(result, names),
        lot_price_svgs={
            lot.lot: presentation.price_chart(lot.document["result"], names) for lot in outcome.lots
        },
        charts=presentation.spread_charts(
            queries.panel_data(tender), scoring_file.outlier_pct_of(tender), labels=labels
        ),
        chair=queries.is_panel_chair(current_user, tender),
        stages=EvaluationStage,
        reason_text=presentation.reason_text,
        finalise_form=FinaliseForm(),
        draw_form=DrawLotsForm(),
        needs_draw=queries.needs_lot_draw(outcome.evaluation),
    )


@bp.route("/tenders/<int:tender_id>/draw-lots", methods=["POST"])
@login_required
def draw_lots(tender_id: int) -> Response:
    tender = _expert_tender(tender_id)
    if not DrawLotsForm().validate_on_submit():
        abort(400)
    return _run(
        operations.draw_lots,
        tender,
        success=_("Lots were drawn for the tied bids; the ranking is recomputed."),
        back=url_for(".results", tender_id=tender.id),
    )


@bp.route("/tenders/<int:tender_id>/finalise", methods=["POST"])
@login_required
def finalise(tender_id: int) -> Response:
    tender = _expert_tender(tender_id)
    if not FinaliseForm().validate_on_submit():
        abort(400)
    return _run(
        operations.finalise,
        tender,
        success=_("The evaluation is finalised; its record is being made."),
        back=url_for(".results", tender_id=tender.id),
    )
