"""Staff: templates and tenders of their centre. Supervisors read; admins do everything.

Each view loads its object (404), checks access before reading any form (403), validates
the form and calls one operation through the transaction boundary (`app.core.boundary`):
committed once and redirected, or refused, settled and shown again with its message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app import tender_templates
from app.accounts.limits import account_limit, signed_in_account
from app.accounts.models import Role, User
from app.centres.operations import all_centres
from app.core.access import restrict_blueprint
from app.core.boundary import attempt
from app.core.errors import OperationError
from app.core.formatting import centre_timezone
from app.core.types import utcnow
from app.extensions import db, limiter
from app.permissions import Permission, can, require
from app.tenders import documents, operations, participation, template_ops
from app.tenders.access import staff_template, staff_tender
from app.tenders.forms import (
    AddendumForm,
    AnswerForm,
    AttachmentForm,
    BondForm,
    CancelForm,
    CopyTemplateForm,
    PreviewForm,
    PublishForm,
    TemplateTextForm,
    TenderForm,
)
from app.tenders.labels import LOT_AWARD_RULE_LABELS
from app.tenders.lot_changes import LotChange
from app.tenders.models import (
    Enquiry,
    TemplateVersion,
    Tender,
    TenderDocument,
    TenderRegistration,
    TenderStatus,
)
from app.tenders.operations import LotInput, TenderInput
from app.tenders.template_ops import TemplateInvalid

bp = Blueprint("tenders", __name__, url_prefix="/centre")
restrict_blueprint(bp, Role.STAFF, Role.ADMIN, Role.SUPERVISOR)


Page = tuple[str, int]


def _flash_form_errors(form: FlaskForm) -> None:
    for name, errors in form.errors.items():
        label = form[name].label.text if name in form._fields else name
        flash(f"{label}: {' '.join(str(e) for e in _flat(errors))}", "error")


def _flat(errors: Any) -> Iterator[str]:
    """FieldList / FormField errors nest; show them flat."""
    if isinstance(errors, dict):
        for value in errors.values():
            yield from _flat(value)
    elif isinstance(errors, list | tuple):
        for value in errors:
            yield from _flat(value)
    elif errors:
        yield errors


# --- templates ---------------------------------------------------------------------------


def _copy_form() -> CopyTemplateForm:
    form = CopyTemplateForm()
    if current_user.role == Role.ADMIN:
        form.centre_id.choices = [SelectChoice(c.id, f"{c.name} ({c.code})") for c in all_centres()]
    else:
        del form.centre_id
    return form


@bp.route("/templates/")
def templates() -> str:
    items = template_ops.templates_visible_to(current_user)
    return render_template(
        "tenders/templates.html",
        builtins=[t for t in items if t.centre_id is None],
        copies=[t for t in items if t.centre_id is not None],
    )


@bp.route("/templates/<int:template_id>")
def template(template_id: int) -> str:
    template = staff_template(current_user, template_id)
    number = request.args.get("version", type=int)
    version = next((v for v in template.versions if v.number == number), template.latest)
    if version is None:
        abort(404)
    authors = _names({v.created_by_id for v in template.versions})
    return render_template(
        "tenders/template.html",
        template=template,
        version=version,
        authors=authors,
        copy_form=_copy_form() if can(current_user, Permission.MANAGE_TEMPLATES) else None,
        may_edit=template.centre_id is not None
        and can(current_user, Permission.MANAGE_TEMPLATES, centre_id=template.centre_id),
        may_create=can(current_user, Permission.MANAGE_TENDERS),
    )


@bp.route("/templates/<int:template_id>/copy", methods=["POST"])
def copy_template(template_id: int) -> Response:
    template = staff_template(current_user, template_id)
    require(current_user, Permission.MANAGE_TEMPLATES)
    form = _copy_form()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return redirect(url_for(".template", template_id=template.id))
    centre_id = form.centre_id.data if "centre_id" in form else current_user.centre_id
    outcome = attempt(template_ops.copy_template, current_user, template, centre_id, form.key.data)
    if not outcome.ok:
        return redirect(url_for(".template", template_id=template_id))
    flash(_("The template is copied into your centre. Edit it here."), "success")
    return redirect(url_for(".edit_template", template_id=outcome.value.id))


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
def edit_template(template_id: int) -> Response | Page:
    template = staff_template(current_user, template_id)
    require(current_user, Permission.MANAGE_TEMPLATES, centre_id=template.centre_id)
    if template.centre_id is None:
        flash(_("Built-in templates are read-only: copy one first."), "info")
        return redirect(url_for(".template", template_id=template.id))
    form = TemplateTextForm()
    errors, status = [], 200
    if request.method == "GET" and template.latest is not None:
        form.yaml_text.data = template.latest.yaml_text
    if form.validate_on_submit():
        outcome = attempt(
            template_ops.save_template,
            current_user,
            template,
            form.yaml_text.data,
            flash_refusal=False,
        )
        if outcome.ok:
            number = outcome.value.number
            flash(_("Version %(n)d is saved.", n=number), "success")
            return redirect(url_for(".template", template_id=template_id, version=number))
        status = outcome.error.status
        if isinstance(outcome.error, TemplateInvalid):
            errors = outcome.error.errors
            flash(_("The template is not valid; nothing was saved."), "error")
        else:
            flash(str(outcome.error.message), "error")
    elif form.errors:
        status = 400
    return render_template(
        "tenders/template_edit.html", template=template, form=form, errors=errors
    ), status


@bp.route("/templates/preview", methods=["POST"])
def preview_template() -> Page:
    """The rendered tender-document body for a template text (sample tender data), or its
    errors: an HTML fragment for the editor's live preview."""
    require(current_user, Permission.MANAGE_TEMPLATES)
    form = PreviewForm()
    if not form.validate_on_submit():
        return render_template("tenders/_preview.html", body=None, errors=[], empty=True), 400
    body, errors, sample = template_ops.preview_template(
        current_user, form.yaml_text.data, str(get_locale() or "en")
    )
    return render_template(
        "tenders/_preview.html",
        body=Markup(body) if body is not None else None,  # noqa: S704 (markdown-it, HTML off)
        errors=errors,
        sample=sample,
        empty=False,
    ), (200 if body is not None else 422)


