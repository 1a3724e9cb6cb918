"""Results: the candidates notice and its objection window, bidders' objections and staff
decisions, sending a tender back to evaluation, the award notice, failure and re-tendering.

Every operation calls `require` once first, audits in the same transaction and never
commits; e-mail, live events, portal-cache bumps and the letters job wait for the commit.
A notice is never edited: a correction is a new notice and the old one is marked
superseded. The server clock alone decides whether an objection is in time.
"""

from __future__ import annotations

import hashlib
import json
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
from app.opening.models import OpeningSession
from app.opening.operations import failed_lot_ids
from app.permissions import Permission, require
from app.records.operations import supersede
from app.results.jobs import enqueue_letters
from app.results.models import NoticeKind, Objection, ObjectionStatus, ResultNotice
from app.results.reading import (
    LOT_AWARDED,
    LOT_CANDIDATES,
    LOT_FAILED,
    bidding_companies,
    current_notice,
    lot_bidders,
    lot_files,
    lot_notices,
    lot_states,
    notices_in_force,
    objections_of,
    open_objections,
    ranked_candidates,
    result_lots,
    retender_links,
    scoring_file,
    signed_record,
    took_part,
    window_open,
)
from app.tenders import documents
from app.tenders.documents import Upload, store_attachments
from app.tenders.models import Lot, Tender, TenderDocument, TenderStatus
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
from evaluation.decimals import parse_decimal
from evaluation.lots import (
    AwardInput,
    AwardRule,
    LotRanking,
    Ranked,
    award_lots,
    award_to_json,
    lot_ranking_of,
)

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
        # Set by the platform for one lot of several, never chosen by staff:
        "limit_reached": _l("Every compliant bidder has already won the most lots allowed"),
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
    lot = db.session.get(Lot, notice.lot_id) if notice.lot_id is not None else None
    title = f"{str(notice.kind).title()} notice"
    if lot is not None:  # the signed body names the lot (a one-lot notice is unchanged)
        body["lot"] = lot.reference
        title += f", lot {lot.reference}"
    document = _store_signed_notice(
        tender, body, title, f"{notice.kind}-notice-{notice.id}", notice.published_at
    )
    notice.document_id = document.id


