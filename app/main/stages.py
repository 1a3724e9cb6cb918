"""Where a tender stands, read across every stage: its timeline, why it failed, the staff's
next action and the staff pages that exist for it now. Pages of every stage show these
(registered as template globals in `app.main.init_app`), so the lookups live here, at the
top, where every stage may be read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.evaluations.models import Evaluation, EvaluationStage
from app.extensions import db
from app.opening.models import OpeningSession, OpeningStatus
from app.opening.operations import min_bids_of, submitted_count
from app.results.models import NoticeKind, ResultNotice
from app.tenders.models import Tender, TenderStatus

# How far each status has gone along the timeline (index of its last reached step).
REACHED = {
    TenderStatus.DRAFT: -1,
    TenderStatus.PUBLISHED: 0,
    TenderStatus.CLOSED: 1,
    TenderStatus.OPENED: 2,
    TenderStatus.EVALUATING: 3,
    TenderStatus.CANDIDATES: 4,
    TenderStatus.AWARDED: 5,
    TenderStatus.FAILED: 5,
    TenderStatus.CANCELLED: -1,
}
RANKED_STAGES = frozenset({EvaluationStage.UNBLINDED, EvaluationStage.FINALISED})


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    at: datetime | None
    state: str  # "done", "current" or "upcoming"


@dataclass(frozen=True)
class Action:
    text: str
    url: str | None = None


def _notice(tender: Tender, kind: str) -> ResultNotice | None:
    return db.session.scalar(
        select(ResultNotice)
        .where(ResultNotice.tender_id == tender.id, ResultNotice.kind == kind)
        .order_by(ResultNotice.published_at.desc(), ResultNotice.id.desc())
        .limit(1)
    )


def _session(tender: Tender) -> OpeningSession | None:
    return db.session.get(OpeningSession, tender.id)


def _evaluation(tender: Tender) -> Evaluation | None:
    return db.session.get(Evaluation, tender.id)


def timeline(tender: Tender) -> list[Step]:
    """published → deadline → opening → evaluation → candidates → award or failure."""
    if tender.status in (TenderStatus.DRAFT, TenderStatus.CANCELLED):
        return []
    session = _session(tender)
    evaluation = _evaluation(tender)
    candidates = _notice(tender, NoticeKind.CANDIDATES)
    failed = tender.status == TenderStatus.FAILED
    end = _notice(tender, NoticeKind.FAILED if failed else NoticeKind.AWARD)
    end_at = end.published_at if end else None
    if failed and end_at is None and session is not None:
        end_at = session.completed_at
    steps = [
        ("published", _("Published"), tender.published_at),
        ("deadline", _("Bid deadline"), tender.submission_deadline),
        ("opening", _("Public opening"), session.started_at if session else tender.opening_at),
        ("evaluation", _("Evaluation"), evaluation.started_at if evaluation else None),
        ("candidates", _("Candidates published"), candidates.published_at if candidates else None),
        ("failed" if failed else "award", _("Failed") if failed else _("Award"), end_at),
    ]
    reached = REACHED.get(tender.status, -1)
    if failed:
        # A failed tender skips what it never reached; the failure is its last step.
        kept = [s for i, s in enumerate(steps[:-1]) if s[2] is not None and i <= 4]
        kept = [s for s in kept if s[0] in ("published", "deadline", "opening")] + [
            s for s in kept if s[0] in ("evaluation", "candidates") and evaluation is not None
        ]
        return [Step(k, label, at, "done") for k, label, at in kept] + [
            Step(steps[-1][0], steps[-1][1], steps[-1][2], "current")
        ]
    return [
        Step(key, label, at, "done" if i < reached else "current" if i == reached else "upcoming")
        for i, (key, label, at) in enumerate(steps)
    ]


def failure_reason(tender: Tender) -> str | None:
    """Why a failed tender failed, in the viewer's language, or None."""
    if tender.status != TenderStatus.FAILED:
        return None
    notice = _notice(tender, NoticeKind.FAILED)
    if notice is not None and notice.reason:
        return _("The tender failed: %(reason)s", reason=notice.reason)
    session = _session(tender)
    if session is not None and session.status == OpeningStatus.FAILED:
        return _(
            "The tender failed at its opening: %(received)d bid(s) were received by the "
            "deadline, and at least %(needed)d are needed.",
            received=submitted_count(tender),
            needed=min_bids_of(tender),
        )
    return _("The tender failed.")


