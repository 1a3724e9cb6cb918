"""Results: the candidates notice and its objection window, bidders' objections and staff
decisions, sending a tender back to evaluation, the award notice, failure and re-tendering.

Every operation calls `require` once first, audits in the same transaction and never
commits; e-mail, live events, portal-cache bumps and the letters job wait for the commit.
A notice is never edited: a correction is a new notice and the old one is marked
superseded. The server clock alone decides whether an objection is in time.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_request_context
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.accounts.models import Role, User
from app.audit import append_event
from app.bids.documents import store_record
from app.bids.receipts import platform_signing_key
from app.core.errors import Conflict, OperationError
from app.core.formatting import moment_text
from app.core.types import utcnow
from app.core.urls import public_url
from app.custody.operations import envelope_tender_id
from app.evaluations.models import Evaluation, EvaluationStage
from app.evaluations.queries import evaluation_of
from app.events import publish_after_commit
from app.extensions import db
from app.permissions import Permission, require
from app.records.operations import supersede
from app.results.jobs import enqueue_letters
from app.results.models import NoticeKind, Objection, ObjectionStatus, ResultNotice
from app.results.reading import (
    bidding_companies,
    current_notice,
    objections_of,
    open_objections,
    ranked_candidates,
    retender_links,
    scoring_file,
    signed_record,
    took_part,
    window_open,
)
from app.tenders import documents
from app.tenders.documents import Upload, store_attachments
from app.tenders.models import Tender, TenderDocument, TenderStatus
from app.tenders.notify import notify_users
from app.tenders.operations import (
    TENDER_CHANNEL,
    LotInput,
    TenderInput,
    create_tender,
    template_document,
)
from app.tenders.suspension import refuse_if_suspended
from bidding.notices import sign_notice
from bidding.receipts import dump_document

log = logging.getLogger(__name__)

MAX_OBJECTION_TEXT = 20_000
MAX_OBJECTION_FILES = 5
FAILURE_CODES = ("no_compliant_bid", "too_few_bids", "all_over_ceiling", "other")
FAILABLE = frozenset({TenderStatus.OPENED, TenderStatus.EVALUATING, TenderStatus.CANDIDATES})
REOPEN_STAGES = (EvaluationStage.REVIEW, EvaluationStage.SCORING)


def failure_labels() -> dict[str, Any]:
    return {
        "no_compliant_bid": _l("No compliant bid"),
        "too_few_bids": _l("Fewer bids than the minimum"),
        "all_over_ceiling": _l("Every bid is above the ceiling price"),
        "other": _l("Another reason"),
    }


def objection_days() -> int:
    return int(current_app.config.get("FAIRBID_OBJECTION_DAYS", 3))


# --- notifications -------------------------------------------------------------------------


def _bidder_users(company_ids: Iterable[int]) -> list[User]:
    ids = list(company_ids)
    if not ids:
        return []
    return list(
        db.session.scalars(
            select(User)
            .where(User.company_id.in_(ids), User.role == Role.BIDDER, User.is_enabled.is_(True))
            .order_by(User.id)
        )
    )


def _notify(tender: Tender, company_ids: Iterable[int], subject, template: str, **context) -> int:
    """In-app notification and e-mail to every bidder user of the companies."""
    link = public_url("results.bidder", tender_id=tender.id) if has_request_context() else ""
    return notify_users(
        _bidder_users(company_ids), tender, subject, f"result_{template}", link, **context
    )


def _announce(tender: Tender, event: str, **payload) -> None:
    publish_after_commit(TENDER_CHANNEL, {"tender": tender.id, "event": event, **payload})
    documents.invalidate_portal_cache()


def _letters_after_commit(tender: Tender) -> None:
    locale = str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])
    enqueue_letters(tender.id, locale)


def _lock(row) -> None:
    """Re-read the row under a row lock (PostgreSQL) so that two staff members, or two
    requests of one company, cannot both pass the same state check."""
    db.session.flush()  # the caller's pending changes are kept, not reloaded over
    db.session.refresh(row, with_for_update=True)


# --- candidates ----------------------------------------------------------------------------


NOTICE_DOCUMENT_KIND = "result_notice"


def _sign_notice(tender: Tender, notice: ResultNotice) -> None:
    """Publish the notice as a document signed by the platform key (`bidding.notices`), so a
    copy can be checked offline with `python -m bidding verify-notice`."""
    body = {
        "tender": envelope_tender_id(tender),
        "reference": tender.reference,
        "notice": notice.id,
        "kind": str(notice.kind),
        "published_at": notice.published_at.isoformat(),
        "objection_deadline": (
            notice.objection_deadline.isoformat() if notice.objection_deadline else None
        ),
        "reason": notice.reason or "",
        "content": notice.content or {},
    }
    document = _store_signed_notice(
        tender,
        body,
        f"{str(notice.kind).title()} notice",
        f"{notice.kind}-notice-{notice.id}",
        notice.published_at,
    )
    notice.document_id = document.id


def _store_signed_notice(
    tender: Tender, body: dict, title: str, name: str, published_at: datetime
) -> TenderDocument:
    """Sign and store a notice; its SHA-256 goes into the audit chain (event
    `results.notice_signed`), so the next signed checkpoint anchors it."""
    signed = dump_document(sign_notice(body, platform_signing_key()))
    document = store_record(tender, NOTICE_DOCUMENT_KIND, title, signed, published_at, name=name)
    append_event(
        "results.notice_signed",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"kind": body["kind"], "filename": document.filename, "sha256": document.sha256},
    )
    return document


CANCELLATION_NOTICE = "cancellation"


def sign_cancellation_notice(tender: Tender, **_kwargs) -> None:
    """Receiver of `app.tenders.signals.tender_cancelled`: the signed cancellation notice,
    like the other result notices (`python -m bidding verify-notice`)."""
    body = {
        "tender": envelope_tender_id(tender),
        "reference": tender.reference,
        "notice": CANCELLATION_NOTICE,
        "kind": "cancelled",
        "published_at": tender.cancelled_at.isoformat(),
        "objection_deadline": None,
        "reason": tender.cancel_reason or "",
        "content": {},
    }
    _store_signed_notice(
        tender, body, "Cancellation notice", f"cancelled-notice-{tender.id}", tender.cancelled_at
    )


def cancellation_notice(tender: Tender) -> TenderDocument | None:
    """The signed cancellation notice of a cancelled tender (None before this feature)."""
    if tender.status != TenderStatus.CANCELLED:
        return None
    return db.session.scalar(
        select(TenderDocument)
        .where(
            TenderDocument.tender_id == tender.id,
            TenderDocument.kind == NOTICE_DOCUMENT_KIND,
            TenderDocument.filename.like("cancelled-notice-%"),
        )
        .order_by(TenderDocument.id.desc())
        .limit(1)
    )


def publish_candidates(actor: User, tender: Tender) -> ResultNotice:
    """Staff publish the ranked candidates once the record of the current round is signed;
    the objection window opens now."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(tender)
    if tender.status != TenderStatus.EVALUATING:
        raise Conflict(_l("Candidates are published for a tender under evaluation."), "status")
    evaluation = evaluation_of(tender)
    if evaluation is None or evaluation.stage != EvaluationStage.FINALISED:
        raise Conflict(_l("The panel has not finalised the evaluation."), code="not_finalised")
    record = signed_record(tender, evaluation)
    if record is None:
        raise Conflict(
            _l("The evaluation record is not signed yet: publish once it is."), "not_signed"
        )
    doc = scoring_file(evaluation)
    if doc is None or not (doc.get("result") or {}).get("ranking"):
        raise Conflict(
            _l("The scoring file ranks no compliant bid: declare the tender failed instead."),
            code="no_ranking",
        )
    companies = bidding_companies(tender)
    now = utcnow()
    deadline = now + timedelta(days=objection_days())
    candidates = ranked_candidates(doc, companies)
    notice = ResultNotice(
        tender_id=tender.id,
        kind=NoticeKind.CANDIDATES,
        record_id=record.id,
        published_at=now,
        published_by_id=actor.id,
        objection_deadline=deadline,
        content={
            "round": evaluation.round,
            "candidates": candidates,
            "scoring_sha256": evaluation.scoring_sha256,
        },
    )
    db.session.add(notice)
    tender.status = TenderStatus.CANDIDATES
    db.session.flush()
    _sign_notice(tender, notice)
    append_event(
        "results.candidates_published",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "notice_id": notice.id,
            "record_id": record.id,
            "round": evaluation.round,
            "objection_deadline": deadline.isoformat(),
            "candidates": [[c["rank"], c["bid"]] for c in candidates],
        },
    )
    _notify(
        tender,
        [c.id for c in companies],
        _l("Candidates published for tender %(ref)s", ref=tender.reference),
        "candidates",
        notice=notice,
    )
    _announce(tender, "candidates", notice=notice.id)
    return notice


