"""The opening ceremony: staff open it at the opening time, custodians unlock their shares,
and once k shares are in a job opens every sealed envelope and publishes the opening record.

Where the shares wait between custodians (the design choice)
------------------------------------------------------------
Custodians unlock one after another, each signed in (TOTP) on their own device, in separate
requests that may land on different web processes; the opening itself runs in an RQ worker.
So a share unlocked in one request must wait somewhere until the k-th arrives. It never
waits in clear: the request that holds the custodian's passphrase unlocks their custodian
key, unseals their SLIP-39 share, and at once re-encrypts it with AES-256-GCM under this
ceremony's *wrapping key*, HKDF-SHA256(app SECRET_KEY, salt = a random per-ceremony salt,
info = tender). Only that ciphertext is stored (`ShareUnlock.sealed_share`, bound by its
associated data to the tender and the custodian), and it is cleared in the transaction
that records the opening.

Trade-off: the database alone (a dump, a backup, a read replica, SQL injection) cannot
open a waiting share, because the wrapping key needs the SECRET_KEY that lives only in the
servers' environment. Someone holding both the database and the SECRET_KEY during the
ceremony window (a compromised web or worker host) could; but such a host also sees each
share in clear while it is being unlocked, so this adds no new exposure. The alternatives
were worse: an ephemeral key held in one process breaks with several web processes and
workers, and one screen where k custodians type their passphrases puts them on one device.
Nothing secret is written to Redis or files; the rebuilt tender key lives only inside the
opening job and is dropped (best effort: Python cannot wipe memory, see `bidding.keys`).

Fault rules (REFERENCE.md): an envelope that fails to open through the bidder's fault
(malformed, sealed to a wrong key, integrity) is "revoked"; through the platform's fault
(stored bytes differ from the receipt, blob missing) "withdrawn", with an incident event;
the others go on.

A commercial part that opens but breaks the tender's form (`bidding.commercial`: unknown
field, wrong type, missing required field, too long an amount, too large) is neither: the
line is "opened" with the problems as its reason (and in the opening record), only its
well-formed fields are kept, and the evaluation finds the bid non-compliant.

The commercial part's fields are kept in `OpeningLine`; the technical part (metadata
stripped, scanned for the bidder's identity) and the qualification parts go to the blob
store and each opened bid gets an `EvaluatedBid` with a random code (app/opening/parts.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.accounts.models import User
from app.audit import append_event
from app.bids.documents import record_of as document_of
from app.bids.documents import store_record
from app.bids.models import Bid, BidStatus
from app.bids.operations import bidder_id, deadline_passed, sealing_grace, sealing_record_of
from app.bids.receipts import platform_signing_key
from app.companies.models import Company
from app.core.errors import Conflict, OperationError
from app.core.formatting import moment_text
from app.core.types import utcnow
from app.custody.models import KeyShare, TenderKey
from app.custody.operations import envelope_tender_id, require_key_holder, unseal_share
from app.events import CHANNEL_PREFIX, publish_after_commit, publish_now
from app.extensions import db
from app.opening import parts as opened_parts
from app.opening.models import LineStatus, OpeningLine, OpeningSession, OpeningStatus, ShareUnlock
from app.opening.signals import tender_opened
from app.permissions import Permission, require
from app.storage import StorageError
from app.tenders.commercial import commercial_spec_of
from app.tenders.documents import blob_store
from app.tenders.models import Lot, Tender, TenderDocument, TenderStatus
from app.tenders.operations import TENDER_CHANNEL, template_document
from app.tenders.suspension import refuse_if_suspended
from bidding import envelope as envelopes
from bidding import keys
from bidding.canonical import canonical_json
from bidding.commercial import MAX_COMMERCIAL_SIZE, CommercialSpec, check_commercial_part
from bidding.errors import EnvelopeError, EnvelopeHashMismatch, KeyCeremonyError
from bidding.opening_record import sign_opening_record
from bidding.receipts import dump_document

log = logging.getLogger(__name__)

OPENING_RECORD_KIND = "opening_record"
DEFAULT_MIN_BIDS = 3
_WRAP_INFO = b"fairbid-opening-share-wrap-v1\x00"


def opening_channel(tender_id: int) -> str:
    return f"{CHANNEL_PREFIX}opening:{tender_id}"


def objection_window() -> timedelta:
    return timedelta(minutes=current_app.config.get("OPENING_OBJECTION_MINUTES", 30))


def min_bids_of(tender: Tender) -> int:
    """The template's `min_bids` (default 3)."""
    try:
        document = template_document(tender.template_version)
    except Exception:  # a template that does not load cannot lower the rule
        log.warning("template of tender %s does not load; min_bids %d", tender.id, 3)
        return DEFAULT_MIN_BIDS
    value = document.get("min_bids", DEFAULT_MIN_BIDS) if isinstance(document, dict) else None
    return value if isinstance(value, int) and value >= 1 else DEFAULT_MIN_BIDS


