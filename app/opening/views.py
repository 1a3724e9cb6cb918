"""The opening ceremony pages: the public live view (anyone may watch), the staff start
button, the custodians' unlock form, and each bidder's confirmation or objection.

Access: the page and its event stream are public for published tenders (404 for drafts);
each POST is gated by its operation (staff of the tender's centre, key holders, bidders)."""

from __future__ import annotations

from collections.abc import Callable

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from app.accounts.limits import account_limit, signed_in_account
from app.bids.jobs import seal_tender
from app.core.boundary import attempt, perform, run_operation
from app.core.formatting import centre_time
from app.core.types import utcnow
from app.custody.operations import KEY_HOLDER_ROLES
from app.events import stream_response
from app.opening import operations
from app.opening.fields import field_specs, labels_of, shown_fields
from app.opening.forms import (
    ConfirmLineForm,
    ObjectLineForm,
    StartOpeningForm,
    UnlockForOpeningForm,
)
from app.opening.jobs import enqueue_opening
from app.opening.models import LineStatus, OpeningLine, OpeningSession, OpeningStatus
from app.opening.problems import line_problems, problems_text
from app.permissions import Permission, can
from app.tenders.access import public_tender
from app.tenders.documents import blob_store
from app.tenders.models import Tender

bp = Blueprint("opening", __name__, url_prefix="/opening")


def _page(tender: Tender) -> str:
    return url_for(".tender", tender_id=tender.id)


def _back(tender: Tender) -> Response:
    return redirect(_page(tender))


def _progress(tender: Tender, session: OpeningSession | None) -> dict:
    total = operations.submitted_count(tender)
    done = total if session is not None and session.status == OpeningStatus.COMPLETED else 0
    return {"done": done, "total": total}


def _next_step(
    tender: Tender, session, staff: bool, custodian: bool, state, own_line, window_ends
) -> str | None:
    """What the person looking at the opening page has to do now, if anything."""
    at = centre_time(tender.opening_at, tender.centre)
    status = session.status if session is not None else None
    if staff and session is None:
        if utcnow() < tender.opening_at:
            return _("You start the opening ceremony here at the opening time (%(at)s).", at=at)
        return _("It is past the opening time: start the opening ceremony below.")
    if custodian and status == OpeningStatus.UNLOCKING and state is not None:
        if any(user.id == current_user.id for user in state.missing):
            return _(
                "Unlock your key share below with your passphrase: %(k)d shares are needed.",
                k=state.threshold,
            )
        return _(
            "Your key share is unlocked; the envelopes open once enough custodians "
            "have unlocked theirs."
        )
    if custodian and session is None:
        return _(
            "At the opening time (%(at)s) staff start the ceremony; then unlock your "
            "key share here.",
            at=at,
        )
    if own_line is not None and window_ends and not (own_line.confirmed_at or own_line.objected_at):
        return _(
            "Check your line in the opening record below: confirm it, or object, "
            "before the window closes."
        )
    if session is None and current_user.is_authenticated and current_user.role == "bidder":
        return _(
            "The opening is public: follow it on this page; your line appears once "
            "the envelopes are opened."
        )
    return None


@bp.route("/tenders/<int:tender_id>")
def tender(tender_id: int) -> str:
    # Read-only: the clock (app/clock) closes the tender at its deadline.
    tender = public_tender(tender_id)
    session = operations.session_of(tender)
    lines = operations.lines_of(tender)
    own_line = operations.line_of_company(current_user, tender)
    staff = can(current_user, Permission.MANAGE_TENDERS, tender.centre_id)
    custodian = operations.is_custodian_of(current_user, tender)
    state = operations.custodian_state(tender)
    window_ends = (
        session.completed_at + operations.objection_window()
        if session is not None and session.completed_at
        else None
    )
    return render_template(
        "opening/tender.html",
        tender=tender,
        session=session,
        lines=lines,
        lot_references={lot.id: lot.reference for lot in tender.lots},
        companies=operations.companies_of(lines),
        own_line=own_line,
        fields=shown_fields(tender),
        field_specs=field_specs(tender),
        choice_labels=labels_of("choice"),
        status_labels=labels_of("line_status"),
        problems=line_problems(tender) if lines else {},
        problems_text=problems_text,
        state=state,
        show_names=staff or custodian,
        staff=staff,
        custodian=custodian,
        progress=_progress(tender, session),
        record=operations.record_of(tender),
        # Once the ceremony has started: the lots an addendum cancelled, not opened.
        cancelled_lots=operations.cancelled_lots(tender) if session is not None else [],
        statuses=OpeningStatus,
        line_statuses=LineStatus,
        window_ends=window_ends,
        next_step=_next_step(tender, session, staff, custodian, state, own_line, window_ends),
        start_form=StartOpeningForm(),
        unlock_form=UnlockForOpeningForm(),
        confirm_form=ConfirmLineForm(),
        object_form=ObjectLineForm(),
    )


