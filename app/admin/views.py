"""Administrators manage trading centres and privileged accounts."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from app.accounts import operations as account_ops
from app.accounts.models import Role, User
from app.admin.forms import ROLE_LABELS, CentreForm, RoleForm, UserForm
from app.centres import operations as centre_ops
from app.core.access import restrict_blueprint
from app.core.boundary import attempt
from app.core.forms import ButtonForm
from app.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/admin")
restrict_blueprint(bp, Role.ADMIN)


def _centre_choices(blank: str) -> list[SelectChoice]:
    centres = centre_ops.all_centres()
    return [SelectChoice("", blank)] + [SelectChoice(c.id, f"{c.name} ({c.code})") for c in centres]


@bp.route("/centres", methods=["GET", "POST"])
def centres() -> Response | tuple[str, int]:
    form = CentreForm()
    form.parent_id.choices = _centre_choices(_("None (city centre)"))
    if form.validate_on_submit() and (
        attempt(
            centre_ops.create_centre,
            current_user,
            code=form.code.data,
            name=form.name.data,
            level=form.level.data,
            parent_id=form.parent_id.data,
        ).ok
    ):
        flash(_("The centre is created."), "success")
        return redirect(url_for(".centres"))
    status = 400 if form.errors else 200
    return render_template(
        "admin/centres.html", form=form, centres=centre_ops.all_centres()
    ), status


@bp.route("/users", methods=["GET", "POST"])
def users() -> Response | tuple[str, int]:
    form = UserForm()
    form.centre_id.choices = _centre_choices(_("None"))
    if form.validate_on_submit() and (
        attempt(
            account_ops.create_user,
            current_user,
            email=form.email.data,
            full_name=form.full_name.data,
            role=form.role.data,
            centre_id=form.centre_id.data,
        ).ok
    ):
        flash(_("The account is created and an invitation e-mail is on its way."), "success")
        return redirect(url_for(".users"))
    people = db.session.scalars(
        select(User).where(User.role != Role.BIDDER).order_by(User.role, User.email)
    ).all()
    return render_template(
        "admin/users.html", form=form, users=people, role_labels=ROLE_LABELS
    ), 400 if form.errors else 200


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user(user_id: int) -> Response | str:
    person = db.session.get(User, user_id) or abort(404)
    form = RoleForm(obj=person)
    form.centre_id.choices = _centre_choices(_("None"))
    if form.validate_on_submit() and (
        attempt(
            account_ops.change_role, current_user, person, form.role.data, form.centre_id.data
        ).ok
    ):
        flash(_("The role is changed."), "success")
        return redirect(url_for(".user", user_id=person.id))
    return render_template(
        "admin/user.html", person=person, form=form, button=ButtonForm(), role_labels=ROLE_LABELS
    )


@bp.route("/users/<int:user_id>/enabled", methods=["POST"])
def toggle_user(user_id: int) -> Response:
    person = db.session.get(User, user_id) or abort(404)
    if ButtonForm().validate_on_submit():
        attempt(account_ops.set_enabled, current_user, person, not person.is_enabled)
    return redirect(url_for(".user", user_id=person.id))