# --- reading -------------------------------------------------------------------------------


def session_of(tender: Tender) -> OpeningSession | None:
    return db.session.get(OpeningSession, tender.id)


def lines_of(tender: Tender) -> list[OpeningLine]:
    """The opening lines, grouped by lot (in lot order), then in receipt order."""
    return list(
        db.session.scalars(
            select(OpeningLine)
            .outerjoin(Lot, Lot.id == OpeningLine.lot_id)
            .where(OpeningLine.tender_id == tender.id)
            .order_by(Lot.number, OpeningLine.bid_id)
        )
    )


def companies_of(lines: list[OpeningLine]) -> dict[int, Company]:
    """The companies of the opening lines, by id."""
    ids = [line.company_id for line in lines]
    return {c.id: c for c in db.session.scalars(select(Company).where(Company.id.in_(ids)))}


def submitted_by_lot(tender: Tender) -> dict[int | None, int]:
    """Submitted envelopes per lot id (None: a tender of one lot)."""
    rows = db.session.execute(
        select(Bid.lot_id, func.count())
        .where(Bid.tender_id == tender.id, Bid.status == BidStatus.SUBMITTED)
        .group_by(Bid.lot_id)
    ).all()
    return {row[0]: row[1] for row in rows}


def _ids(failed: list[dict], tender: Tender) -> set[int]:
    references = {item["lot"] for item in failed}
    return {lot.id for lot in tender.lots if lot.reference in references}


def failed_lot_ids(tender: Tender, session: OpeningSession | None) -> set[int]:
    """The lots failed at the start of the opening (their envelopes stay unopened)."""
    if session is None or not session.failed_lots:
        return set()
    return _ids(session.failed_lots, tender)


def cancelled_lots(tender: Tender) -> list[dict]:
    """The lots an addendum cancelled before the deadline, with the envelopes received for
    them before: kept unopened and reported ("lot cancelled, not opened")
    ([{"lot": reference, "received": n, "addendum": number}])."""
    if not tender.has_lots:
        return []
    per_lot = submitted_by_lot(tender)
    addenda = {addendum.id: addendum.number for addendum in tender.addenda}
    return [
        {
            "lot": lot.reference,
            "received": per_lot.get(lot.id, 0),
            "addendum": addenda.get(lot.cancelled_by_addendum_id),
        }
        for lot in tender.lots
        if lot.is_cancelled
    ]


def submitted_count(tender: Tender) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Bid)
        .where(Bid.tender_id == tender.id, Bid.status == BidStatus.SUBMITTED)
    )


@dataclass(frozen=True)
class CustodianState:
    threshold: int
    unlocked: list[User]
    missing: list[User]


def custodian_state(tender: Tender) -> CustodianState | None:
    tender_key = db.session.get(TenderKey, tender.id)
    if tender_key is None:
        return None
    done = set(
        db.session.scalars(
            select(ShareUnlock.custodian_id).where(ShareUnlock.tender_id == tender.id)
        )
    )
    people = list(
        db.session.scalars(
            select(User)
            .join(KeyShare, KeyShare.custodian_id == User.id)
            .where(KeyShare.tender_id == tender.id)
            .order_by(User.id)
        )
    )
    return CustodianState(
        tender_key.threshold,
        [u for u in people if u.id in done],
        [u for u in people if u.id not in done],
    )


def line_event(line: OpeningLine | _Outcome, company: Company) -> dict:
    """One opening line as the live page shows it (the same public columns as the page)."""
    if isinstance(line, _Outcome):
        bid_id, sha256, fields = line.bid.id, line.bid.envelope_sha256, line.commercial or {}
    else:
        bid_id, sha256, fields = line.bid_id, line.envelope_sha256, commercial_fields(line)
    return {
        "event": "line",
        "bid": bid_id,
        "company": company.name,
        "status": str(line.status),
        "reason": line.reason or "",
        "price": fields.get("price") or "",
        "fields": {key: value for key, value in fields.items() if key != "price"},
        "envelope_sha256": sha256,
    }


