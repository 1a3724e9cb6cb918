"""Pages of the results area: the public notice of a tender, the staff results page
(publish candidates, decide objections, send back to evaluation, award, fail, re-tender),
and the bidder's page (file an objection, follow it, download the result letter).

Access: the notice page is public for published tenders (404 for drafts); the staff page
needs VIEW_TENDERS in the tender's centre and its POSTs MANAGE_TENDERS (checked again by
the operations); the bidder's pages need TAKE_PART, and show only the company's own
objections and letter."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.companies.models import Company
from app.core.boundary import perform, run_operation
from app.evaluations.models import EvaluationStage
from app.evaluations.queries import evaluation_of
from app.extensions import db
from app.permissions import Permission, can
from app.records.models import RecordStatus
from app.records.operations import records_of
from app.results import letters, operations, reading
from app.results.access import letter_document, notice_document, tender_objection
from app.results.forms import (
    DecideObjectionForm,
    DeclareFailedForm,
    ObjectionForm,
    PublishAwardForm,
    PublishCandidatesForm,
    ReopenEvaluationForm,
    RetenderForm,
)
from app.results.models import ObjectionStatus
from app.storage import BlobNotFound, InvalidBlobId
from app.tenders.access import public_tender, staff_tender
from app.tenders.documents import Upload, blob_store, open_document, send_document
from app.tenders.labels import STATUS_LABELS
from app.tenders.models import Tender, TenderDocument, TenderStatus

bp = Blueprint("results", __name__, url_prefix="/results")
RECORD_LABELS = {
    RecordStatus.QUEUED: _l("queued"),
    RecordStatus.RENDERING: _l("being made"),
    RecordStatus.SIGNED: _l("signed"),
    RecordStatus.COMPLETE: _l("signed and countersigned"),
    RecordStatus.FAILED: _l("failed"),
    RecordStatus.SUPERSEDED: _l("superseded"),
}
STAGE_LABELS = {
    EvaluationStage.REVIEW: _l("compliance review"),
    EvaluationStage.SCORING: _l("technical scoring"),
    EvaluationStage.UNBLINDED: _l("unblinded"),
    EvaluationStage.FINALISED: _l("finalised"),
}
LOT_LABELS = {
    reading.LOT_PENDING: _l("under evaluation"),
    reading.LOT_CANDIDATES: _l("candidates published"),
    reading.LOT_AWARDED: _l("awarded"),
    reading.LOT_FAILED: _l("failed"),
}
OBJECTION_LABELS = {
    ObjectionStatus.OPEN: _l("open: awaiting the decision"),
    ObjectionStatus.UPHELD: _l("upheld"),
    ObjectionStatus.DISMISSED: _l("dismissed"),
}
# Where the staff results page has something to do or show.
RESULT_STATUSES = frozenset(
    {
        TenderStatus.OPENED,
        TenderStatus.EVALUATING,
        TenderStatus.CANDIDATES,
        TenderStatus.AWARDED,
        TenderStatus.FAILED,
    }
)


@bp.context_processor
def result_labels() -> dict:
    return {
        "TENDER_LABELS": STATUS_LABELS,
        "RECORD_LABELS": RECORD_LABELS,
        "STAGE_LABELS": STAGE_LABELS,
        "OBJECTION_LABELS": OBJECTION_LABELS,
        "LOT_LABELS": LOT_LABELS,
    }


def _lot_of_notice(tender: Tender) -> dict[int, str]:
    """The lot reference of each notice about one lot (for the objections and history)."""
    references = {lot.id: lot.reference for lot in reading.result_lots(tender)}
    return {
        n.id: references[n.lot_id] for n in reading.notices_of(tender) if n.lot_id in references
    }


@bp.app_template_global()
def failure_label(code: str | None) -> str:
    """A failure reason code in the reader's language."""
    return str(operations.failure_labels().get(code or "", code or ""))


@bp.app_template_global()
def result_notice_of(tender: Tender) -> dict:
    """For the public tender page's notice section: the notice in force and the links of a
    re-tender."""
    return {
        "notice": reading.current_notice(tender),
        # A tender of several lots: each lot's result (its own notice) instead.
        "lots": reading.lot_states(tender),
        "lot_labels": LOT_LABELS,
        "links": reading.retender_links(tender),
        "staff": tender.status in RESULT_STATUSES and reading.is_staff_of(current_user, tender),
        "bidder": getattr(current_user, "is_authenticated", False)
        and can(current_user, Permission.TAKE_PART)
        and reading.took_part(current_user.company_id, tender),
    }


def _bidder_only() -> None:
    if not can(current_user, Permission.TAKE_PART):
        abort(403)


# --- public --------------------------------------------------------------------------------