# --- objections ----------------------------------------------------------------------------


def file_objection(actor: User, tender: Tender, text: str, uploads: list[Upload]) -> Objection:
    """A company that took part objects to the candidates, in the window, with its reasons
    and attachments. Late, empty, duplicate or badly typed: refused, nothing stored."""
    require(actor, Permission.TAKE_PART)
    refuse_if_suspended(tender)
    _lock(tender)
    if not took_part(actor.company_id, tender):
        raise OperationError(
            _l("Only companies that submitted a bid for this tender may object."),
            code="not_a_bidder",
            status=403,
        )
    notice = current_notice(tender)
    if (
        tender.status != TenderStatus.CANDIDATES
        or notice is None
        or notice.kind != NoticeKind.CANDIDATES
    ):
        raise Conflict(_l("There is no candidates notice to object to."), code="no_notice")
    now = utcnow()
    if not window_open(notice, now):
        raise Conflict(
            _l(
                "The objection period ended at %(deadline)s; the server time is %(now)s. "
                "Late objections are not accepted.",
                deadline=moment_text(notice.objection_deadline, "precise", tender.centre),
                now=moment_text(now, "precise", tender.centre),
            ),
            code="window_closed",
        )
    text = (text or "").strip()
    if not text:
        raise OperationError(_l("Say what the objection is about and why."), code="text")
    if len(text) > MAX_OBJECTION_TEXT:
        raise OperationError(
            _l("The objection may be at most %(n)d characters long.", n=MAX_OBJECTION_TEXT),
            code="text",
        )
    pending = db.session.scalar(
        select(Objection.id).where(
            Objection.tender_id == tender.id,
            Objection.company_id == actor.company_id,
            Objection.status == ObjectionStatus.OPEN,
        )
    )
    if pending is not None:
        raise Conflict(
            _l("Your company's objection is still open: wait for its decision."),
            code="objection_open",
        )
    attachments = store_attachments(uploads, max_files=MAX_OBJECTION_FILES)
    objection = Objection(
        tender_id=tender.id,
        notice_id=notice.id,
        company_id=actor.company_id,
        filed_by_id=actor.id,
        filed_at=now,
        text=text,
        attachments=attachments,
        status=ObjectionStatus.OPEN,
    )
    db.session.add(objection)
    db.session.flush()
    append_event(
        "results.objection_filed",
        actor=actor,
        object_type="objection",
        object_id=objection.id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={
            "tender": tender.id,
            "notice_id": notice.id,
            "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "attachments": [a["sha256"] for a in attachments],
        },
    )
    publish_after_commit(
        TENDER_CHANNEL, {"tender": tender.id, "event": "objection", "objection": objection.id}
    )
    return objection