def live_state(tender: Tender) -> dict:
    """Everything the live page needs to redraw itself: the first event of every stream
    (after a reconnection too). Once the ceremony is over it carries the lines and the
    record, so a watcher that missed the `line` events still sees them."""
    session = session_of(tender)
    total = submitted_count(tender)
    ceremony = str(session.status) if session is not None else None
    tender_key = db.session.get(TenderKey, tender.id)
    unlocked = db.session.scalar(
        select(func.count()).select_from(ShareUnlock).where(ShareUnlock.tender_id == tender.id)
    )
    state = {
        "status": str(tender.status),
        "ceremony": ceremony,
        "done": total if ceremony == OpeningStatus.COMPLETED else 0,
        "total": total,
        "unlocked": unlocked if ceremony == OpeningStatus.UNLOCKING else 0,
        "threshold": tender_key.threshold if tender_key is not None else None,
        "reason": session.reason if session is not None and session.reason else "",
    }
    if ceremony == OpeningStatus.COMPLETED:
        lines = lines_of(tender)
        companies = companies_of(lines)
        state["lines"] = [line_event(line, companies[line.company_id]) for line in lines]
        record = record_of(tender)
        state["record_sha256"] = record.sha256 if record is not None else None
    return state


def ceremony_over(state: dict) -> bool:
    return state["ceremony"] in (OpeningStatus.COMPLETED, OpeningStatus.FAILED)


def is_custodian_of(user: User, tender: Tender) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return (
        db.session.scalar(
            select(KeyShare.id).where(
                KeyShare.tender_id == tender.id, KeyShare.custodian_id == user.id
            )
        )
        is not None
    )


def line_of_company(user: User, tender: Tender) -> OpeningLine | None:
    if not getattr(user, "is_authenticated", False) or user.company_id is None:
        return None
    return db.session.scalar(
        select(OpeningLine).where(
            OpeningLine.tender_id == tender.id, OpeningLine.company_id == user.company_id
        )
    )


# --- closing and starting ------------------------------------------------------------------


def close_if_due(tender: Tender, now: datetime | None = None) -> bool:
    """published → closed once the bid deadline has passed: the clock's deadline step
    (app/clock), and `start_opening` should the clock be late.
    Returns whether the tender changed (the caller commits)."""
    now = now or utcnow()
    if tender.status != TenderStatus.PUBLISHED or now < tender.submission_deadline:
        return False
    tender.status = TenderStatus.CLOSED
    append_event(
        "tender.closed",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"deadline": tender.submission_deadline.isoformat(), "at": now.isoformat()},
    )
    publish_after_commit(TENDER_CHANNEL, {"tender": tender.id, "event": "closed"})
    return True