@bp.route("/tenders/<int:tender_id>")
def notice(tender_id: int) -> str:
    tender = public_tender(tender_id)
    return render_template(
        "results/notice.html",
        tender=tender,
        notices=reading.notices_of(tender),
        current=reading.current_notice(tender),
        links=reading.retender_links(tender),
        staff=reading.is_staff_of(current_user, tender),
        lots=reading.lot_states(tender),
    )


# --- staff ---------------------------------------------------------------------------------


@bp.route("/tenders/<int:tender_id>/notices/<int:notice_id>.json")
def signed_notice(tender_id: int, notice_id: int) -> Response:
    """A result notice as the platform signed it (public): `python -m bidding verify-notice
    NOTICE.json --platform-key receipt-key.pem` checks a copy offline."""
    document = notice_document(public_tender(tender_id), notice_id)
    return send_document(document, open_document(document))


@bp.route("/tenders/<int:tender_id>/manage")
@login_required
def manage(tender_id: int) -> str:
    tender = staff_tender(current_user, tender_id, Permission.VIEW_TENDERS)
    evaluation = evaluation_of(tender)
    objections = reading.objections_of(tender)
    ids = {c.id for c in reading.bidding_companies(tender)} | {o.company_id for o in objections}
    companies = {c.id: c for c in db.session.scalars(select(Company).where(Company.id.in_(ids)))}
    current = reading.current_notice(tender)
    return render_template(
        "results/manage.html",
        tender=tender,
        evaluation=evaluation,
        record=reading.signed_record(tender, evaluation),
        records=list(reversed(records_of(tender))),
        notices=reading.notices_of(tender),
        current=current,
        window_open=reading.window_open(current),
        reopenable=tender.status == TenderStatus.CANDIDATES
        and current is not None
        and any(
            o.notice_id == current.id and o.status == ObjectionStatus.UPHELD for o in objections
        ),
        objections=objections,
        companies=companies,
        lots=reading.lot_states(tender),
        lot_of_notice=_lot_of_notice(tender),
        letters=letters.letters_of(tender),
        links=reading.retender_links(tender),
        manage=can(current_user, Permission.MANAGE_TENDERS, tender.centre_id),
        statuses=TenderStatus,
        failable=tender.status in operations.FAILABLE,
        candidates_form=PublishCandidatesForm(),
        award_form=PublishAwardForm(),
        decide_form=DecideObjectionForm(formdata=None),
        reopen_form=ReopenEvaluationForm(formdata=None),
        fail_form=DeclareFailedForm(formdata=None),
        retender_form=RetenderForm(),
    )


def _manage_url(tender: Tender) -> str:
    return url_for(".manage", tender_id=tender.id)


