"""Sign-up, confirmation, sign-in with second factor, sign-out, password reset, profile."""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.accounts import operations, security
from app.accounts.forms import (
    ApiTokenForm,
    EmailForm,
    NewPasswordForm,
    SignInForm,
    SignUpForm,
    TotpForm,
)
from app.accounts.limits import account_limit, form_email
from app.accounts.models import ApiToken, User
from app.centres.operations import all_centres
from app.core.boundary import attempt, commit, transactional
from app.core.forms import ButtonForm
from app.core.urls import safe_next
from app.extensions import db, limiter
from app.web import SECOND_FACTOR_KEY, SESSION_VERSION_KEY

bp = Blueprint("accounts", __name__, url_prefix="/accounts")

PENDING_KEY = "pending_sign_in"
PENDING_SECONDS = 300


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


def _pending_account() -> User | None:
    """The account a two-factor step is for (after a successful sign-in the session no
    longer names it: the client's address stands in)."""
    uid = (session.get(PENDING_KEY) or {}).get("uid")
    return db.session.get(User, uid) if isinstance(uid, int) else None


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_SIGNUP"], methods=["POST"])
def signup() -> str | tuple[str, int]:
    form = SignUpForm()
    form.home_centre_id.choices = [
        SelectChoice(c.id, f"{c.name} ({c.code})") for c in all_centres()
    ]
    if form.validate_on_submit():
        outcome = attempt(
            operations.register_company,
            company_name=form.company_name.data,
            registration_number=form.registration_number.data,
            legal_representative=form.legal_representative.data,
            contact_name=form.contact_name.data,
            contact_phone=form.contact_phone.data,
            home_centre_id=form.home_centre_id.data,
            email=form.email.data,
            password=form.password.data,
        )
        if outcome.ok:
            return render_template("accounts/signup_done.html", email=form.email.data)
    return render_template("accounts/signup.html", form=form), 400 if form.errors else 200


@bp.route("/confirm/<token>")
def confirm_email(token: str) -> Response | tuple[str, int]:
    if not attempt(operations.confirm_email, token).ok:
        return render_template("accounts/confirm_failed.html", form=EmailForm()), 400
    flash(_("Your e-mail address is confirmed. You can sign in now."), "success")
    return redirect(url_for("accounts.login"))


@bp.route("/confirm", methods=["POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_RESET"])
@transactional
def resend_confirmation() -> Response:
    form = EmailForm()
    if form.validate_on_submit():
        user = operations.user_by_email(form.email.data)
        if user is not None and user.email_confirmed_at is None:
            operations.send_confirmation(user)
    flash(_("If that address has an unconfirmed account, a new link is on its way."), "info")
    return redirect(url_for("accounts.login"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@account_limit(form_email)
def login() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("main.start"))
    form = SignInForm()
    next_url = safe_next(request.args.get("next"), url_for("main.start"))
    if form.validate_on_submit():
        # A refusal (SignInFailed) keeps its audited failure; a success keeps a rehash.
        outcome = attempt(operations.authenticate, form.email.data, form.password.data)
        if not outcome.ok:
            busy = isinstance(outcome.error, operations.SignInBusy)
            return render_template("accounts/login.html", form=form), 503 if busy else 401
        user = outcome.value
        if user.needs_totp:
            session[PENDING_KEY] = {"uid": user.id, "at": time.time(), "next": next_url}
            return redirect(url_for("accounts.two_factor"))
        return _complete_sign_in(user, next_url)
    return render_template("accounts/login.html", form=form), 400 if form.errors else 200


def _complete_sign_in(user: User, next_url: str, second_factor: bool = False) -> Response:
    # A fresh session on privilege change: nothing from before sign-in survives.
    language = session.get("_language")
    session.clear()
    if language:
        session["_language"] = language
    login_user(user)
    session[SESSION_VERSION_KEY] = user.session_version
    session[SECOND_FACTOR_KEY] = second_factor
    operations.record_sign_in(user)
    commit()
    return redirect(next_url)


def _pending_user() -> tuple[User | None, str]:
    pending = session.get(PENDING_KEY) or {}
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None, ""
    return db.session.get(User, pending.get("uid")), pending.get("next", "/")


@bp.route("/two-factor", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@account_limit(_pending_account)
def two_factor() -> Response | str | tuple[str, int]:
    user, next_url = _pending_user()
    if user is None:
        flash(_("Sign in again to continue."), "info")
        return redirect(url_for("accounts.login"))
    form = TotpForm()
    if user.has_totp:
        if form.validate_on_submit():
            # A wrong code (SignInFailed) keeps its audited failure.
            if not attempt(operations.check_second_factor, user, form.code.data).ok:
                return render_template("accounts/two_factor.html", form=form), 401
            return _complete_sign_in(user, next_url, second_factor=True)
        return render_template("accounts/two_factor.html", form=form)
    # First sign-in of a privileged account: enrol an authenticator app. The secret waits
    # in the database (sealed), not in the cookie.
    if (
        form.validate_on_submit()
        and attempt(operations.enrol_second_factor, user, form.code.data).ok
    ):
        flash(_("Your authenticator app is set up."), "success")
        return _complete_sign_in(user, next_url, second_factor=True)
    secret = operations.start_totp_enrolment(user)
    commit()
    uri = security.totp_uri(secret, user.email)
    return render_template(
        "accounts/enrol_totp.html", form=form, secret=secret, qr_svg=security.totp_qr_svg(uri)
    )


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    form = ButtonForm()
    if form.validate_on_submit() and current_user.is_authenticated:
        operations.record_sign_out(current_user)
        commit()
        logout_user()
        session.clear()
        flash(_("You are signed out."), "info")
    return redirect(url_for("main.home"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_RESET"], methods=["POST"])
@transactional
def request_reset() -> Response | tuple[str, int]:
    form = EmailForm()
    if form.validate_on_submit():
        operations.request_password_reset(form.email.data)
        flash(_("If the address has an account, a reset link is on its way."), "info")
        return redirect(url_for("accounts.login"))
    return render_template("accounts/reset_request.html", form=form), 400 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> Response | tuple[str, int]:
    form = NewPasswordForm()
    if form.validate_on_submit():
        if not attempt(operations.reset_password, token, form.password.data).ok:
            return render_template("accounts/reset_password.html", form=form), 400
        flash(_("Your password is changed. Sign in with it now."), "success")
        return redirect(url_for("accounts.login"))
    return render_template("accounts/reset_password.html", form=form), 400 if form.errors else 200


@bp.route("/profile")
@login_required
def profile() -> str:
    tokens = db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == current_user.id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc())
    ).all()
    return render_template(
        "accounts/profile.html", tokens=tokens, token_form=ApiTokenForm(), button=ButtonForm()
    )


@bp.route("/tokens", methods=["POST"])
@login_required
@transactional
def create_token() -> Response | str:
    form = ApiTokenForm()
    if not form.validate_on_submit():
        flash(_("Give the token a name of at most 100 characters."), "error")
        return redirect(url_for("accounts.profile"))
    token = operations.create_api_token(current_user, form.name.data)
    # Shown once, never stored in clear.
    return render_template("accounts/token_created.html", token=token, name=form.name.data)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
@transactional
def revoke_token(token_id: int) -> Response:
    api_token = db.session.get(ApiToken, token_id)
    if api_token is None or api_token.user_id != current_user.id:
        abort(404)
    if ButtonForm().validate_on_submit():
        operations.revoke_api_token(current_user, api_token)
        flash(_("The token is revoked."), "info")
    return redirect(url_for("accounts.profile"))