def start_opening(actor: User, tender: Tender) -> OpeningSession:
    """Staff open the ceremony at or after the opening time. With fewer than the template's
    `min_bids` submitted envelopes nothing is opened and the tender fails. The caller
    commits, then makes the sealing record (`seal_tender`)."""
    require(actor, Permission.MANAGE_TENDERS, tender.centre_id)
    refuse_if_suspended(tender)
    now = utcnow()
    if now < tender.opening_at:
        raise Conflict(
            _l(
                "The opening time has not come: the server time is %(now)s, the opening is at "
                "%(opening)s.",
                now=moment_text(now, "precise", tender.centre),
                opening=moment_text(tender.opening_at, "precise", tender.centre),
            ),
            code="before_opening",
        )
    close_if_due(tender, now)
    if tender.status == TenderStatus.PUBLISHED:
        raise deadline_passed(tender, now)  # never expected: the opening follows the deadline
    if now < tender.submission_deadline + sealing_grace():
        raise Conflict(
            _l("The bids are being sealed; start the opening in a few minutes."),
            code="sealing",
        )
    if tender.status != TenderStatus.CLOSED or session_of(tender) is not None:
        raise Conflict(_l("The opening of this tender has already started."), code="started")
    if db.session.get(TenderKey, tender.id) is None:
        raise Conflict(_l("This tender has no key: its bids cannot be opened."), code="no_key")
    session = OpeningSession(
        tender_id=tender.id,
        started_by_id=actor.id,
        started_at=now,
        wrap_salt=os.urandom(32).hex(),
    )
    db.session.add(session)
    received, needed = submitted_count(tender), min_bids_of(tender)
    fails = received < needed
    reason = f"{received} bid(s) received by the deadline; at least {needed} are needed"
    if tender.has_lots:
        # Each lot is its own competition: a lot with fewer than min_bids envelopes fails
        # unopened; the others proceed (the tender fails only when every lot does).
        # A lot cancelled by an addendum is no competition: never failed, never opened.
        per_lot = submitted_by_lot(tender)
        live = tender.live_lots
        failed = [
            {"lot": lot.reference, "received": per_lot.get(lot.id, 0), "min_bids": needed}
            for lot in live
            if per_lot.get(lot.id, 0) < needed
        ]
        session.failed_lots = failed
        for item in failed:
            append_event(
                "opening.lot_failed",
                actor=actor,
                object_type="tender",
                object_id=tender.id,
                centre_id=tender.centre_id,
                data={"reason": "min_bids", **item},
            )
        fails = len(failed) == len(live)
        counts = ", ".join(f"lot {item['lot']}: {item['received']}" for item in failed)
        reason = f"every lot has fewer than {needed} envelopes ({counts})"
        if not fails:  # the envelopes to open: those of the lots that proceed
            skipped = _ids(failed, tender) | {lot.id for lot in tender.lots if lot.is_cancelled}
            received = sum(n for lot_id, n in per_lot.items() if lot_id not in skipped)
    if fails:
        session.status = OpeningStatus.FAILED
        session.completed_at = now
        session.reason = reason
        tender.status = TenderStatus.FAILED
        append_event(
            "tender.failed",
            actor=actor,
            object_type="tender",
            object_id=tender.id,
            centre_id=tender.centre_id,
            data={"reason": "min_bids", "received": received, "min_bids": needed},
        )
        _publish(tender.id, {"event": "failed", "reason": reason})
    else:
        append_event(
            "opening.started",
            actor=actor,
            object_type="tender",
            object_id=tender.id,
            centre_id=tender.centre_id,
            data={"envelopes": received},
        )
        threshold = db.session.get(TenderKey, tender.id).threshold
        _publish(tender.id, {"event": "started", "total": received, "threshold": threshold})
    db.session.flush()
    return session


def _publish(tender_id: int, payload: dict) -> None:
    publish_after_commit(opening_channel(tender_id), {"tender": tender_id, **payload})


# --- custodians ----------------------------------------------------------------------------


def _wrapping_key(session: OpeningSession) -> bytearray:
    secret = current_app.config["SECRET_KEY"]
    ikm = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=bytes.fromhex(session.wrap_salt),
        info=_WRAP_INFO + f"tender:{session.tender_id}".encode(),
    )
    return bytearray(hkdf.derive(ikm))


def _share_aad(tender_id: int, custodian_id: int) -> bytes:
    return canonical_json({"custodian": custodian_id, "tender": tender_id})


def _wrap_share(session: OpeningSession, custodian_id: int, mnemonic: str) -> str:
    key = _wrapping_key(session)
    nonce = os.urandom(12)
    try:
        sealed = AESGCM(bytes(key)).encrypt(
            nonce, mnemonic.encode("ascii"), _share_aad(session.tender_id, custodian_id)
        )
    finally:
        keys.wipe(key)
    return base64.b64encode(nonce + sealed).decode("ascii")


def _unwrap_share(session: OpeningSession, unlock: ShareUnlock) -> str:
    raw = base64.b64decode(unlock.sealed_share)
    key = _wrapping_key(session)
    try:
        plain = bytearray(
            AESGCM(bytes(key)).decrypt(
                raw[:12], raw[12:], _share_aad(unlock.tender_id, unlock.custodian_id)
            )
        )
    finally:
        keys.wipe(key)
    try:
        return plain.decode("ascii")
    finally:
        keys.wipe(plain)


