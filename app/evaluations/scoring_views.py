"""Pages of blind technical scoring: the expert's sheet (bids by technical code only), a
page per code with its technical part and the criteria, the chair's progress page (scores
only once every sheet is locked), unblinding, the results and finalising.

Access: Role.EXPERT for every page (403 for the other roles), then the operation's own
check: a panel member who may see the tender (404 for everyone else, so nothing about the
tender is confirmed); the chair's pages and actions also need the chair's seat (403). The
results are also shown to staff of the tender's centre and supervisors (VIEW_TENDERS)."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import select

from app.accounts.models import Role
from app.core.boundary import run_operation as _run
from app.core.errors import OperationError
from app.evaluations import charts, scoring
from app.evaluations.models import Evaluation, EvaluationStage
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
from app.panels.models import MemberStatus, PanelMember
from app.storage import BlobNotFound, InvalidBlobId
from app.tenders.documents import blob_store
from app.tenders.models import Tender

bp = Blueprint("scoring", __name__, url_prefix="/scoring")


def _tender(tender_id: int) -> Tender:
    if current_user.role != Role.EXPERT:
        abort(403)
    tender = db.session.get(Tender, tender_id)
    if tender is None or not tender.is_public:
        abort(404)
    return tender


def _call(function, *args):
    """Run a reading operation; its 404 is a plain 404, other refusals go back up. A read
    may bring the outlier flags up to date (every sheet locked): that is committed."""
    try:
        outcome = function(current_user, *args)
    except OperationError as error:
        db.session.rollback()
        if error.status == 404:
            abort(404)
        raise
    db.session.commit()
    return outcome


def _sheet_url(tender: Tender) -> str:
    return url_for(".sheet", tender_id=tender.id)


@bp.route("/")
@login_required
def index():
    if current_user.role != Role.EXPERT:
        abort(403)
    members = db.session.scalars(
        select(PanelMember).where(
            PanelMember.user_id == current_user.id,
            PanelMember.status == MemberStatus.ACCEPTED,
            PanelMember.conflict_declared_at.is_not(None),
        )
    ).all()
    items = []
    for member in members:
        evaluation = db.session.get(Evaluation, member.tender_id)
        if evaluation is not None and evaluation.stage in scoring.READABLE_STAGES:
            items.append((db.session.get(Tender, member.tender_id), evaluation))
    return render_template("scoring/index.html", items=items, stages=EvaluationStage)


@bp.route("/tenders/<int:tender_id>")
@login_required
def sheet(tender_id: int):
    tender = _tender(tender_id)
    view = _call(scoring.my_sheet, tender)
    return render_template(
        "scoring/sheet.html",
        tender=tender,
        view=view,
        chair=scoring.is_panel_chair(current_user, tender),
        stages=EvaluationStage,
        lock_form=LockSheetForm(),
        outlier_form=OutlierReasonForm(),
    )


def _bid_form(view, entry):
    data = {}
    for c in view.criteria:
        score = entry.scores.get(c.key)
        data[f"score_{c.key}"] = score.score if score else ""
        data[f"reason_{c.key}"] = score.reason if score else ""
    return bid_scores_form(view.criteria, data=data)


@bp.route("/tenders/<int:tender_id>/bids/<code>", methods=["GET", "POST"])
@login_required
def bid(tender_id: int, code: str):
    tender = _tender(tender_id)
    view = _call(scoring.my_sheet, tender)
    try:
        entry = view.bid(code)
    except OperationError:
        abort(404)
    form = bid_scores_form(view.criteria)
    if form.is_submitted():
        if not form.validate():
            flash(_("Check the fields marked below."), "error")
            return _render_bid(tender, view, entry, form, 400)
        entries = [
            scoring.ScoreEntry(code, key, score, reason)
            for key, score, reason in form.entries(view.criteria)
        ]
        try:
            scoring.save_scores(current_user, tender, entries)
        except scoring.ScoresRefused as refused:
            db.session.rollback()
            for (_code, key), message in refused.problems.items():
                field = getattr(form, f"score_{key}", None)
                if field is not None:
                    field.errors = [*field.errors, str(message)]
            flash(_("Nothing was saved: correct the scores marked below."), "error")
            return _render_bid(tender, view, entry, form, 400)
        except OperationError as error:
            db.session.rollback()
            if error.status == 404:
                abort(404)
            flash(str(error.message), "error")
            return redirect(url_for(".bid", tender_id=tender.id, code=code), code=303)
        db.session.commit()
        flash(_("Your draft scores for %(code)s are saved.", code=code), "success")
        return redirect(url_for(".bid", tender_id=tender.id, code=code))
    return _render_bid(tender, view, entry, _bid_form(view, entry))


def _render_bid(tender, view, entry, form, status: int = 200):
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
def document(tender_id: int, code: str):
    """The stripped technical part, inline, under a neutral name (the code), never cached."""
    tender = _tender(tender_id)
    return send_technical_part(_call(scoring.technical_part, tender, code))


def send_technical_part(row) -> Response:
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
def lock(tender_id: int):
    tender = _tender(tender_id)
    if not LockSheetForm().validate_on_submit():
        abort(400)
    return _run(
        scoring.lock_sheet,
        tender,
        success=_("Your sheet is submitted and locked."),
        back=_sheet_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/outliers", methods=["POST"])
@login_required
def outlier_reason(tender_id: int):
    tender = _tender(tender_id)
    form = OutlierReasonForm()
    if not form.validate_on_submit():
        flash(_("Write the reason for this score."), "error")
        return redirect(_sheet_url(tender), code=303)
    return _run(
        lambda actor, t: scoring.give_outlier_reason(
            actor, t, form.code.data, form.criterion.data, form.reason.data
        ),
        tender,
        success=_("Your reason is recorded."),
        back=_sheet_url(tender),
    )


def _reopen_form(progress) -> ReopenSheetForm:
    form = ReopenSheetForm()
    form.seat.choices = [
        (p.member.position, f"{p.member.position}. {p.member.user.full_name}")
        for p in progress
        if p.locked_at is not None
    ]
    return form


def spread_charts(data, pct, labels=None) -> list[tuple[str, Markup]]:
    """One spread chart per criterion; rows labelled by code (or `labels[code]`)."""
    out = []
    for c in data.criteria:
        rows = []
        for code in data.codes:
            scores = data.scores[code][c.key]
            rows.append(
                (
                    (labels or {}).get(code, code),
                    {e: Decimal(s.score) for e, s in scores.items()},
                    frozenset(e for e, s in scores.items() if s.outlier),
                )
            )
        svg = charts.score_spread_svg(
            rows,
            c.max_points,
            title=_(
                "Expert scores for %(criterion)s (max %(max)s)", criterion=c.title, max=c.max_points
            ),
            outlier_pct=pct,
            mean_label=_("panel mean"),
            outlier_label=_("outlier"),
        )
        out.append((c.title, Markup(svg)))  # noqa: S704 - built by charts.py, text escaped
    return out


@bp.route("/tenders/<int:tender_id>/panel")
@login_required
def panel(tender_id: int):
    tender = _tender(tender_id)
    progress = _call(scoring.progress, tender)
    evaluation = scoring.review.evaluation_of(tender)
    everyone_locked = scoring.all_locked(tender)
    data = charts_ = None
    open_outliers = []
    if everyone_locked:
        data = _call(scoring.panel_scores, tender)
        charts_ = spread_charts(data, scoring.outlier_pct_of(tender))
        open_outliers = scoring.open_outliers(tender)
    return render_template(
        "scoring/panel.html",
        tender=tender,
        evaluation=evaluation,
        stages=EvaluationStage,
        progress=progress,
        everyone_locked=everyone_locked,
        data=data,
        charts=charts_,
        open_outliers=open_outliers,
        reopen_form=_reopen_form(progress),
        unblind_form=UnblindForm(),
    )


@bp.route("/tenders/<int:tender_id>/reopen", methods=["POST"])
@login_required
def reopen(tender_id: int):
    tender = _tender(tender_id)
    progress = _call(scoring.progress, tender)
    form = _reopen_form(progress)
    back = url_for(".panel", tender_id=tender.id)
    if not form.validate_on_submit():
        flash(_("Choose a locked sheet and give the reason."), "error")
        return redirect(back, code=303)
    return _run(
        lambda actor, t: scoring.reopen_sheet(actor, t, form.seat.data, form.reason.data),
        tender,
        success=_("The sheet is reopened; its author can change the scores and lock again."),
        back=back,
    )


@bp.route("/tenders/<int:tender_id>/unblind", methods=["POST"])
@login_required
def unblind(tender_id: int):
    tender = _tender(tender_id)
    if not UnblindForm().validate_on_submit():
        abort(400)
    return _run(
        scoring.unblind,
        tender,
        success=_("The identities are revealed and the bids ranked."),
        back=url_for(".results", tender_id=tender.id),
        refused_back=url_for(".panel", tender_id=tender.id),
    )


@bp.route("/tenders/<int:tender_id>/results")
@login_required
def results(tender_id: int):
    tender = db.session.get(Tender, tender_id)
    if tender is None or not tender.is_public:
        abort(404)
    if current_user.role == Role.EXPERT:
        outcome = _call(scoring.results, tender)
    else:
        try:
            outcome = scoring.results_for_staff(current_user, tender)
        except OperationError as error:
            if error.status == 404:
                abort(404)
            raise
    result = outcome.document["result"]
    names = {line.bidder: line.company.name for line in outcome.lines}
    price = result.get("price") or {}
    price_svg = None
    if price.get("valid_prices"):
        price_svg = Markup(  # noqa: S704 - built by charts.py, text escaped
            charts.price_chart_svg(
                [
                    (names.get(p["bid"], p["bid"]), Decimal(p["price"]))
                    for p in price["valid_prices"]
                ],
                Decimal(price["benchmark"]) if price.get("benchmark") else None,
                title=_("Prices of the compliant bids"),
                benchmark_label=_("Benchmark"),
            )
        )
    data = scoring.panel_data(tender)
    labels = {line.code: f"{line.code} · {line.company.name}" for line in outcome.lines}
    return render_template(
        "scoring/results.html",
        tender=tender,
        outcome=outcome,
        result=result,
        price_svg=price_svg,
        charts=spread_charts(data, scoring.outlier_pct_of(tender), labels=labels),
        chair=scoring.is_panel_chair(current_user, tender),
        stages=EvaluationStage,
        finalise_form=FinaliseForm(),
        draw_form=DrawLotsForm(),
        needs_draw=scoring.needs_lot_draw(outcome.evaluation),
    )


@bp.route("/tenders/<int:tender_id>/draw-lots", methods=["POST"])
@login_required
def draw_lots(tender_id: int):
    tender = _tender(tender_id)
    if not DrawLotsForm().validate_on_submit():
        abort(400)
    return _run(
        scoring.draw_lots,
        tender,
        success=_("Lots were drawn for the tied bids; the ranking is recomputed."),
        back=url_for(".results", tender_id=tender.id),
    )


@bp.route("/tenders/<int:tender_id>/finalise", methods=["POST"])
@login_required
def finalise(tender_id: int):
    tender = _tender(tender_id)
    if not FinaliseForm().validate_on_submit():
        abort(400)
    return _run(
        scoring.finalise,
        tender,
        success=_("The evaluation is finalised; its record is being made."),
        back=url_for(".results", tender_id=tender.id),
    )