def decide_objection(actor: User, objection: Objection, outcome: str, reason: str) -> Objection:
    """Staff uphold or dismiss an open objection, with the reason the bidder is told."""
    tender = db.session.get(Tender, objection.tender_id)
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(objection)
    if objection.status != ObjectionStatus.OPEN:
        raise Conflict(_l("This objection has already been decided."), code="decided")
    if outcome not in (ObjectionStatus.UPHELD, ObjectionStatus.DISMISSED):
        raise OperationError(_l("Choose to uphold or to dismiss the objection."), "outcome")
    reason = (reason or "").strip()
    if not reason:
        raise OperationError(_l("Give the reason for the decision."), code="reason")
    objection.status = outcome
    objection.decided_by_id = actor.id
    objection.decided_at = utcnow()
    objection.decision_reason = reason[:MAX_OBJECTION_TEXT]
    append_event(
        f"results.objection_{outcome}",
        actor=actor,
        object_type="objection",
        object_id=objection.id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={"tender": tender.id, "company_id": objection.company_id, "reason": reason},
    )
    _notify(
        tender,
        [objection.company_id],
        _l("Your objection on tender %(ref)s is decided", ref=tender.reference),
        "objection_decided",
        objection=objection,
    )
    return objection


def reopen_evaluation(
    actor: User, tender: Tender, reason: str, stage: str = EvaluationStage.SCORING
) -> Evaluation:
    """After an upheld objection: the signed record and the candidates notice are
    superseded (kept), the evaluation starts a new round at the stage staff choose (review:
    the panel confirms the review again; scoring: the chair reopens the sheets the objection
    concerns, with `app.evaluations.scoring.reopen_sheet`), and the panel finalises again,
    which requests the new signed record."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(tender)
    if tender.status != TenderStatus.CANDIDATES:
        raise Conflict(_l("Only a tender with published candidates can go back."), "status")
    if stage not in REOPEN_STAGES:
        raise OperationError(_l("Send the tender back to review or to scoring."), "stage")
    reason = (reason or "").strip()
    if not reason:
        raise OperationError(_l("Give the reason for the re-evaluation."), code="reason")
    notice = current_notice(tender)
    if notice is None or notice.kind != NoticeKind.CANDIDATES:
        raise Conflict(_l("There is no candidates notice in force."), code="no_notice")
    if open_objections(tender):
        raise Conflict(_l("Decide every open objection first."), code="objection_open")
    upheld = [
        o
        for o in objections_of(tender)
        if o.notice_id == notice.id and o.status == ObjectionStatus.UPHELD
    ]
    if not upheld:
        raise Conflict(
            _l("A tender goes back to evaluation only after an objection is upheld."),
            code="none_upheld",
        )
    evaluation = evaluation_of(tender)
    if evaluation is None:
        raise Conflict(_l("This tender has no evaluation."), code="no_evaluation")
    return _send_back(
        actor, tender, evaluation, notice, reason, stage, objections=[o.id for o in upheld]
    )


def _send_back(
    actor: User,
    tender: Tender,
    evaluation: Evaluation,
    notice: ResultNotice | None,
    reason: str,
    stage: str,
    **audit: object,
) -> Evaluation:
    """The evaluation's next round at `stage`: the signed record and the candidates notice
    (if any) are superseded (kept); bidders are told."""
    now = utcnow()
    record = signed_record(tender, evaluation)
    if record is not None:
        supersede(record, reason)
    if notice is not None:
        notice.superseded_at = now
    old_round = evaluation.round
    evaluation.round = old_round + 1
    evaluation.stage = stage
    evaluation.finalised_at = None
    evaluation.unblinded_at = None
    if stage == EvaluationStage.REVIEW:
        evaluation.review_confirmed_at = None
        evaluation.review_confirmed_by_id = None
    tender.status = TenderStatus.EVALUATING
    append_event(
        "results.evaluation_reopened",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "reason": reason,
            "stage": str(stage),
            "round": evaluation.round,
            "previous_round": old_round,
            "superseded_notice": notice.id if notice is not None else None,
            "superseded_record": record.id if record else None,
            **audit,
        },
    )
    _notify(
        tender,
        [c.id for c in bidding_companies(tender)],
        _l("Tender %(ref)s goes back to evaluation", ref=tender.reference),
        "reopened",
        reason=reason,
    )
    _announce(tender, "evaluation_reopened", round=evaluation.round)
    return evaluation


def reevaluate_on_order(tender: Tender, *, actor: User, reason: str, **_: object) -> Evaluation:
    """A re-evaluation ordered by the supervision authority, once a second supervisor has
    approved it (`app.tenders.suspension`, connected in the app factory): like
    `reopen_evaluation` but without an upheld objection; the panel reviews again."""
    _lock(tender)
    evaluation = evaluation_of(tender)
    if evaluation is None or tender.status not in (
        TenderStatus.EVALUATING,
        TenderStatus.CANDIDATES,
    ):
        raise Conflict(_l("This tender has no evaluation to redo."), code="no_evaluation")
    notice = current_notice(tender)
    if notice is not None and notice.kind != NoticeKind.CANDIDATES:
        raise Conflict(_l("This tender has no evaluation to redo."), code="no_evaluation")
    return _send_back(
        actor, tender, evaluation, notice, reason, EvaluationStage.REVIEW, ordered_by="supervision"
    )


# --- award ---------------------------------------------------------------------------------


def publish_award(actor: User, tender: Tender) -> ResultNotice:
    """After the objection window, with no objection open: the award notice (rank 1)."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(tender)
    notice = current_notice(tender)
    if (
        tender.status != TenderStatus.CANDIDATES
        or notice is None
        or notice.kind != NoticeKind.CANDIDATES
    ):
        raise Conflict(_l("Publish the candidates before the award."), code="no_candidates")
    now = utcnow()
    if window_open(notice, now):
        raise Conflict(
            _l(
                "The objection period runs until %(deadline)s; the award comes after it.",
                deadline=moment_text(notice.objection_deadline, "precise", tender.centre),
            ),
            code="window_open",
        )
    if open_objections(tender):
        raise Conflict(
            _l("An objection is still open: decide it before the award."), "objection_open"
        )
    candidates = (notice.content or {}).get("candidates") or []
    if not candidates:
        raise Conflict(_l("The candidates notice names no candidate."), code="no_candidates")
    winner = min(candidates, key=lambda c: c["rank"])
    award = ResultNotice(
        tender_id=tender.id,
        kind=NoticeKind.AWARD,
        record_id=notice.record_id,
        published_at=now,
        published_by_id=actor.id,
        content={"round": notice.content.get("round"), "winner": winner},
    )
    db.session.add(award)
    tender.status = TenderStatus.AWARDED
    db.session.flush()
    _sign_notice(tender, award)
    append_event(
        "results.award_published",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "notice_id": award.id,
            "candidates_notice_id": notice.id,
            "company_id": winner.get("company_id"),
            "bid": winner.get("bid"),
            "price": winner.get("price"),
        },
    )
    _notify(
        tender,
        [c.id for c in bidding_companies(tender)],
        _l("Tender %(ref)s is awarded", ref=tender.reference),
        "award",
        winner=winner,
    )
    _announce(tender, "awarded", notice=award.id)
    _letters_after_commit(tender)
    return award