@bp.route("/tenders/<int:tender_id>/candidates", methods=["POST"])
@login_required
def publish_candidates(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, Permission.MANAGE_TENDERS)
    if not PublishCandidatesForm().validate_on_submit():
        abort(400)
    return run_operation(
        operations.publish_candidates,
        tender,
        success=_("The candidates are published; the objection period has begun."),
        back=_manage_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/objections/<int:objection_id>/decide", methods=["POST"])
@login_required
def decide(tender_id: int, objection_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, Permission.MANAGE_TENDERS)
    objection = tender_objection(tender, objection_id)
    form = DecideObjectionForm()
    if not form.validate_on_submit():
        flash(_("Choose a decision and give its reason."), "error")
        return redirect(_manage_url(tender), code=303)
    return run_operation(
        lambda actor, o: operations.decide_objection(actor, o, form.outcome.data, form.reason.data),
        objection,
        success=_("The decision is recorded and the bidder is told."),
        back=_manage_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/reopen", methods=["POST"])
@login_required
def reopen(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, Permission.MANAGE_TENDERS)
    form = ReopenEvaluationForm()
    if not form.validate_on_submit():
        flash(_("Choose the stage and give the reason."), "error")
        return redirect(_manage_url(tender), code=303)
    return run_operation(
        lambda actor, t: operations.reopen_evaluation(
            actor, t, form.reason.data, EvaluationStage(form.stage.data)
        ),
        tender,
        success=_("The tender is back in evaluation; the old record is superseded."),
        back=_manage_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/award", methods=["POST"])
@login_required
def award(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, Permission.MANAGE_TENDERS)
    form = PublishAwardForm()
    if not form.validate_on_submit():
        abort(400)
    return run_operation(
        lambda actor, t: operations.publish_award(
            actor, t, operations.resolve_lot(t, form.lot.data)
        ),
        tender,
        success=_("The award is published; the result letters are being made."),
        back=_manage_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/fail", methods=["POST"])
@login_required
def fail(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, Permission.MANAGE_TENDERS)
    form = DeclareFailedForm()
    if not form.validate_on_submit():
        flash(_("Choose the reason the tender failed."), "error")
        return redirect(_manage_url(tender), code=303)
    return run_operation(
        lambda actor, t: operations.declare_failed(
            actor,
            t,
            form.reason_code.data,
            form.text.data or "",
            operations.resolve_lot(t, form.lot.data),
        ),
        tender,
        success=_("The tender is declared failed; the notice is public."),
        back=_manage_url(tender),
    )


@bp.route("/tenders/<int:tender_id>/retender", methods=["POST"])
@login_required
def retender(tender_id: int) -> Response:
    tender = staff_tender(current_user, tender_id, Permission.MANAGE_TENDERS)
    if not RetenderForm().validate_on_submit():
        abort(400)
    response, new = perform(
        operations.retender,
        tender,
        success=_("A new draft is ready: check its schedule, then publish it."),
        back=_manage_url(tender),
    )
    if new is not None:
        return redirect(url_for("tenders.edit", tender_id=new.id))
    return response


# --- bidders -------------------------------------------------------------------------------


@bp.route("/tenders/<int:tender_id>/bidder")
@login_required
def bidder(tender_id: int) -> str:
    _bidder_only()
    tender = public_tender(tender_id)
    current = reading.current_notice(tender)
    took_part = reading.took_part(current_user.company_id, tender)
    objections = reading.objections_of(tender, current_user.company_id) if took_part else []
    may_object = (
        took_part
        and tender.status == TenderStatus.CANDIDATES
        and reading.window_open(current)
        and not any(o.status == ObjectionStatus.OPEN for o in objections)
    )
    lots = reading.lot_states(tender) if took_part else []
    company = current_user.company_id
    open_on = {o.notice_id for o in objections if o.status == ObjectionStatus.OPEN}
    objectable = {
        state["lot"].id
        for state in lots
        if state["status"] == reading.LOT_CANDIDATES
        and state["window_open"]
        and state["notice"].id not in open_on
        and reading.took_part(company, tender, state["lot"])
    }
    return render_template(
        "results/bidder.html",
        tender=tender,
        lots=lots,
        objectable=objectable,
        lot_of_notice=_lot_of_notice(tender),
        current=current,
        took_part=took_part,
        objections=objections,
        may_object=may_object,
        window_open=reading.window_open(current),
        form=ObjectionForm(formdata=None),
        letter=letters.letter_of(tender, current_user.company_id) if took_part else None,
    )


@bp.route("/tenders/<int:tender_id>/objections", methods=["POST"])
@login_required
def file_objection(tender_id: int) -> Response:
    _bidder_only()
    tender = public_tender(tender_id)
    back = url_for(".bidder", tender_id=tender.id)
    form = ObjectionForm()
    if not form.validate_on_submit():
        flash(_("Say what the objection is about and why."), "error")
        return redirect(back, code=303)
    uploads = [
        Upload(f.filename or "", f.mimetype, f.stream)
        for f in request.files.getlist(form.attachments.name)
        if f and f.filename
    ]
    return run_operation(
        lambda actor, t: operations.file_objection(
            actor, t, form.text.data, uploads, operations.resolve_lot(t, form.lot.data)
        ),
        tender,
        success=_("Your objection is filed; the trading centre will answer it."),
        back=back,
    )


@bp.route("/tenders/<int:tender_id>/objections/<int:objection_id>/attachment")
@login_required
def attachment(tender_id: int, objection_id: int) -> Response:
    """One attachment (`?n=` its position) of an objection: the filing company and the
    staff overseeing the centre."""
    tender = public_tender(tender_id)
    staff = can(current_user, Permission.VIEW_TENDERS, tender.centre_id)
    if not staff and not can(current_user, Permission.TAKE_PART):
        abort(403)
    objection = tender_objection(tender, objection_id)
    if not staff and objection.company_id != current_user.company_id:
        abort(404)
    index = request.args.get("n", 0, type=int)
    if not 0 <= index < len(objection.attachments or []):
        abort(404)
    item = objection.attachments[index]
    try:
        stream = blob_store().open(item["sha256"])
    except (BlobNotFound, InvalidBlobId):
        abort(404)
    document = TenderDocument(
        filename=item["filename"],
        content_type=item["content_type"],
        size=item["size"],
        sha256=item["sha256"],
    )
    return send_document(document, stream)


def _send_letter(tender: Tender, company_id: int) -> Response:
    document = letter_document(tender, company_id)
    return send_document(document, open_document(document))


@bp.route("/tenders/<int:tender_id>/letter")
@login_required
def letter(tender_id: int) -> Response:
    """The signed-in bidder's own company's result letter."""
    _bidder_only()
    tender = public_tender(tender_id)
    return _send_letter(tender, current_user.company_id)


@bp.route("/tenders/<int:tender_id>/companies/<int:company_id>/letter")
@login_required
def company_letter(tender_id: int, company_id: int) -> Response:
    """A company's letter: its own bidders, and the staff and supervisors of the centre."""
    tender = public_tender(tender_id)
    if not letters.may_read_letter(current_user, tender, company_id):
        abort(403)
    return _send_letter(tender, company_id)
