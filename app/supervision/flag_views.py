"""Red flags for supervisors: list and filter within their centre hierarchy, read one flag
with its evidence, acknowledge, dismiss with a reason, or escalate (audited). A flag never
changes a tender; bidders, experts and the public never reach these pages."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField, TextAreaField
from wtforms.validators import AnyOf, Length

from app.accounts.models import Role, User
from app.centres.models import TradingCentre
from app.core.access import restrict_blueprint
from app.core.boundary import run_operation
from app.extensions import db
from app.supervision import flags
from app.supervision.flag_models import FlagKind, FlagStatus
from app.tenders.models import Tender

bp = Blueprint("supervision_flags", __name__, url_prefix="/supervision/flags")
restrict_blueprint(bp, Role.SUPERVISOR, Role.ADMIN)

ACTIONS = (FlagStatus.ACKNOWLEDGED, FlagStatus.DISMISSED, FlagStatus.ESCALATED)


class ReviewForm(FlaskForm):
    action = StringField(validators=[AnyOf([str(a) for a in ACTIONS])])
    reason = TextAreaField(validators=[Length(max=flags.MAX_REASON)])


def _filters() -> dict:
    status = request.args.get("status", "")
    kind = request.args.get("kind", "")
    rule = request.args.get("rule", "")
    return {
        "status": status if status in set(FlagStatus) else "",
        "kind": kind if kind in set(FlagKind) else "",
        "rule": rule if rule in flags.RULE_TITLES else "",
        "tender_id": request.args.get("tender", type=int) or None,
        "centre_id": request.args.get("centre", type=int) or None,
    }


@bp.route("/")
def index() -> str:
    chosen = _filters()
    page = db.paginate(flags.flags_query(current_user, **chosen), per_page=50, error_out=False)
    scope = flags.supervised_centres(current_user)
    centres = db.session.scalars(db.select(TradingCentre).order_by(TradingCentre.code)).all()
    centres = [c for c in centres if scope is None or c.id in scope]
    tenders = {
        t.id: t
        for t in db.session.scalars(
            db.select(Tender).where(Tender.id.in_({f.tender_id for f in page.items} - {None}))
        )
    }
    return render_template(
        "supervision/flags.html",
        page=page,
        chosen=chosen,
        centres=centres,
        centre_names={c.id: c.name for c in centres},
        tenders=tenders,
        titles=flags.RULE_TITLES,
        statuses=flags.STATUS_LABELS,
        kinds=flags.KIND_LABELS,
        args={k: v for k, v in request.args.items() if k != "page"},
    )


@bp.route("/<int:flag_id>")
def show(flag_id: int) -> str:
    flag = flags.visible_flag(current_user, flag_id)
    tender = db.session.get(Tender, flag.tender_id) if flag.tender_id else None
    centre = db.session.get(TradingCentre, flag.centre_id) if flag.centre_id else None
    reviewer = db.session.get(User, flag.reviewed_by_id) if flag.reviewed_by_id else None
    return render_template(
        "supervision/flags_show.html",
        flag=flag,
        data=flags.flag_json(flag),
        tender=tender,
        centre=centre,
        reviewer=reviewer,
        titles=flags.RULE_TITLES,
        statuses=flags.STATUS_LABELS,
        kinds=flags.KIND_LABELS,
        evidence_labels=flags.EVIDENCE_LABELS,
        form=ReviewForm(),
        allowed=flags.allowed_actions(flag),
    )


@bp.route("/<int:flag_id>/review", methods=["POST"])
def review(flag_id: int) -> Response:
    flag = flags.visible_flag(current_user, flag_id)
    form = ReviewForm()
    back = url_for(".show", flag_id=flag.id)
    if not form.validate_on_submit():
        abort(400)
    return run_operation(
        flags.review_flag,
        flag,
        form.action.data,
        form.reason.data or "",
        success=_("The flag is marked %(status)s.", status=flags.STATUS_LABELS[form.action.data]),
        back=back,
    )