# --- failure and re-tendering --------------------------------------------------------------


def declare_failed(actor: User, tender: Tender, reason_code: str, text: str = "") -> ResultNotice:
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(tender)
    if tender.status not in FAILABLE:
        raise Conflict(
            _l("A tender can be declared failed after its opening and before the award."),
            code="status",
        )
    if reason_code not in FAILURE_CODES:
        raise OperationError(_l("Choose the reason the tender failed."), code="reason_code")
    text = (text or "").strip()
    if reason_code == "other" and not text:
        raise OperationError(_l("Explain the reason the tender failed."), code="reason")
    now = utcnow()
    previous = current_notice(tender)
    if previous is not None:
        previous.superseded_at = now
    public_reason = str(failure_labels()[reason_code]) + (f": {text}" if text else "")
    notice = ResultNotice(
        tender_id=tender.id,
        kind=NoticeKind.FAILED,
        published_at=now,
        published_by_id=actor.id,
        content={"reason_code": reason_code, "text": text},
        reason=public_reason,
    )
    db.session.add(notice)
    tender.status = TenderStatus.FAILED
    db.session.flush()
    _sign_notice(tender, notice)
    append_event(
        "tender.failed",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "reason": reason_code,
            "text": text,
            "notice_id": notice.id,
            "superseded_notice": previous.id if previous else None,
        },
    )
    _notify(
        tender,
        [c.id for c in bidding_companies(tender)],
        _l("Tender %(ref)s has failed", ref=tender.reference),
        "failed",
        reason=public_reason,
    )
    _announce(tender, "failed", notice=notice.id)
    _letters_after_commit(tender)
    return notice