@bp.route("/tenders/<int:tender_id>/start", methods=["POST"])
@login_required
def start(tender_id: int) -> Response | tuple[Response, int]:
    tender = public_tender(tender_id)
    if not can(current_user, Permission.MANAGE_TENDERS, tender.centre_id):
        abort(403)
    if not StartOpeningForm().validate_on_submit():
        abort(400)
    session = operations.session_of(tender)
    if session is not None and session.status == OpeningStatus.OPENING:
        # k shares are in but the opening did not finish (a worker died): run it again.
        enqueue_opening(tender.id)
        flash(_("The opening has been queued again."), "success")
        return _back(tender)
    outcome = attempt(operations.start_opening, current_user, tender)
    if not outcome.ok:
        return _back(tender), 303
    seal_tender(tender.id)  # the sealing record comes before any opening (idempotent)
    if outcome.value.status == OpeningStatus.FAILED:
        flash(_("Too few bids: the bids are not opened and the tender has failed."), "error")
    else:
        flash(_("The ceremony is open: the custodians can unlock their shares."), "success")
    return _back(tender)


@bp.route("/tenders/<int:tender_id>/unlock", methods=["POST"])
@login_required
@account_limit(signed_in_account, unless=lambda: current_user.role not in KEY_HOLDER_ROLES)
def unlock(tender_id: int) -> Response:
    tender = public_tender(tender_id)
    form = UnlockForOpeningForm()
    if current_user.role not in KEY_HOLDER_ROLES:
        abort(403)
    if not form.validate_on_submit():
        flash(_("Enter your key passphrase to unlock your share."), "error")
        return redirect(_page(tender), 303)
    # A wrong passphrase keeps its audited failed attempt (WrongKeyPassphrase.keeps_audit).
    response, ready = perform(
        operations.unlock_share,
        tender,
        form.passphrase.data,
        success=_("Your share is in for the opening."),
        back=_page(tender),
    )
    if ready:
        enqueue_opening(tender.id)
    return response


def _answer(
    tender_id: int, form: FlaskForm, operation: Callable[..., OpeningLine], *args: str
) -> Response:
    """A bidder confirms or objects to their company's line of the opening record."""
    tender = public_tender(tender_id)
    if not can(current_user, Permission.TAKE_PART):
        abort(403)
    if not form.validate_on_submit():
        flash(_("Say what is wrong with the line."), "error")
        return redirect(_page(tender), 303)
    return run_operation(
        operation, tender, *args, success=_("Your answer is recorded."), back=_page(tender)
    )


@bp.route("/tenders/<int:tender_id>/confirm", methods=["POST"])
@login_required
def confirm(tender_id: int) -> Response:
    return _answer(tender_id, ConfirmLineForm(), operations.confirm_line)


@bp.route("/tenders/<int:tender_id>/object", methods=["POST"])
@login_required
def object_line(tender_id: int) -> Response:
    form = ObjectLineForm()
    return _answer(tender_id, form, operations.object_to_line, form.objection.data)


@bp.route("/tenders/<int:tender_id>/events")
def events(tender_id: int) -> Response:
    """Server-sent events (app/events.py): the whole live state, then every change of the
    ceremony (started, unlocked k of n, progress, each line, the record, opened or failed)
    until it is over; a stream on a finished ceremony sends the state and ends."""
    tender = public_tender(tender_id)
    return stream_response(
        operations.opening_channel(tender.id),
        lambda: [("state", operations.live_state(tender))],
        final=("opened", "failed"),
        finished=lambda events: operations.ceremony_over(events[0][1]),
    )


@bp.route("/tenders/<int:tender_id>/record.json")
def record(tender_id: int) -> Response:
    """The published opening record (JSON, canonical; its SHA-256 is on the page and in the
    audit log): public, like the opening itself."""
    tender = public_tender(tender_id)
    document = operations.record_of(tender) or abort(404)
    with blob_store().open(document.sha256) as handle:
        data = handle.read()
    response = Response(data, mimetype="application/json")
    response.headers["Content-Disposition"] = f'inline; filename="{document.filename}"'
    return response


@bp.route("/tenders/<int:tender_id>/progress")
def progress(tender_id: int) -> dict:
    """The same state as JSON, for the refresh fallback and scripts."""
    tender = public_tender(tender_id)
    session = operations.session_of(tender)
    return {
        "status": tender.status,
        "ceremony": session.status if session else None,
        **_progress(tender, session),
    }
