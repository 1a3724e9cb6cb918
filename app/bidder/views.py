"""Bidders: registrations for tenders, enquiries, the company profile, notifications."""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from app.accounts.models import Role
from app.bidder.forms import AliasForm, CertificateForm
from app.companies import profile as company_profile
from app.companies.models import CompanyAlias, CompanyCertificate
from app.core.access import restrict_blueprint
from app.core.boundary import attempt, transactional
from app.core.errors import OperationError
from app.core.forms import ButtonForm
from app.core.types import utcnow
from app.errors import TITLES
from app.extensions import db
from app.tenders import participation
from app.tenders.access import visible_tender
from app.tenders.forms import EnquiryForm
from app.tenders.models import Notification, Tender
from app.tenders.participation import MAX_QUESTION

bp = Blueprint("bidder", __name__, url_prefix="/bidder")
restrict_blueprint(bp, Role.BIDDER)

NOTIFICATIONS_PER_PAGE = 50


def _today() -> date:
    """The date in the centre's time zone: certificates expire by the local calendar."""
    return datetime.now(get_timezone()).date()


def _tender_page(tender: Tender) -> str:
    return url_for("portal.tender", tender_id=tender.id)


def _refused(error: OperationError, tender: Tender) -> tuple[str, int]:
    """A refused action on a tender (already settled): the reason shown with its status."""
    status = error.status
    page = render_template(
        "bidder/refused.html",
        status=status,
        title=TITLES.get(status, str(status)),
        message=error.message,
        tender=tender,
        tender_url=_tender_page(tender),
    )
    return page, status


@bp.route("/")
def dashboard() -> str:
    registrations = participation.company_registrations(current_user)
    rows = [(r, participation.bond_status(r.tender, r)) for r in registrations]
    unread = db.session.scalars(
        participation.notifications_query(current_user, unread_only=True).limit(5)
    ).all()
    return render_template(
        "bidder/dashboard.html",
        company=current_user.company,
        rows=rows,
        unread=unread,
        unread_total=participation.unread_count(current_user),
        now=utcnow(),
    )


@bp.route("/tenders/<int:tender_id>/register", methods=["POST"])
def register(tender_id: int) -> Response | tuple[str, int]:
    tender = visible_tender(current_user, tender_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    lots = request.form.getlist("lots") if tender.has_lots else None
    outcome = attempt(
        participation.register_for_tender, current_user, tender, lots, flash_refusal=False
    )
    if not outcome.ok:
        return _refused(outcome.error, tender)
    flash(
        _(
            "Your company is registered for tender %(ref)s. You can download its documents now.",
            ref=tender.reference,
        ),
        "success",
    )
    return redirect(_tender_page(tender))


@bp.route("/tenders/<int:tender_id>/enquiries", methods=["POST"])
def ask_enquiry(tender_id: int) -> Response | tuple[str, int]:
    tender = visible_tender(current_user, tender_id)
    form = EnquiryForm()
    if not form.validate_on_submit():
        flash(_("Write a question of at most %(n)d characters.", n=MAX_QUESTION), "error")
        return redirect(_tender_page(tender))
    outcome = attempt(
        participation.ask_enquiry, current_user, tender, form.question.data, flash_refusal=False
    )
    if not outcome.ok:
        return _refused(outcome.error, tender)
    flash(_("Your question is sent. The answer will be published on the tender page."), "success")
    return redirect(_tender_page(tender))


def _render_profile(
    certificate_form: CertificateForm | None = None,
    alias_form: AliasForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    company = current_user.company
    today = _today()
    certificates = [(c, company_profile.certificate_state(c, today)) for c in company.certificates]
    page = render_template(
        "bidder/profile.html",
        company=company,
        certificates=certificates,
        today=today,
        warning_days=company_profile.EXPIRY_WARNING_DAYS,
        certificate_form=certificate_form or CertificateForm(formdata=None),
        alias_form=alias_form or AliasForm(formdata=None),
        button=ButtonForm(formdata=None),
    )
    return page, status


@bp.route("/profile")
def profile() -> tuple[str, int]:
    return _render_profile()


@bp.route("/profile/certificates", methods=["POST"])
def add_certificate() -> Response | tuple[str, int]:
    form = CertificateForm()
    if not form.validate_on_submit():
        return _render_profile(certificate_form=form, status=400)
    outcome = attempt(
        company_profile.add_certificate,
        current_user,
        name=form.name.data,
        number=form.number.data,
        issued_by=form.issued_by.data or "",
        expires_on=form.expires_on.data,
    )
    if not outcome.ok:
        return _render_profile(certificate_form=form, status=outcome.error.status)
    flash(_("The certificate is added to your company's profile."), "success")
    return redirect(url_for(".profile"))


@bp.route("/profile/certificates/<int:certificate_id>/delete", methods=["POST"])
@transactional
def remove_certificate(certificate_id: int) -> Response:
    certificate = db.session.get(CompanyCertificate, certificate_id)
    if certificate is None or certificate.company_id != current_user.company_id:
        abort(404)
    if ButtonForm().validate_on_submit():
        company_profile.remove_certificate(current_user, certificate)
        flash(_("The certificate is removed."), "info")
    return redirect(url_for(".profile"))


@bp.route("/profile/aliases", methods=["POST"])
def add_alias() -> Response | tuple[str, int]:
    form = AliasForm()
    if not form.validate_on_submit():
        return _render_profile(alias_form=form, status=400)
    outcome = attempt(company_profile.add_alias, current_user, form.alias.data)
    if not outcome.ok:
        return _render_profile(alias_form=form, status=outcome.error.status)
    flash(_("The name is added to your company's profile."), "success")
    return redirect(url_for(".profile"))


@bp.route("/profile/aliases/<int:alias_id>/delete", methods=["POST"])
@transactional
def remove_alias(alias_id: int) -> Response:
    alias = db.session.get(CompanyAlias, alias_id)
    if alias is None or alias.company_id != current_user.company_id:
        abort(404)
    if ButtonForm().validate_on_submit():
        company_profile.remove_alias(current_user, alias)
        flash(_("The name is removed."), "info")
    return redirect(url_for(".profile"))


@bp.route("/notifications")
def notifications() -> str:
    page = db.paginate(
        participation.notifications_query(current_user),
        per_page=NOTIFICATIONS_PER_PAGE,
        error_out=False,
    )
    return render_template("bidder/notifications.html", page=page, button=ButtonForm())


@bp.route("/notifications/<int:notification_id>/read", methods=["POST"])
@transactional
def read_notification(notification_id: int) -> Response:
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != current_user.id:
        abort(404)
    if ButtonForm().validate_on_submit():
        participation.mark_notification_read(current_user, notification)
    return redirect(url_for(".notifications"))