def _retender_reference(tender: Tender) -> str:
    base = re.sub(r"-R\d+$", "", tender.reference)
    number = 1
    while True:
        suffix = f"-R{number}"
        reference = base[: 64 - len(suffix)] + suffix
        taken = db.session.scalar(
            select(Tender.id).where(
                Tender.centre_id == tender.centre_id,
                func.lower(Tender.reference) == reference.lower(),
            )
        )
        if taken is None:
            return reference
        number += 1


def retender(actor: User, tender: Tender) -> Tender:
    """A new draft from a failed tender's data (template version, title, lots, budget,
    custodians, description), through `create_tender`, with a fresh schedule of the same
    lengths starting now; staff review and publish it as any draft."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(tender)
    if tender.status != TenderStatus.FAILED:
        raise Conflict(_l("Only a failed tender can be re-tendered."), code="status")
    if retender_links(tender)["successor"] is not None:
        raise Conflict(_l("This tender has already been re-tendered."), code="retendered")
    days_min = current_app.config["SUBMISSION_DAYS_MIN"].get(tender.category, 20)
    try:
        days_min = template_document(tender.template_version).get("submission_days_min") or (
            days_min
        )
    except Exception:
        log.warning("template of tender %s does not load", tender.id)
    now = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=1)
    bidding = max(tender.submission_deadline - tender.publication_at, timedelta(days=days_min + 1))
    enquiry_gap = min(
        max(tender.submission_deadline - tender.enquiry_deadline, timedelta(0)), bidding
    )
    opening_gap = max(tender.opening_at - tender.submission_deadline, timedelta(0))
    deadline = now + bidding
    data = TenderInput(
        reference=_retender_reference(tender),
        title=tender.title,
        description=tender.description,
        budget=tender.budget,
        bid_bond_amount=tender.bid_bond_amount,
        publication_at=now,
        enquiry_deadline=deadline - enquiry_gap,
        submission_deadline=deadline,
        opening_at=deadline + opening_gap,
        evaluation_days=tender.evaluation_days,
        custodian_threshold=tender.custodian_threshold,
        custodian_ids=[c.user_id for c in tender.custodians],
        lots=[LotInput(x.title, x.budget, x.ceiling_price, x.reserve_price) for x in tender.lots],
    )
    new = create_tender(actor, tender.centre_id, tender.template_version, data)
    append_event(
        "tender.retendered",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"retender_id": new.id, "reference": new.reference},
    )
    append_event(
        "tender.retender_of",
        actor=actor,
        object_type="tender",
        object_id=new.id,
        centre_id=tender.centre_id,
        data={"original_id": tender.id, "reference": tender.reference},
    )
    documents.invalidate_portal_cache()
    return new
