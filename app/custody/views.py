"""Key custodians set up their own key pair and keep their shares of tender keys.

Importing `app.custody.operations` here registers the key ceremony as a publication hook
whenever the app is created."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.accounts.limits import account_limit, signed_in_account
from app.accounts.models import Role
from app.core.access import restrict_blueprint
from app.core.boundary import attempt
from app.custody import operations
from app.custody.forms import CustodianKeyForm, UnlockShareForm

bp = Blueprint("custody", __name__, url_prefix="/custody")
restrict_blueprint(bp, Role.CUSTODIAN, Role.STAFF, Role.SUPERVISOR)


def _render_index(status: int = 200) -> tuple[str, int]:
    key = operations.active_key_of(current_user)
    return render_template(
        "custody/index.html",
        key=key,
        holding=operations.tenders_holding(key) if key else [],
        shares=operations.shares_of(current_user),
        awaiting=operations.tenders_awaiting_key(current_user),
        unlock_form=UnlockShareForm(),
    ), status


@bp.route("/")
def index() -> tuple[str, int]:
    return _render_index()


@bp.route("/key", methods=["GET", "POST"])
def create_key() -> Response | tuple[str, int]:
    form = CustodianKeyForm()
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        outcome = attempt(operations.create_custodian_key, current_user, form.passphrase.data)
        if outcome.ok:
            message = _("Your key is set up. Its fingerprint: %(fp)s", fp=outcome.value.fingerprint)
            flash(message, "success")
            return redirect(url_for(".index"))
        status = outcome.error.status
    key = operations.active_key_of(current_user)
    return render_template(
        "custody/key.html",
        form=form,
        key=key,
        holding=operations.tenders_holding(key) if key else [],
    ), status


@bp.route("/shares/<int:tender_id>/backup", methods=["POST"])
@account_limit(signed_in_account)
def download_backup(tender_id: int) -> Response | tuple[str, int]:
    share = operations.share_of(current_user, tender_id) or abort(404)
    form = UnlockShareForm()
    if not form.validate_on_submit():
        flash(_("Enter your key passphrase to unlock your share."), "error")
        return _render_index(400)
    # A wrong passphrase keeps its audited failed attempt (WrongKeyPassphrase.keeps_audit).
    outcome = attempt(operations.unlock_share_backup, current_user, share, form.passphrase.data)
    if not outcome.ok:
        return _render_index(outcome.error.status)
    backup = outcome.value
    text = render_template("custody/backup.txt", backup=backup, custodian=current_user)
    response = Response(text, mimetype="text/plain")
    filename = f"fairbid-share-{backup.envelope_tender_id}-{backup.index}.txt"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    # The words are a secret: no cache, proxy or browser keeps a copy.
    response.headers["Cache-Control"] = "no-store"
    return response