# --- tenders -----------------------------------------------------------------------------


def _names(user_ids: Iterable[int | None]) -> dict[int, str]:
    ids = [i for i in user_ids if i is not None]
    if not ids:
        return {}
    return {u.id: u.full_name for u in db.session.scalars(select(User).where(User.id.in_(ids)))}


STATUS_FILTERS = ("all", *TenderStatus)


@bp.route("/tenders/")
def index() -> str:
    status = request.args.get("status", "all")
    if status not in STATUS_FILTERS:
        abort(400)
    query = operations.tenders_visible_to(current_user, None if status == "all" else status)
    page = db.paginate(query, per_page=25, error_out=False)
    return render_template(
        "tenders/index.html",
        page=page,
        status=status,
        statuses=STATUS_FILTERS,
        may_create=can(current_user, Permission.MANAGE_TENDERS),
    )


def _prepare_tender_form(form: TenderForm, centre_id: int | None) -> None:
    """Choices that depend on who is asking: the centre (admins pick one), the custodians."""
    if centre_id is None:
        form.centre_id.choices = [SelectChoice(c.id, f"{c.name} ({c.code})") for c in all_centres()]
    else:
        del form.centre_id
    form.custodian_ids.choices = [
        SelectChoice(u.id, f"{u.full_name} ({u.email}, {_role_label(u.role)})")
        for u in operations.custodian_candidates(centre_id)
    ]


def _role_label(role: str) -> str:
    return {
        Role.CUSTODIAN: _("custodian"),
        Role.STAFF: _("staff"),
        Role.SUPERVISOR: _("supervisor"),
    }.get(role, role)


def _tender_input(form: TenderForm) -> TenderInput:
    return TenderInput(
        reference=form.reference.data or "",
        title=form.title.data or "",
        description=form.description.data or "",
        procuring_entity=form.procuring_entity.data or "",
        budget=form.budget.data,
        bid_bond_amount=form.bid_bond_amount.data,
        publication_at=form.publication_at.data,
        enquiry_deadline=form.enquiry_deadline.data,
        submission_deadline=form.submission_deadline.data,
        opening_at=form.opening_at.data,
        evaluation_days=form.evaluation_days.data,
        multi_lot_bidding=bool(form.multi_lot_bidding.data),
        max_lots_won=form.max_lots_won.data,
        lot_award_rule=form.lot_award_rule.data or "lot_order",
        lots=[
            LotInput(
                title=lot.title.data or "",
                budget=lot.budget.data,
                ceiling_price=lot.ceiling_price.data,
                reserve_price=lot.reserve_price.data,
                reference=(lot.reference.data or "").strip(),
                bid_bond_amount=lot.bid_bond_amount.data,
            )
            for lot in form.filled_lots()
        ],
        custodian_ids=list(form.custodian_ids.data or []),
        custodian_threshold=form.custodian_threshold.data,
    )