def unlock_share(actor: User, tender: Tender, passphrase: str) -> bool:
    """A custodian of the tender unlocks their share for the opening. Returns True when this
    was the k-th share (the caller commits, then enqueues the opening job). A wrong passphrase
    is audited and refused (`WrongKeyPassphrase`, whose audited attempt is kept)."""
    require_key_holder(actor)
    refuse_if_suspended(tender)
    share = db.session.scalar(
        select(KeyShare).where(KeyShare.tender_id == tender.id, KeyShare.custodian_id == actor.id)
    )
    if share is None:
        raise OperationError(_l("You hold no share of this tender."), code="not_found", status=404)
    session = db.session.get(OpeningSession, tender.id, with_for_update=True)
    if session is None or session.status != OpeningStatus.UNLOCKING:
        raise Conflict(_l("The ceremony is not waiting for shares."), code="not_unlocking")
    existing = db.session.scalar(
        select(ShareUnlock.id).where(
            ShareUnlock.tender_id == tender.id, ShareUnlock.custodian_id == actor.id
        )
    )
    if existing is not None:
        raise Conflict(_l("You have already unlocked your share."), code="already_unlocked")
    _, mnemonic = unseal_share(actor, share, tender, passphrase, purpose="opening")
    sealed = _wrap_share(session, actor.id, mnemonic)
    del mnemonic  # best effort; str cannot be wiped
    db.session.add(ShareUnlock(tender_id=tender.id, custodian_id=actor.id, sealed_share=sealed))
    db.session.flush()
    count = db.session.scalar(
        select(func.count()).select_from(ShareUnlock).where(ShareUnlock.tender_id == tender.id)
    )
    threshold = db.session.get(TenderKey, tender.id).threshold
    append_event(
        "opening.share_unlocked",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"unlocked": count, "threshold": threshold},
    )
    ready = count >= threshold
    if ready:
        session.status = OpeningStatus.OPENING
    _publish(tender.id, {"event": "unlocked", "unlocked": count, "threshold": threshold})
    return ready


# --- opening (the job's work) --------------------------------------------------------------


@dataclass
class _Outcome:
    bid: Bid
    company: Company
    status: str
    commercial: dict | None = None
    reason: str = ""
    kept: opened_parts.KeptParts | None = None
    problems: list | None = None


class _BoundedPart:
    """Keeps the first `limit` + 1 bytes of a part and counts the rest (a hostile
    commercial part of a gigabyte must not fill the worker's memory)."""

    def __init__(self, limit: int) -> None:
        self.buffer = io.BytesIO()
        self.limit = limit
        self.size = 0

    def write(self, data) -> None:
        room = self.limit + 1 - self.buffer.tell()
        if room > 0:
            self.buffer.write(bytes(data[:room]))
        self.size += len(data)

    def getvalue(self) -> bytes:
        return self.buffer.getvalue()


def _open_one(
    bid: Bid,
    company: Company,
    tender: Tender,
    private_key,
    spec: CommercialSpec,
    lot: str | None = None,
) -> _Outcome:
    commercial = _BoundedPart(MAX_COMMERCIAL_SIZE)
    parts = opened_parts.PartSinks(blob_store())

    def sink_for(name: str):
        return commercial if name == envelopes.COMMERCIAL else parts.sink_for(name)

    try:
        with blob_store().open(bid.envelope_sha256) as stream:
            envelopes.decrypt_envelope(
                stream,
                private_key,
                sink_for,
                expected_tender=envelope_tender_id(tender),
                expected_bidder=bidder_id(company),
                expected_sha256=bid.envelope_sha256,
                # The lot it was accepted for, checked in the header before the key is used.
                expected_lot=lot,
            )
    except (StorageError, EnvelopeHashMismatch, OSError) as error:
        reason = (
            "the stored envelope differs from the receipted one"
            if isinstance(error, EnvelopeHashMismatch)
            else "the stored envelope is missing or unreadable"
        )
        parts.discard()
        return _Outcome(bid, company, LineStatus.WITHDRAWN, reason=reason)
    except (EnvelopeError, ValueError) as error:
        parts.discard()
        return _Outcome(bid, company, LineStatus.REVOKED, reason=f"{type(error).__name__}: {error}")
    except BaseException:
        parts.discard()
        raise
    # The commercial part against the tender's form: a part that breaks it is opened but
    # malformed (its reason on the line); only its well-formed fields are kept.
    checked = check_commercial_part(spec, commercial.getvalue(), size=commercial.size)
    kept = parts.keep(company)
    return _Outcome(
        bid,
        company,
        LineStatus.OPENED,
        commercial=checked.fields,
        reason=checked.reason,
        kept=kept,
        problems=[p.to_json() for p in checked.problems],
    )