def _publish_notice(
    actor: User, tender: Tender, notice: ResultNotice, action: str, **data: Any
) -> None:
    """Store the notice, sign it (`_sign_notice`) and audit it as `action` with `data` and
    the notice's id: the audit event anchors the signed document."""
    db.session.add(notice)
    db.session.flush()
    _sign_notice(tender, notice)
    append_event(
        action,
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"notice_id": notice.id, **data},
    )


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
    if result_lots(tender):
        return publish_lot_candidates(actor, tender, evaluation, record)[0]
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
    tender.status = TenderStatus.CANDIDATES
    _publish_notice(
        actor,
        tender,
        notice,
        "results.candidates_published",
        record_id=record.id,
        round=evaluation.round,
        objection_deadline=deadline.isoformat(),
        candidates=[[c["rank"], c["bid"]] for c in candidates],
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


# --- a tender of several lots: candidates, failure and award per lot ---------------------
#
# Each lot is its own competition: the candidates of every lot are published at once (one
# signed notice per lot), a lot without a winner under the cross-lot award fails with its own
# notice, an objection is filed against one lot's notice, and a lot is awarded once its own
# window is over and its objections are decided. An upheld objection sends back the
# evaluation of every lot not yet awarded (`reopen_evaluation`): the cross-lot award couples
# them, since a new winner of one lot may change who wins another under the limit. Awarded
# lots stand; at the next publication their winners count against the limit
# (`round_award`).


def lot_label(lot: Lot) -> dict[str, Any]:
    """How a notice's content names its lot (the number is its OCDS id)."""
    return {"number": lot.number, "reference": lot.reference, "title": lot.title}


def _fixed_ranked(notice: ResultNotice) -> Ranked | None:
    winner = (notice.content or {}).get("winner") or {}
    if not winner.get("bid") or winner.get("price") is None:
        return None
    total = winner.get("total")
    return Ranked(
        str(winner["bid"]),
        None if total is None else parse_decimal(str(total)),
        parse_decimal(str(winner["price"])),
    )


def round_award(tender: Tender, evaluation: Evaluation) -> tuple[dict, list[str]]:
    """The cross-lot award the candidates of this round follow, and the references of the
    lots it keeps as awarded. While no lot is decided: the evaluation's own award (in the
    signed record). Once a lot is awarded or failed (an award and an upheld objection on
    another lot, or a lot staff declared failed before the candidates): the same
    procedure (`evaluation.lots.award_lots`, the tender's limit and rule) run again over the
    awarded lots first, each ranked with its published winner only, then the open lots'
    new rankings (failed lots stay failed, and win nothing); so an awarded lot counts
    against its winner's limit. Should the rule's optimum give an awarded lot to nobody
    (possible only under max_total_score / min_total_price), lot order is used instead and
    the document says so (`fallback`). `evaluation.lots.replay` recomputes the document."""
    stored = json.loads(evaluation.lots_json)
    notices = lot_notices(tender)
    files = lot_files(evaluation)
    fixed: list[LotRanking] = []
    kept: list[str] = []
    for lot in result_lots(tender):
        notice = notices.get(lot.id)
        if notice is not None and notice.kind == NoticeKind.AWARD:
            ranked = _fixed_ranked(notice)
            if ranked is not None:
                fixed.append(LotRanking(lot.reference, (ranked,)))
                kept.append(lot.reference)
    decided = {  # awarded lots enter as fixed above; failed lots stay failed
        lot_id
        for lot_id, notice in notices.items()
        if notice.kind in (NoticeKind.AWARD, NoticeKind.FAILED)
    }
    if not decided:
        return stored["award"], []
    rankings = fixed + [
        lot_ranking_of(lot.reference, files[lot.reference])
        for lot in result_lots(tender)
        if lot.id not in decided and lot.reference in files
    ]
    rule = AwardRule(tender.lot_award_rule)
    award = award_lots(rankings, tender.max_lots_won, rule)
    winners = award.winners()
    fallback = None
    if any(winners.get(r.lot) != r.ranking[0].company for r in fixed):
        rule, fallback = AwardRule.LOT_ORDER, "lot_order"
        award = award_lots(rankings, tender.max_lots_won, rule)
    document = award_to_json(AwardInput(tuple(rankings), tender.max_lots_won, rule), award)
    document["kept"] = kept
    document["fallback"] = fallback
    return document, kept


def _lot_failure(
    actor: User,
    tender: Tender,
    lot: Lot,
    reason_code: str,
    text: str,
    now: datetime,
    round_: int | None,
) -> ResultNotice:
    """A failure notice of one lot of several (the lot's candidates notice superseded)."""
    previous = lot_notices(tender).get(lot.id)
    if previous is not None:
        previous.superseded_at = now
    public_reason = str(failure_labels()[reason_code]) + (f": {text}" if text else "")
    notice = ResultNotice(
        tender_id=tender.id,
        lot_id=lot.id,
        kind=NoticeKind.FAILED,
        published_at=now,
        published_by_id=actor.id,
        content={"round": round_, "lot": lot_label(lot), "reason_code": reason_code, "text": text},
        reason=public_reason,
    )
    _publish_notice(
        actor,
        tender,
        notice,
        "results.lot_failed",
        lot=lot.reference,
        reason=reason_code,
        text=text,
        superseded_notice=previous.id if previous else None,
    )
    return notice


def _settle(tender: Tender) -> str:
    """The tender's status from its lots: awarded once every lot is awarded or failed (and
    one at least awarded), failed when every lot failed, else candidates while a lot has
    candidates. The result letters are made once every lot is decided."""
    statuses = [state["status"] for state in lot_states(tender)]
    before = tender.status
    if statuses and all(s in (LOT_AWARDED, LOT_FAILED) for s in statuses):
        tender.status = TenderStatus.AWARDED if LOT_AWARDED in statuses else TenderStatus.FAILED
    elif LOT_CANDIDATES in statuses:
        tender.status = TenderStatus.CANDIDATES
    if tender.status != before and tender.status in (TenderStatus.AWARDED, TenderStatus.FAILED):
        _letters_after_commit(tender)
    return tender.status


def publish_lot_candidates(
    actor: User, tender: Tender, evaluation: Evaluation, record
) -> list[ResultNotice]:
    """The candidates of a tender of several lots (checks done by `publish_candidates`):
    for every lot not yet awarded or failed, a candidates notice naming the lot's ranked
    candidates and the one the cross-lot award proposes, or a failure notice when the lot
    has no winner (failed at the opening, no compliant bid, or every compliant bidder at
    its limit). The notices of one publication share the objection window."""
    if not evaluation.lots_json:
        raise Conflict(
            _l("The scoring file ranks no compliant bid: declare the tender failed instead."),
            code="no_ranking",
        )
    award, _kept = round_award(tender, evaluation)
    results = {entry["lot"]: entry for entry in award["result"]["lots"]}
    files = lot_files(evaluation)
    settled = {
        lot_id
        for lot_id, notice in lot_notices(tender).items()
        if notice.kind in (NoticeKind.AWARD, NoticeKind.FAILED)
    }
    session = db.session.scalar(select(OpeningSession).where(OpeningSession.tender_id == tender.id))
    unopened = failed_lot_ids(tender, session)
    now = utcnow()
    deadline = now + timedelta(days=objection_days())
    published: list[ResultNotice] = []
    for lot in result_lots(tender):
        if lot.id in settled:
            continue
        doc = files.get(lot.reference) or {}
        result = results.get(lot.reference) or {}
        if lot.id in unopened:
            published.append(
                _lot_failure(actor, tender, lot, "too_few_bids", "", now, evaluation.round)
            )
            continue
        if result.get("winner") is None:
            ranked = (doc.get("result") or {}).get("ranking")
            code = "limit_reached" if ranked else "no_compliant_bid"
            published.append(_lot_failure(actor, tender, lot, code, "", now, evaluation.round))
            continue
        companies = lot_bidders(tender, lot)
        candidates = ranked_candidates(doc, companies)
        if not any(c["bid"] == result["winner"] for c in candidates):
            # Ranked below the first three: the better-ranked ones are all at their limit.
            every = ranked_candidates(doc, companies, count=None)
            candidates.append(next(c for c in every if c["bid"] == result["winner"]))
        for candidate in candidates:
            candidate["lot"] = lot.number
        proposed = next(c for c in candidates if c["bid"] == result["winner"])
        notice = ResultNotice(
            tender_id=tender.id,
            lot_id=lot.id,
            kind=NoticeKind.CANDIDATES,
            record_id=record.id,
            published_at=now,
            published_by_id=actor.id,
            objection_deadline=deadline,
            content={
                "round": evaluation.round,
                "lot": lot_label(lot),
                "candidates": candidates,
                "proposed": proposed,
                "passed_over": result.get("passed_over") or [],
                "scoring_sha256": (doc.get("result") or {}).get("input_sha256"),
                # The award re-run over the open lots after an award (see `round_award`).
                **({"award": award} if "kept" in award else {}),
            },
        )
        _publish_notice(
            actor,
            tender,
            notice,
            "results.candidates_published",
            record_id=record.id,
            round=evaluation.round,
            lot=lot.reference,
            objection_deadline=deadline.isoformat(),
            candidates=[[c["rank"], c["bid"]] for c in candidates],
            proposed=proposed["bid"],
        )
        published.append(notice)
    if not published:
        raise Conflict(_l("Every lot is already awarded or failed."), code="no_open_lot")
    _settle(tender)
    with_candidates = [n for n in published if n.kind == NoticeKind.CANDIDATES]
    if with_candidates:
        _notify(
            tender,
            [c.id for c in bidding_companies(tender)],
            _l("Candidates published for tender %(ref)s", ref=tender.reference),
            "candidates",
            notice=with_candidates[0],
        )
    for notice in published:
        if notice.kind == NoticeKind.FAILED:
            lot = db.session.get(Lot, notice.lot_id)
            _notify(
                tender,
                [c.id for c in lot_bidders(tender, lot)],
                _l("Tender %(ref)s has failed", ref=tender.reference),
                "failed",
                reason=f"{lot.reference}: {notice.reason}",
            )
    _announce(tender, "candidates", notices=[n.id for n in published])
    return published


def _lot_award_refusal(tender: Tender, notice: ResultNotice | None, now: datetime):
    """Why the lot of `notice` cannot be awarded now (None: it can)."""
    if notice is None or notice.kind != NoticeKind.CANDIDATES:
        return Conflict(_l("Publish the candidates before the award."), code="no_candidates")
    if window_open(notice, now):
        return Conflict(
            _l(
                "The objection period runs until %(deadline)s; the award comes after it.",
                deadline=moment_text(notice.objection_deadline, "precise", tender.centre),
            ),
            code="window_open",
        )
    if any(o.notice_id == notice.id for o in open_objections(tender)):
        return Conflict(
            _l("An objection is still open: decide it before the award."), "objection_open"
        )
    if not (notice.content or {}).get("proposed"):
        return Conflict(_l("The candidates notice names no candidate."), code="no_candidates")
    return None


def publish_lot_award(actor: User, tender: Tender, lot: Lot, now: datetime) -> ResultNotice:
    """The award notice of one lot (its candidates notice in force, window over, no
    objection to it open): the winner the cross-lot award proposed."""
    notice = lot_notices(tender).get(lot.id)
    refusal = _lot_award_refusal(tender, notice, now)
    if refusal is not None:
        raise refusal
    winner = notice.content["proposed"]
    award = ResultNotice(
        tender_id=tender.id,
        lot_id=lot.id,
        kind=NoticeKind.AWARD,
        record_id=notice.record_id,
        published_at=now,
        published_by_id=actor.id,
        content={"round": notice.content.get("round"), "lot": lot_label(lot), "winner": winner},
    )
    _publish_notice(
        actor,
        tender,
        award,
        "results.award_published",
        candidates_notice_id=notice.id,
        lot=lot.reference,
        company_id=winner.get("company_id"),
        bid=winner.get("bid"),
        price=winner.get("price"),
    )
    return award


def _award_lots(actor: User, tender: Tender, lot: Lot | None) -> ResultNotice:
    """`publish_award` for several lots: the lot given, or every lot ready for its award
    (refused with the first lot's reason when none is)."""
    now = utcnow()
    if tender.status != TenderStatus.CANDIDATES:
        raise Conflict(_l("Publish the candidates before the award."), code="no_candidates")
    if lot is not None:
        awards = [publish_lot_award(actor, tender, lot, now)]
    else:
        notices = lot_notices(tender)
        waiting = [
            (candidate, notices[candidate.id])
            for candidate in result_lots(tender)
            if candidate.id in notices and notices[candidate.id].kind == NoticeKind.CANDIDATES
        ]
        ready = [c for c, n in waiting if _lot_award_refusal(tender, n, now) is None]
        if not ready:
            first = waiting[0][1] if waiting else None
            raise _lot_award_refusal(tender, first, now) or Conflict(
                _l("Publish the candidates before the award."), code="no_candidates"
            )
        awards = [publish_lot_award(actor, tender, c, now) for c in ready]
    _settle(tender)
    _notify(
        tender,
        [c.id for c in bidding_companies(tender)],
        _l("Tender %(ref)s is awarded", ref=tender.reference),
        "award",
        winner=awards[0].content["winner"],
        lots=[
            {
                "reference": award.content["lot"]["reference"],
                "title": award.content["lot"]["title"],
                "company": award.content["winner"].get("company"),
            }
            for award in awards
        ],
    )
    _announce(tender, "awarded", notices=[a.id for a in awards])
    return awards[0]


def resolve_lot(tender: Tender, reference: str | None) -> Lot | None:
    """The lot a request names by its reference (None when it names none); refused for a
    reference that is not one of the tender's lots, or a lot named on a tender of one."""
    if reference in (None, ""):
        return None
    lot = tender.lot_by_reference(str(reference)) if result_lots(tender) else None
    if lot is None:
        raise OperationError(_l("This tender has no such lot."), code="lot")
    return lot


# --- objections ----------------------------------------------------------------------------


def file_objection(
    actor: User, tender: Tender, text: str, uploads: list[Upload], lot: Lot | None = None
) -> Objection:
    """A company that took part objects to the candidates, in the window, with its reasons
    and attachments. Late, empty, duplicate or badly typed: refused, nothing stored. In a
    tender of several lots the objection is to one lot's candidates (`lot`, required), which
    the company bid for; it holds up that lot's award only."""
    require(actor, Permission.TAKE_PART)
    refuse_if_suspended(tender)
    _lock(tender)
    several = bool(result_lots(tender))
    if several and lot is None:
        raise OperationError(_l("Choose the lot your objection is about."), code="lot")
    if not took_part(actor.company_id, tender, lot if several else None):
        raise OperationError(
            _l("Only companies that submitted a bid for this tender may object."),
            code="not_a_bidder",
            status=403,
        )
    notice = lot_notices(tender).get(lot.id) if several else current_notice(tender)
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
    pending_query = select(Objection.id).where(
        Objection.tender_id == tender.id,
        Objection.company_id == actor.company_id,
        Objection.status == ObjectionStatus.OPEN,
    )
    if several:  # one open objection per company and lot
        pending_query = pending_query.join(
            ResultNotice, ResultNotice.id == Objection.notice_id
        ).where(ResultNotice.lot_id == lot.id)
    pending = db.session.scalar(pending_query.limit(1))
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
            **({"lot": lot.reference} if several else {}),
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
    if result_lots(tender):
        # Every lot whose candidates are in force goes back (the cross-lot award couples
        # them); awarded and failed lots stand.
        notices = [n for n in lot_notices(tender).values() if n.kind == NoticeKind.CANDIDATES]
    else:
        notice = current_notice(tender)
        notices = [notice] if notice is not None and notice.kind == NoticeKind.CANDIDATES else []
    if not notices:
        raise Conflict(_l("There is no candidates notice in force."), code="no_notice")
    ids = {n.id for n in notices}
    if any(o.notice_id in ids for o in open_objections(tender)):
        raise Conflict(_l("Decide every open objection first."), code="objection_open")
    upheld = [
        o
        for o in objections_of(tender)
        if o.notice_id in ids and o.status == ObjectionStatus.UPHELD
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
        actor, tender, evaluation, notices, reason, stage, objections=[o.id for o in upheld]
    )


def _send_back(
    actor: User,
    tender: Tender,
    evaluation: Evaluation,
    notices: list[ResultNotice],
    reason: str,
    stage: str,
    **audit: object,
) -> Evaluation:
    """The evaluation's next round at `stage`: the signed record and the candidates notices
    in force (one per lot not yet awarded or failed) are superseded (kept); bidders are
    told."""
    now = utcnow()
    record = signed_record(tender, evaluation)
    if record is not None:
        supersede(record, reason)
    for notice in notices:
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
            "superseded_notice": notices[0].id if len(notices) == 1 else None,
            **({"superseded_notices": [n.id for n in notices]} if len(notices) > 1 else {}),
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
    if result_lots(tender):
        notices = [n for n in lot_notices(tender).values() if n.kind == NoticeKind.CANDIDATES]
    else:
        notice = current_notice(tender)
        if notice is not None and notice.kind != NoticeKind.CANDIDATES:
            raise Conflict(_l("This tender has no evaluation to redo."), code="no_evaluation")
        notices = [notice] if notice is not None else []
    return _send_back(
        actor, tender, evaluation, notices, reason, EvaluationStage.REVIEW, ordered_by="supervision"
    )


# --- award ---------------------------------------------------------------------------------


def publish_award(actor: User, tender: Tender, lot: Lot | None = None) -> ResultNotice:
    """After the objection window, with no objection open: the award notice (rank 1). In a
    tender of several lots: the award of `lot`, or of every lot ready for it when no lot is
    given (its window over, its objections decided); the first award notice is returned."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    _lock(tender)
    if result_lots(tender):
        return _award_lots(actor, tender, lot)
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
    tender.status = TenderStatus.AWARDED
    _publish_notice(
        actor,
        tender,
        award,
        "results.award_published",
        candidates_notice_id=notice.id,
        company_id=winner.get("company_id"),
        bid=winner.get("bid"),
        price=winner.get("price"),
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


def declare_failed(
    actor: User, tender: Tender, reason_code: str, text: str = "", lot: Lot | None = None
) -> ResultNotice:
    """Staff declare the tender failed, with the public reason; in a tender of several lots,
    one lot (`lot`: not yet awarded or failed; the others go on), or the whole tender while
    no lot is awarded."""
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
    states = lot_states(tender)
    if lot is not None:
        state = next((s for s in states if s["lot"].id == lot.id), None)
        if state is None:  # a tender of one lot, or a lot an addendum cancelled
            raise OperationError(_l("This tender has no such lot."), code="lot")
        if state["status"] in (LOT_AWARDED, LOT_FAILED):
            raise Conflict(_l("This lot is already awarded or failed."), code="lot_decided")
        evaluation = evaluation_of(tender)
        notice = _lot_failure(
            actor, tender, lot, reason_code, text, now, evaluation.round if evaluation else None
        )
        _settle(tender)
        _notify(
            tender,
            [c.id for c in lot_bidders(tender, lot)],
            _l("Tender %(ref)s has failed", ref=tender.reference),
            "failed",
            reason=f"{lot.reference}: {notice.reason}",
        )
        _announce(tender, "lot_failed", notice=notice.id, lot=lot.reference)
        return notice
    if any(s["status"] == LOT_AWARDED for s in states):
        raise Conflict(
            _l("A lot of this tender is awarded: declare the other lots failed one by one."),
            code="lot_awarded",
        )
    previous = current_notice(tender)
    for old in notices_in_force(tender):
        old.superseded_at = now
    public_reason = str(failure_labels()[reason_code]) + (f": {text}" if text else "")
    notice = ResultNotice(
        tender_id=tender.id,
        kind=NoticeKind.FAILED,
        published_at=now,
        published_by_id=actor.id,
        content={"reason_code": reason_code, "text": text},
        reason=public_reason,
    )
    tender.status = TenderStatus.FAILED
    _publish_notice(
        actor,
        tender,
        notice,
        "tender.failed",
        reason=reason_code,
        text=text,
        superseded_notice=previous.id if previous else None,
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