def staff_links(tender: Tender) -> list[Action]:
    """The stage pages of a tender that exist now, for its centre's staff."""
    if tender.status in (TenderStatus.DRAFT, TenderStatus.CANCELLED, TenderStatus.PUBLISHED):
        return []
    tid = tender.id
    links = [Action(_("Opening"), url_for("opening.tender", tender_id=tid))]
    evaluation = _evaluation(tender)
    if tender.status != TenderStatus.CLOSED and (
        tender.status != TenderStatus.FAILED or evaluation is not None
    ):
        links.append(Action(_("Panel"), url_for("panels.tender", tender_id=tid)))
    if evaluation is not None:
        links.append(Action(_("Evaluation"), url_for("evaluations.review_page", tender_id=tid)))
        if evaluation.stage == EvaluationStage.SCORING:
            progress = url_for("evaluations.review_page", tender_id=tid, _anchor="scoring-progress")
            links.append(Action(_("Scoring progress"), progress))
        if evaluation.stage in RANKED_STAGES:
            links.append(Action(_("Ranking"), url_for("scoring.results", tender_id=tid)))
        if evaluation.stage == EvaluationStage.FINALISED:
            links.append(Action(_("Evaluation record"), url_for("records.show", tender_id=tid)))
    if tender.status in (TenderStatus.CANDIDATES, TenderStatus.AWARDED, TenderStatus.FAILED) or (
        evaluation is not None and evaluation.stage == EvaluationStage.FINALISED
    ):
        links.append(Action(_("Results and objections"), url_for("results.manage", tender_id=tid)))
    return links


NEXT_ACTIONS = {
    TenderStatus.DRAFT: _l("Complete the draft and publish it (a TOTP code confirms)."),
    TenderStatus.PUBLISHED: _l(
        "Answer enquiries and record bid bonds until the bid deadline; addenda can still be "
        "published."
    ),
    TenderStatus.CLOSED: _l("Start the public opening once the opening time has come."),
    TenderStatus.OPENED: _l("Start the evaluation: confirm the review of the opened bids."),
    TenderStatus.CANDIDATES: _l(
        "Wait for the objection period to end, decide any objections, then award."
    ),
    TenderStatus.AWARDED: _l("Nothing to do: the tender is awarded."),
    TenderStatus.FAILED: _l("Nothing to do, unless the tender is put out again (re-tender)."),
    TenderStatus.CANCELLED: _l("Nothing to do: the tender is cancelled."),
}
EVALUATION_ACTIONS = {
    EvaluationStage.REVIEW: _l("Confirm the review of compliance and commercial scores."),
    EvaluationStage.SCORING: _l("The experts are scoring: follow their progress."),
    EvaluationStage.UNBLINDED: _l("The panel is finalising the ranking."),
    EvaluationStage.FINALISED: _l("Publish the candidates once the evaluation record is signed."),
}


def next_action(tender: Tender) -> Action:
    """What the centre's staff do next on this tender, and where."""
    tid = tender.id
    if tender.status == TenderStatus.EVALUATING:
        evaluation = _evaluation(tender)
        if evaluation is None:
            return Action(str(NEXT_ACTIONS[TenderStatus.OPENED]))
        page = {
            EvaluationStage.REVIEW: url_for("evaluations.review_page", tender_id=tid),
            EvaluationStage.SCORING: url_for(
                "evaluations.review_page", tender_id=tid, _anchor="scoring-progress"
            ),
            EvaluationStage.UNBLINDED: url_for("scoring.results", tender_id=tid),
            EvaluationStage.FINALISED: url_for("results.manage", tender_id=tid),
        }.get(evaluation.stage)
        return Action(str(EVALUATION_ACTIONS.get(evaluation.stage, "")), page)
    page = {
        TenderStatus.CLOSED: url_for("opening.tender", tender_id=tid),
        TenderStatus.OPENED: url_for("evaluations.review_page", tender_id=tid),
        TenderStatus.CANDIDATES: url_for("results.manage", tender_id=tid),
    }.get(tender.status)
    return Action(str(NEXT_ACTIONS.get(tender.status, "")), page)