def _default_schedule(doc: dict, category: str) -> dict:
    """A schedule that passes the rules: tomorrow 09:00 local, deadline a day past the
    minimum, opening at the deadline."""
    days = doc.get("submission_days_min") or current_app.config["SUBMISSION_DAYS_MIN"].get(
        category, 20
    )
    zone = centre_timezone()
    tomorrow = (utcnow().astimezone(zone) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    deadline = tomorrow + timedelta(days=days + 1, minutes=30)
    return {
        "publication_at": tomorrow,
        "enquiry_deadline": deadline - timedelta(days=5),
        "submission_deadline": deadline,
        "opening_at": deadline,
    }


@bp.route("/tenders/new", methods=["GET", "POST"])
def new_tender() -> str | Response | Page:
    require(current_user, Permission.MANAGE_TENDERS)
    version_id = request.args.get("version", type=int)
    if version_id is None:
        return render_template(
            "tenders/choose_template.html",
            templates=template_ops.templates_visible_to(current_user),
        )
    version = db.session.get(TemplateVersion, version_id) or abort(404)
    template = staff_template(current_user, version.template_id)
    if tender_templates.validate_text(version.yaml_text):
        flash(_("This template version cannot be used: its text is not valid."), "error")
        return redirect(url_for(".template", template_id=template.id))
    doc = operations.template_document(version)
    centre_id = None if current_user.role == Role.ADMIN else current_user.centre_id
    if request.method == "GET":
        form = TenderForm(data=_default_schedule(doc, doc["category"]))
    else:
        form = TenderForm()
    _prepare_tender_form(form, centre_id)

    def save() -> Tender:
        target = form.centre_id.data if "centre_id" in form else centre_id
        return operations.create_tender(current_user, target, version, _tender_input(form))

    return _save_tender_form(
        form, save, version=version, template=template, direction=doc["direction"], tender=None
    )


def _save_tender_form(form: TenderForm, save: Callable[[], Tender], **page: Any) -> Response | Page:
    """The create and edit pages: validate, save through the boundary, or show why not."""
    status = 200
    if form.validate_on_submit():
        outcome = attempt(save)
        if outcome.ok:
            flash(_("The draft tender is saved."), "success")
            return redirect(url_for(".show", tender_id=outcome.value.id))
        status = outcome.error.status
    elif form.errors:
        status = 400
    return render_template("tenders/tender_form.html", form=form, **page), status


def _form_data(tender: Tender) -> dict:
    return {
        "reference": tender.reference,
        "title": tender.title,
        "description": tender.description,
        "procuring_entity": tender.procuring_entity,
        "budget": tender.budget,
        "bid_bond_amount": tender.bid_bond_amount,
        "publication_at": tender.publication_at,
        "enquiry_deadline": tender.enquiry_deadline,
        "submission_deadline": tender.submission_deadline,
        "opening_at": tender.opening_at,
        "evaluation_days": tender.evaluation_days,
        "custodian_ids": [c.user_id for c in tender.custodians],
        "custodian_threshold": tender.custodian_threshold,
        "multi_lot_bidding": tender.multi_lot_bidding,
        "max_lots_won": tender.max_lots_won,
        "lot_award_rule": tender.lot_award_rule,
        "lots": [
            {
                "reference": lot.reference,
                "title": lot.title,
                "budget": lot.budget,
                "ceiling_price": lot.ceiling_price,
                "reserve_price": lot.reserve_price,
                "bid_bond_amount": lot.bid_bond_amount,
            }
            for lot in tender.lots
        ],
    }


@bp.route("/tenders/<int:tender_id>/edit", methods=["GET", "POST"])
def edit(tender_id: int) -> Response | Page:
    tender = staff_tender(current_user, tender_id)
    if tender.status != TenderStatus.DRAFT:
        flash(_("A published tender changes only through addenda."), "info")
        return redirect(url_for(".show", tender_id=tender.id))
    form = TenderForm(data=_form_data(tender)) if request.method == "GET" else TenderForm()
    _prepare_tender_form(form, tender.centre_id)

    def save() -> Tender:
        operations.update_tender(current_user, tender, _tender_input(form))
        return tender

    return _save_tender_form(
        form,
        save,
        version=tender.template_version,
        template=tender.template_version.template,
        direction=tender.direction,
        tender=tender,
    )


def _render_show(tender: Tender, status: int = 200, **failed: Any) -> Page:
    """The tender page; `failed` holds a submitted form to show again with its errors."""
    manage = can(current_user, Permission.MANAGE_TENDERS, centre_id=tender.centre_id)
    registrations = operations.registrations_of(tender)
    forms = {}
    if manage:
        forms = {
            "publish_form": PublishForm(formdata=None),
            "addendum_form": AddendumForm.for_tender(tender, formdata=None),
            "cancel_form": CancelForm(formdata=None),
            "attachment_form": AttachmentForm(formdata=None),
            "answer_forms": {
                e.id: AnswerForm(formdata=None, prefix=f"enquiry-{e.id}")
                for e in tender.enquiries
                if e.answered_at is None
            },
            "bond_forms": {
                r.id: BondForm(formdata=None, prefix=f"registration-{r.id}") for r in registrations
            },
        }
        for name, form in failed.items():
            if isinstance(forms.get(name), dict):
                forms[name].update(form)
            else:
                forms[name] = form
    return render_template(
        "tenders/show.html",
        tender=tender,
        manage=manage,
        cancellable=tender.status in operations.CANCELLABLE,
        registrations=[(r, participation.bond_status(tender, r)) for r in registrations],
        downloads=documents.download_counts(tender),
        custodians=_names([c.user_id for c in tender.custodians]),
        publisher=_names([tender.published_by_id]).get(tender.published_by_id),
        lot_award_rules=LOT_AWARD_RULE_LABELS,
        **forms,
    ), status


@bp.route("/tenders/<int:tender_id>")
def show(tender_id: int) -> Page:
    return _render_show(staff_tender(current_user, tender_id, Permission.VIEW_TENDERS))


def _refused(tender: Tender, error: OperationError, **failed: Any) -> Page:
    """The tender page again after a refusal (`attempt` settled it and flashed why)."""
    return _render_show(db.session.get(Tender, tender.id), error.status, **failed)


@bp.route("/tenders/<int:tender_id>/publish", methods=["POST"])
@account_limit(signed_in_account)
def publish(tender_id: int) -> Response | Page:
    tender = staff_tender(current_user, tender_id)
    form = PublishForm()
    if not form.validate_on_submit():
        return _render_show(tender, 400, publish_form=form)
    # A wrong code (SignInFailed) keeps its audited attempt: the boundary commits it.
    outcome = attempt(operations.publish_tender, current_user, tender, form.code.data)
    if not outcome.ok:
        return _refused(tender, outcome.error)
    flash(_("The tender is published and its announcement is public."), "success")
    return redirect(url_for(".show", tender_id=tender_id))


def _lot_changes(tender: Tender, form: AddendumForm) -> list[LotChange]:
    """What the addendum form asks of the lots: a lot re-priced, a lot cancelled."""
    if not tender.has_lots:
        return []
    changes = []
    if form.reprice_lot.data:
        price = "reserve_price" if tender.direction == "highest_wins" else "ceiling_price"
        values = {}
        if form.new_price.raw_data and form.new_price.raw_data[0].strip():
            values[price] = form.new_price.data
        if form.new_bid_bond.raw_data and form.new_bid_bond.raw_data[0].strip():
            values["bid_bond_amount"] = form.new_bid_bond.data
        changes.append(LotChange("change", form.reprice_lot.data, values=values))
    if form.cancel_lot.data:
        changes.append(LotChange("cancel", form.cancel_lot.data))
    return changes


@bp.route("/tenders/<int:tender_id>/addenda", methods=["POST"])
def addendum(tender_id: int) -> Response | Page:
    tender = staff_tender(current_user, tender_id)
    form = AddendumForm.for_tender(tender)
    if not form.validate_on_submit():
        return _render_show(tender, 400, addendum_form=form)
    outcome = attempt(
        operations.publish_addendum,
        current_user,
        tender,
        form.title.data,
        form.body.data,
        form.new_deadline.data,
        _lot_changes(tender, form),
    )
    if not outcome.ok:
        return _refused(tender, outcome.error, addendum_form=form)
    added = outcome.value
    moved = added.deadline_after != added.deadline_before
    flash(
        _("Addendum %(n)d is published; registered bidders are notified.", n=added.number),
        "success",
    )
    if moved:
        flash(_("The bid submission deadline moved with it."), "info")
    return redirect(url_for(".show", tender_id=tender_id))


@bp.route("/tenders/<int:tender_id>/cancel", methods=["POST"])
def cancel(tender_id: int) -> Response | Page:
    tender = staff_tender(current_user, tender_id)
    form = CancelForm()
    if not form.validate_on_submit():
        return _render_show(tender, 400, cancel_form=form)
    outcome = attempt(operations.cancel_tender, current_user, tender, form.reason.data)
    if not outcome.ok:
        return _refused(tender, outcome.error, cancel_form=form)
    flash(_("The tender is cancelled."), "success")
    return redirect(url_for(".show", tender_id=tender_id))


@bp.route("/tenders/<int:tender_id>/attachments", methods=["POST"])
@limiter.limit(lambda: current_app.config.get("RATELIMIT_UPLOAD", "30 per minute"))
def upload_attachment(tender_id: int) -> Response | Page:
    tender = staff_tender(current_user, tender_id)
    form = AttachmentForm()
    if not form.validate_on_submit():
        return _render_show(tender, 400, attachment_form=form)
    upload = form.file.data
    outcome = attempt(
        documents.add_attachment,
        current_user,
        tender,
        upload.filename or "",
        upload.content_type,
        upload.stream,
        form.title.data or "",
    )
    if not outcome.ok:
        return _refused(tender, outcome.error, attachment_form=form)
    flash(_("%(name)s is attached.", name=outcome.value.filename), "success")
    return redirect(url_for(".show", tender_id=tender_id))


@bp.route("/enquiries/<int:enquiry_id>/answer", methods=["POST"])
def answer_enquiry(enquiry_id: int) -> Response | Page:
    enquiry = db.get_or_404(Enquiry, enquiry_id)
    tender = staff_tender(current_user, enquiry.tender_id)
    form = AnswerForm(prefix=f"enquiry-{enquiry.id}")
    if not form.validate_on_submit():
        return _render_show(tender, 400, answer_forms={enquiry.id: form})
    outcome = attempt(participation.answer_enquiry, current_user, enquiry, form.answer.data)
    if not outcome.ok:
        return _refused(tender, outcome.error, answer_forms={enquiry_id: form})
    flash(_("The answer is published."), "success")
    return redirect(url_for(".show", tender_id=tender.id, _anchor="enquiries"))


@bp.route("/registrations/<int:registration_id>/bonds", methods=["POST"])
def record_bond(registration_id: int) -> Response | Page:
    registration = db.get_or_404(TenderRegistration, registration_id)
    tender = staff_tender(current_user, registration.tender_id)
    form = BondForm(prefix=f"registration-{registration.id}")
    if not form.validate_on_submit():
        return _render_show(tender, 400, bond_forms={registration.id: form})
    outcome = attempt(
        participation.record_bond,
        current_user,
        registration,
        form.kind.data,
        form.amount.data,
        form.reference.data,
    )
    if not outcome.ok:
        return _refused(tender, outcome.error, bond_forms={registration_id: form})
    flash(_("The bond is recorded."), "success")
    return redirect(url_for(".show", tender_id=tender.id, _anchor="registrations"))


@bp.route("/documents/<int:document_id>")
def document(document_id: int) -> Response:
    """Staff's own copy of a document (drafts included); bidders' downloads, which are
    counted, go through the portal."""
    document = db.get_or_404(TenderDocument, document_id)
    staff_tender(current_user, document.tender_id, Permission.VIEW_TENDERS)
    return documents.send_document(document, documents.open_document(document))