def _progress(tender_id: int, done: int, total: int) -> None:
    # Live only, not state: published at once (the job's transaction is still open).
    publish_now(
        opening_channel(tender_id),
        {"tender": tender_id, "event": "progress", "done": done, "total": total},
    )


def open_bids(tender_id: int) -> str:
    """Open every submitted envelope of a tender whose k shares are in, and write the opening
    lines, the opening record and the status change in ONE transaction. Idempotent: a tender
    already opened (or not ready) is left alone. Returns what happened. Never commits: the job
    does."""
    tender = db.session.scalar(
        select(Tender)
        .where(Tender.id == tender_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if tender is None:
        return "missing"
    session = db.session.get(OpeningSession, tender_id, populate_existing=True)
    if tender.status != TenderStatus.CLOSED or session is None:
        return "done" if tender.status == TenderStatus.OPENED else "not_ready"
    if session.status != OpeningStatus.OPENING:
        return "not_ready"
    tender_key = db.session.get(TenderKey, tender_id)
    unlocks = list(
        db.session.scalars(select(ShareUnlock).where(ShareUnlock.tender_id == tender_id))
    )
    try:
        mnemonics = [_unwrap_share(session, unlock) for unlock in unlocks if unlock.sealed_share]
        private_key = keys.rebuild_private_key(mnemonics, bytes.fromhex(tender_key.public_key))
    except (InvalidTag, ValueError, KeyCeremonyError) as error:
        # e.g. the SECRET_KEY changed since the shares were unlocked: they cannot be used;
        # the custodians unlock again (never expected, but never a stuck ceremony).
        log.error("opening of tender %s: waiting shares unusable (%s)", tender_id, type(error))
        for unlock in unlocks:
            db.session.delete(unlock)
        session.status = OpeningStatus.UNLOCKING
        append_event(
            "opening.shares_reset",
            object_type="tender",
            object_id=tender_id,
            centre_id=tender.centre_id,
            data={"error": type(error).__name__},
        )
        _publish(tender_id, {"event": "reset"})
        return "shares_reset"
    del mnemonics
    # A failed lot's envelopes, and a cancelled lot's, stay unopened.
    unopened = failed_lot_ids(tender, session) | {lot.id for lot in tender.lots if lot.is_cancelled}
    rows = [
        (bid, company)
        for bid, company in db.session.execute(
            select(Bid, Company)
            .join(Company, Company.id == Bid.company_id)
            .where(Bid.tender_id == tender_id, Bid.status == BidStatus.SUBMITTED)
            .order_by(Bid.id)
        ).all()
        if bid.lot_id not in unopened
    ]
    references = {lot.id: lot.reference for lot in tender.lots}
    outcomes = []
    spec = commercial_spec_of(tender)
    try:
        for number, (bid, company) in enumerate(rows, start=1):
            lot = references.get(bid.lot_id) if bid.lot_id is not None else None
            outcomes.append(_open_one(bid, company, tender, private_key, spec, lot))
            _progress(tender_id, number, len(rows))
    finally:
        del private_key  # best effort: the OpenSSL object is freed when unreferenced
    now = utcnow()
    _record(tender, session, outcomes, now)
    return "opened"


def _record(tender: Tender, session: OpeningSession, outcomes: list[_Outcome], now: datetime):
    sealing = sealing_record_of(tender)
    references = {lot.id: lot.reference for lot in tender.lots}
    lines = []
    opened_parts.record_opened_bids(
        tender.id,
        [(o.bid.id, o.kept) for o in outcomes if o.status == LineStatus.OPENED],
    )
    for outcome in outcomes:
        fields = outcome.commercial
        db.session.add(
            OpeningLine(
                tender_id=tender.id,
                bid_id=outcome.bid.id,
                company_id=outcome.company.id,
                lot_id=outcome.bid.lot_id,
                status=outcome.status,
                price=fields.get("price") if fields else None,
                commercial=canonical_json(fields).decode("utf-8") if fields else None,
                envelope_sha256=outcome.bid.envelope_sha256,
                reason=outcome.reason,
                created_at=now,
            )
        )
        lines.append(
            {
                "sequence": outcome.bid.id,
                **({"lot": references[outcome.bid.lot_id]} if outcome.bid.lot_id else {}),
                "bidder": bidder_id(outcome.company),
                "company": outcome.company.name,
                "status": str(outcome.status),
                "commercial": fields,
                "envelope_sha256": outcome.bid.envelope_sha256,
                "reason": outcome.reason,
                **({"problems": outcome.problems} if outcome.problems else {}),
            }
        )
        if outcome.status == LineStatus.WITHDRAWN:
            append_event(
                "opening.incident",
                object_type="bid",
                object_id=outcome.bid.id,
                centre_id=tender.centre_id,
                tender_id=tender.id,
                data={"tender": tender.id, "reason": outcome.reason},
            )
    record = {
        "version": 1,
        "tender": envelope_tender_id(tender),
        "reference": tender.reference,
        "opened_at": now.isoformat(),
        "sealing_record_sha256": sealing.sha256 if sealing else None,
        "lines": lines,
        # A tender divided into lots: the lots failed unopened (fewer than min_bids).
        **({"failed_lots": list(session.failed_lots)} if session.failed_lots else {}),
        # ... and those an addendum cancelled: their envelopes kept, not opened.
        **({"cancelled_lots": cancelled} if (cancelled := cancelled_lots(tender)) else {}),
    }
    signed = dump_document(sign_opening_record(record, platform_signing_key()))
    document = store_record(tender, OPENING_RECORD_KIND, "Opening record", signed, now)
    for unlock in db.session.scalars(select(ShareUnlock).where(ShareUnlock.tender_id == tender.id)):
        unlock.sealed_share = None
    session.status = OpeningStatus.COMPLETED
    session.completed_at = now
    session.record_document_id = document.id
    tender.status = TenderStatus.OPENED
    counts = {status.value: 0 for status in LineStatus}
    for outcome in outcomes:
        counts[str(outcome.status)] += 1
    append_event(
        "tender.opened",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"document_id": document.id, "sha256": document.sha256, **counts},
    )
    # Live, after the commit, in order: each line, the record, then the end of the ceremony.
    for outcome in outcomes:
        _publish(tender.id, line_event(outcome, outcome.company))
    _publish(tender.id, {"event": "record", "sha256": document.sha256})
    _publish(tender.id, {"event": "opened", "done": len(outcomes), "total": len(outcomes)})
    publish_after_commit(TENDER_CHANNEL, {"tender": tender.id, "event": "opened"})
    tender_opened.send(tender)


# --- bidders' confirmations and objections -------------------------------------------------


def _own_line(actor: User, tender: Tender) -> OpeningLine:
    require(actor, Permission.TAKE_PART)
    line = line_of_company(actor, tender)
    if line is None:
        raise OperationError(_l("Your company has no line in this opening."), "not_found", 404)
    session = session_of(tender)
    if session is None or session.completed_at is None:
        raise Conflict(_l("The opening record is not out yet."), code="not_opened")
    if utcnow() > session.completed_at + objection_window():
        raise Conflict(_l("The time to confirm or object has passed."), code="window_closed")
    if line.confirmed_at or line.objected_at:
        raise Conflict(_l("Your company has already answered for this line."), code="answered")
    return line


def confirm_line(actor: User, tender: Tender) -> OpeningLine:
    line = _own_line(actor, tender)
    line.confirmed_at = utcnow()
    append_event(
        "opening.line_confirmed",
        actor=actor,
        object_type="bid",
        object_id=line.bid_id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={"tender": tender.id},
    )
    return line


def object_to_line(actor: User, tender: Tender, objection: str) -> OpeningLine:
    objection = (objection or "").strip()
    if not objection:
        raise OperationError(_l("Say what is wrong with the line."), code="objection")
    line = _own_line(actor, tender)
    line.objected_at = utcnow()
    line.objection = objection[:4000]
    append_event(
        "opening.line_objected",
        actor=actor,
        object_type="bid",
        object_id=line.bid_id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={
            "tender": tender.id,
            "objection_sha256": hashlib.sha256(objection.encode()).hexdigest(),
        },
    )
    return line


def record_of(tender: Tender) -> TenderDocument | None:
    return document_of(tender, OPENING_RECORD_KIND)


def commercial_fields(line: OpeningLine) -> dict:
    return json.loads(line.commercial) if line.commercial else {}
