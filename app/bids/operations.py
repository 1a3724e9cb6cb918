"""Sealed-bid submission: envelopes in, signed receipts out; replacement and withdrawal
before the deadline; resumable uploads; the sealing record after the deadline.

The platform never sees a bid's plaintext. An envelope (bidding/FORMAT.md) is streamed
into the blob store under a size cap and fsynced; then `bidding.envelope.inspect_envelope`
checks, without any key, its header, its tender and bidder ids, its part sizes and its
chunk framing. Only then is the bid stored and the receipt signed. A refused envelope
leaves no Bid row, and its blob is removed unless something else references it.

Identities inside envelopes: the tender is `envelope_tender_id(tender)` ("T<id>"), the
bidder is the company's unified social credit code (`Company.registration_number`).

The deadline is the server's clock: an envelope counts as received when its last byte
is durably stored (`received_at`, also on the receipt), and is refused if that is not before
`Tender.submission_deadline`. The refusal states the server time in UTC and in the
centre's time zone. An envelope received in time whose checks end more than
`SEALING_GRACE_SECONDS` after the deadline is refused too, and the sealing record
(`seal_bids`, run by the clock or the job `app.bids.jobs.seal_tender`) is made only after
that grace period: no bid can join the tender after its sealing record exists (the record
locks every registration row first; acceptance re-checks the time under its own). The grace
(30 s) covers the checks of an envelope at the size cap (about 3 s for 1 GiB here) and fits,
with one clock interval, inside the minute after which a missing record is an alert.

Why acceptance writes its audit event in a second transaction
-------------------------------------------------------------
Every other operation appends its audit event in the transaction of its change (DESIGN.md). The
audit log is a hash chain, so `append_event` takes a global PostgreSQL advisory lock: two
appends can never share a parent. Inside the accepting transaction, that lock would make
every bidder of every tender wait for every other one, exactly at the deadline, when all of
them submit at once. So accepting a bid inserts only its own rows (the Bid; and updates
only the company's own previous Bid row, and its own upload session) and never touches the
tender or any other shared row; it commits, and the `bid.received` event (sequence, SHA-256,
size; never content) is appended afterwards in a follow-up transaction registered with
`after_commit_released` (after the commit *and* the release of the request's connection, so
that no request ever holds one connection while waiting for another). The appends of the
bids accepted at the same moment in a worker are committed together (`_GroupCommit`: one
lock, one INSERT, one commit per group); each request still waits for its own event's
commit before it answers. That append is idempotent (skipped when the bid already has its
event), and `reconcile_audit` (`flask bids reconcile-audit`) appends any event a crash
between the two transactions left out. No database connection is held while the envelope's
bytes arrive (`release_connection`). The receipt itself, signed in the first transaction, is the
bidder's proof; the audit event is the platform's record of it, at most briefly late.

The per-company registration row is locked while a bid is accepted, so two concurrent
submissions of the same company cannot both stay SUBMITTED; different companies never wait
for each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import BinaryIO

from flask import current_app, has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, Select, String, bindparam, cast, exists, func, select
from sqlalchemy.orm import aliased
from werkzeug.exceptions import ClientDisconnected

from app.accounts.models import User
from app.audit import EventSpec, append_event, append_events, chain_lock
from app.audit.chain import GENESIS
from app.audit.models import AuditEvent
from app.bids.documents import record_of, store_record
from app.bids.models import Bid, BidStatus, UploadSession
from app.bids.receipts import platform_signing_key
from app.companies.models import Company
from app.core.errors import Conflict, OperationError
from app.core.formatting import centre_timezone
from app.core.keyed_hash import keyed_hash
from app.core.transaction import (
    after_commit,
    after_commit_released,
    own_session,
    release_connection,
)
from app.core.types import utcnow
from app.custody.operations import envelope_tender_id
from app.events import publish_after_commit
from app.extensions import db
from app.permissions import Permission, require
from app.storage import BlobStore, BlobTooLarge, StoredBlob
from app.tenders.documents import blob_store, open_document
from app.tenders.models import Lot, Tender, TenderDocument, TenderRegistration, TenderStatus
from app.tenders.operations import TENDER_CHANNEL
from app.tenders.suspension import (
    SuspensionStatus,
    TenderSuspension,
    is_suspended,
    refuse_if_suspended,
)
from bidding import envelope as envelopes
from bidding.errors import EnvelopeError, WrongBidder, WrongLot, WrongTender
from bidding.merkle import make_sealing_record
from bidding.receipts import dump_document, format_timestamp, make_receipt, sign_receipt

log = logging.getLogger(__name__)

RECEIVED = "bid.received"
SEALING_RECORD_KIND = "sealing_record"
# One PUT of a resumable upload carries at most this much (the page sends 1 MiB).
MAX_CHUNK_SIZE = 16 * 1024 * 1024
_COPY_BLOCK = 1024 * 1024
_LOCK_POLL_SECONDS = 0.02  # a racing chunk of the same session: look again this often
_SESSION_PREFIX = "upload-session-"  # "upload-": BlobStore.remove_stale_temp_files collects it
_CONTENT_RANGE = re.compile(r"^bytes ([0-9]{1,15})-([0-9]{1,15})/([0-9]{1,15})$")


# --- who may bid ----------------------------------------------------------------------------


def bidder_id(company: Company) -> str:
    """The bidder id inside envelopes: the unified social credit code."""
    return company.registration_number


def bidding_company(actor: User, tender: Tender) -> Company:
    """The one access check of this domain: an approved company registered for the tender."""
    company = _approved_company(actor)
    registered = db.session.scalar(
        select(TenderRegistration.id).where(_registration_of(tender, company))
    )
    if registered is None:
        raise _not_registered()
    return company


def _approved_company(actor: User) -> Company:
    """`bidding_company`'s first half: the actor's company, approved."""
    require(actor, Permission.TAKE_PART)
    company = actor.company
    if company is None or not company.is_approved:
        raise OperationError(
            _l("Your company's registration must be approved before it can take part."),
            code="company_not_approved",
            status=403,
        )
    return company


def _registration_of(tender: Tender, company: Company):
    return (TenderRegistration.tender_id == tender.id) & (
        TenderRegistration.company_id == company.id
    )


# The statements every upload sends are built once, with the ids bound when they run:
# SQLAlchemy keeps a built statement's cache key; building these three again for each
# upload (the EXISTS, the join, the functions) and keying them cost ~0.4 ms of CPU.
_TENDER_ID = "tender_id"
_COMPANY_ID = "company_id"


def _registration_here():
    return (TenderRegistration.tender_id == bindparam(_TENDER_ID, type_=Integer)) & (
        TenderRegistration.company_id == bindparam(_COMPANY_ID, type_=Integer)
    )


def _not_registered() -> OperationError:
    return OperationError(
        _l("Register your company for this tender before submitting a bid."),
        code="not_registered",
        status=403,
    )


def _bidding_company_and_schedule(
    actor: User, tender: Tender
) -> tuple[Company, tuple[str, datetime, bool]]:
    """`bidding_company` and `_fresh_schedule` in one round trip (an upload asks both before
    its bytes arrive); refuses as `bidding_company` does."""
    company = _approved_company(actor)
    row = db.session.execute(
        _registration_and_schedule_query(), {_TENDER_ID: tender.id, _COMPANY_ID: company.id}
    ).one()
    if not row.registered:
        raise _not_registered()
    return company, (row.status, row.submission_deadline, row.suspended)


@cache
def _registration_and_schedule_query() -> Select:
    registered = exists().where(_registration_here()).label("registered")
    return select(registered, *_schedule_columns()).where(
        Tender.id == bindparam(_TENDER_ID, type_=Integer)
    )


def bidding_refusal(actor: User, tender: Tender) -> str | None:
    """Why the actor's company cannot bid for this tender (`bidding_company`'s refusal), or
    None: the bid page says it before anyone tries."""
    try:
        bidding_company(actor, tender)
    except OperationError as error:
        return str(error.message)
    return None


def _server_time(tender: Tender, moment: datetime) -> tuple[str, str]:
    zone = centre_timezone(tender.centre)
    utc = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    local = moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") + f" ({zone.key})"
    return utc, local


def deadline_passed(tender: Tender, now: datetime, deadline: datetime | None = None) -> Conflict:
    utc, local = _server_time(tender, now)
    deadline_utc, deadline_local = _server_time(tender, deadline or tender.submission_deadline)
    return Conflict(
        _l(
            "The bid deadline has passed: the server time is %(utc)s (%(local)s); the deadline "
            "was %(deadline_utc)s (%(deadline_local)s). Bids can no longer be submitted, "
            "replaced or withdrawn.",
            utc=utc,
            local=local,
            deadline_utc=deadline_utc,
            deadline_local=deadline_local,
        ),
        code="deadline_passed",
    )


def _schedule_columns() -> tuple:
    """Status, deadline and whether a suspension holds the tender (of a statement selecting
    from `Tender`)."""
    suspended = (
        exists()
        .where(
            TenderSuspension.tender_id == Tender.id,
            TenderSuspension.status != SuspensionStatus.LIFTED,
        )
        .label("suspended")
    )
    return Tender.status, Tender.submission_deadline, suspended


def _fresh_schedule(tender: Tender) -> tuple[str, datetime, bool]:
    """Status, deadline and whether a suspension holds the tender, as the database has them
    now (an addendum, a cancellation or a suspension may have landed while the envelope was
    uploading): one round trip."""
    row = db.session.execute(select(*_schedule_columns()).where(Tender.id == tender.id)).one()
    return row.status, row.submission_deadline, row.suspended


def check_open(tender: Tender, moment: datetime | None = None) -> datetime:
    """The tender takes bids at `moment` (default: now, by the server's clock); returns the
    deadline."""
    return _check_schedule(tender, _fresh_schedule(tender), moment)


def _check_schedule(
    tender: Tender, schedule: tuple[str, datetime, bool], moment: datetime | None = None
) -> datetime:
    """`check_open` on a schedule read by the caller (`_fresh_schedule`)."""
    status, deadline, suspended = schedule
    if suspended:
        refuse_if_suspended(tender)  # reads the suspension and raises TenderSuspended
    # Closed by the clock at its deadline: an envelope received before it is still checked
    # (within the sealing grace), a later one is refused with the server time.
    if status not in (TenderStatus.PUBLISHED, TenderStatus.CLOSED):
        raise Conflict(_l("This tender is not accepting bids."), code="not_open")
    now = moment or utcnow()
    if now >= deadline:
        raise deadline_passed(tender, now, deadline)
    if status != TenderStatus.PUBLISHED:
        raise Conflict(_l("This tender is not accepting bids."), code="not_open")
    return deadline


def is_open(tender: Tender) -> bool:
    return (
        tender.status == TenderStatus.PUBLISHED
        and utcnow() < tender.submission_deadline
        and not is_suspended(tender.id)
    )


def sealing_grace() -> timedelta:
    return timedelta(seconds=current_app.config["SEALING_GRACE_SECONDS"])


# --- accepting an envelope ------------------------------------------------------------------


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


def too_large(limit: int) -> OperationError:
    return OperationError(
        _l("The envelope is larger than the limit of %(mib)s MiB.", mib=_mib(limit)),
        code="too_large",
        status=413,
    )


_STORAGE_FULL = (errno.ENOSPC, errno.EDQUOT)


def storage_full() -> OperationError:
    """The blob store's filesystem is full: nothing was received, no receipt; the bidder
    retries later (the operators see the logged error)."""
    return OperationError(
        _l(
            "The platform cannot store your envelope right now: its storage is full. Nothing "
            "was received and no receipt was issued. Try again in a few minutes."
        ),
        code="storage_full",
        status=507,
    )


@contextlib.contextmanager
def _storage_errors():
    """Turn a full disk while storing an envelope into the bidder's `storage_full`."""
    try:
        yield
    except OSError as error:
        if error.errno not in _STORAGE_FULL:
            raise
        log.error("blob store full while receiving an envelope: %s", error)
        raise storage_full() from None


def _refusal(error: EnvelopeError, tender_id: str, expected_bidder: str) -> OperationError:
    if isinstance(error, WrongTender):
        return OperationError(
            _l(
                "This envelope was sealed for another tender; this tender's id is %(id)s. "
                "Seal your bid again with this tender's id and public key.",
                id=tender_id,
            ),
            code="wrong_tender",
        )
    if isinstance(error, WrongLot):
        return OperationError(
            _l(
                "This envelope was sealed for another lot than the one it was submitted for "
                "(or names a lot in a tender of one lot). Seal it again for this lot."
            ),
            code="wrong_lot",
        )
    if isinstance(error, WrongBidder):
        return OperationError(
            _l(
                "This envelope names another bidder; your company's bidder id is %(id)s "
                "(its unified social credit code). Seal your bid again with that id.",
                id=expected_bidder,
            ),
            code="wrong_bidder",
        )
    return OperationError(
        _l("This file is not a complete, well-formed bid envelope: %(reason)s.", reason=str(error)),
        code="malformed_envelope",
    )


def _discard_blob(store: BlobStore, stored: StoredBlob) -> None:
    """Remove a refused envelope's blob, unless this upload only found it already there or
    a row references it."""
    if not stored.created:
        return
    referenced = db.session.scalar(
        select(
            exists().where(Bid.envelope_sha256 == stored.sha256)
            | exists().where(TenderDocument.sha256 == stored.sha256)
        )
    )
    if not referenced:
        with contextlib.suppress(FileNotFoundError):
            store.path_for(stored.sha256).unlink()


def _inspect(
    store: BlobStore,
    stored: StoredBlob,
    tender: Tender,
    company: Company,
    expected_lot: str | None = None,
):
    expected_tender, expected_bidder = envelope_tender_id(tender), bidder_id(company)
    # A tender of one lot takes envelopes naming no lot; in a tender divided into lots the
    # header names the lot (checked against what the submission said, when it said it).
    lot: str | envelopes.AnyLot | None = None
    if tender.has_lots:
        lot = expected_lot if expected_lot is not None else envelopes.ANY_LOT
    try:
        with store.open(stored.sha256) as handle:
            # The header and the framing only: the SHA-256 and the size are those
            # `put_stream` computed over exactly the bytes it wrote and fsynced. (Reading the
            # file back to hash it again read the page cache, not the disk: it proved nothing
            # more and cost a second pass over every envelope.)
            header = envelopes.inspect_header(
                handle,
                expected_tender=expected_tender,
                expected_bidder=expected_bidder,
                expected_lot=lot,
            )
            size = os.fstat(handle.fileno()).st_size
    except EnvelopeError as error:
        raise _refusal(error, expected_tender, expected_bidder) from None
    if size != stored.size:
        # The blob changed under us: a storage fault, never the bidder's.
        raise OperationError(
            _l("The envelope could not be stored intact. Submit it again."), code="storage"
        )
    return header


def _lock_registration(
    tender: Tender, company: Company
) -> tuple[int | None, tuple[str, datetime, bool] | None]:
    """Lock the company's registration row for the tender, and read in the same statement
    the tender's schedule as `_fresh_schedule` does (status, deadline, suspension: the
    tender's row is read, not locked); on PostgreSQL also take the new bid's id from its
    sequence (under the lock, so ids still follow the order of acceptance), so that the bid
    and its receipt are written by one INSERT. Returns (the id, None when there is no
    sequence to ask (SQLite): the INSERT assigns it; the schedule, None without a
    registration row)."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    lock = _lock_query(postgresql)
    row = db.session.execute(lock, {_TENDER_ID: tender.id, _COMPANY_ID: company.id}).first()
    if row is None:
        return None, None
    schedule = (row.status, row.submission_deadline, row.suspended)
    return (row.bid_id if postgresql else None), schedule


@cache
def _lock_query(postgresql: bool) -> Select:
    lock = (
        select(TenderRegistration.id, *_schedule_columns())
        .join(Tender, Tender.id == TenderRegistration.tender_id)
        .where(_registration_here())
        .with_for_update(of=TenderRegistration)
    )
    if postgresql:
        sequence = func.nextval(func.pg_get_serial_sequence(Bid.__tablename__, "id"))
        lock = lock.add_columns(sequence.label("bid_id"))
    return lock


@cache
def _previous_bids_query(lot: bool) -> Select:
    """The company's current bids for the tender (for `lot`: for the bound lot)."""
    return (
        select(Bid)
        .where(
            Bid.tender_id == bindparam(_TENDER_ID, type_=Integer),
            Bid.company_id == bindparam(_COMPANY_ID, type_=Integer),
            Bid.status == BidStatus.SUBMITTED,
            # One live envelope per company per lot.
            Bid.lot_id == bindparam("lot_id", type_=Integer) if lot else Bid.lot_id.is_(None),
        )
        .order_by(Bid.id)
    )


def envelope_lot(tender: Tender, company: Company, reference: str | None) -> Lot | None:
    """The lot an envelope is for (its header's `lot`): None in a tender of one lot; in a
    tender divided into lots, a lot of the tender that the company registered for."""
    if not tender.has_lots:
        return None
    if reference is None:
        raise OperationError(
            _l(
                "This tender is divided into lots: seal your bid for one of them (the "
                "envelope must name its lot)."
            ),
            code="lot_required",
        )
    lot = tender.lot_by_reference(reference)
    if lot is None:
        raise OperationError(
            _l("This tender has no lot %(lot)s.", lot=reference), code="unknown_lot"
        )
    refuse_cancelled_lot(lot)
    registration = db.session.scalar(
        select(TenderRegistration).where(_registration_of(tender, company))
    )
    if registration is None or lot not in registration.lots:
        raise OperationError(
            _l(
                "Your company did not register for lot %(lot)s of this tender.",
                lot=reference,
            ),
            code="lot_not_registered",
            status=403,
        )
    return lot


def check_expected_lot(tender: Tender, reference: str | None) -> None:
    """A lot named with a submission must be one of the tender's (before any byte is kept)."""
    if reference is None:
        return
    if not tender.has_lots:
        raise OperationError(
            _l("This tender is not divided into lots: name no lot."), code="no_lots"
        )
    lot = tender.lot_by_reference(reference)
    if lot is None:
        raise OperationError(
            _l("This tender has no lot %(lot)s.", lot=reference[:40]), code="unknown_lot"
        )
    refuse_cancelled_lot(lot)


def refuse_cancelled_lot(lot: Lot) -> None:
    """A lot cancelled by an addendum takes no new envelope (those received before stay
    sealed and are reported, unopened, at the opening)."""
    if lot.is_cancelled:
        raise Conflict(
            _l(
                "Lot %(lot)s was cancelled by an addendum: it takes no more bids. The "
                "envelopes received before are kept unopened.",
                lot=lot.reference,
            ),
            code="lot_cancelled",
        )


def submit_envelope(
    actor: User,
    tender: Tender,
    stream: BinaryIO,
    *,
    ip: str | None = None,
    user_agent: str = "",
    lot: str | None = None,
) -> Bid:
    """Stream an envelope to the blob store, check it, and accept it as the company's bid
    for its lot (superseding its previous one for that lot). ``lot``: the lot the submitter
    says it is for (checked against the envelope's header). Never commits; the caller
    commits once."""
    company, schedule = _bidding_company_and_schedule(actor, tender)
    check_expected_lot(tender, lot)
    _check_schedule(tender, schedule)
    store = blob_store()
    limit = current_app.config["MAX_ENVELOPE_SIZE"]
    # No database connection is held while the bytes arrive (seconds, minutes for a slow
    # client): at a deadline hundreds of uploads are in flight and the pool has 15.
    release_connection()
    try:
        with _storage_errors():
            stored = store.put_stream(stream, max_size=limit)
    except BlobTooLarge:
        raise too_large(limit) from None
    except ClientDisconnected:
        raise OperationError(
            _l("The upload was interrupted before the whole envelope arrived. Submit it again."),
            code="incomplete",
        ) from None
    # put_stream returns once the last byte is fsynced in place: that is the receipt time.
    received_at = utcnow()
    return _accept_stored(
        actor, tender, company, store, stored, received_at, ip, user_agent, expected_lot=lot
    )


def _accept_stored(
    actor: User,
    tender: Tender,
    company: Company,
    store: BlobStore,
    stored: StoredBlob,
    received_at: datetime,
    ip: str | None,
    user_agent: str,
    expected_lot: str | None = None,
) -> Bid:
    try:
        header = _inspect(store, stored, tender, company, expected_lot)
        lot = envelope_lot(tender, company, header.lot)
        # Only this company's own registration row is locked: its submissions queue up,
        # other companies' never wait (SQLite ignores FOR UPDATE and serialises writers
        # anyway). The same statement reads the tender's schedule again (an addendum, a
        # cancellation or a suspension may have landed while the envelope was uploading).
        sequence, schedule = _lock_registration(tender, company)
        if schedule is None:
            deadline = check_open(tender, received_at)
        else:
            deadline = _check_schedule(tender, schedule, received_at)
        # Under the lock: `seal_bids` locks every registration of the tender before it reads
        # the bids, so an envelope is either in the sealing record or refused here (received
        # in time but checked so late that the sealing record may exist already).
        now = utcnow()
        if now >= deadline + sealing_grace():
            raise deadline_passed(tender, now, deadline)
    except OperationError:
        _discard_blob(store, stored)
        raise
    ids = {_TENDER_ID: tender.id, _COMPANY_ID: company.id}
    previous = list(
        db.session.scalars(
            _previous_bids_query(lot is not None),
            ids if lot is None else {**ids, "lot_id": lot.id},
        )
    )
    bid = Bid(
        id=sequence,
        tender_id=tender.id,
        company_id=company.id,
        lot_id=None if lot is None else lot.id,
        submitted_by_id=actor.id,
        status=BidStatus.SUBMITTED,
        envelope_sha256=stored.sha256,
        size=stored.size,
        received_at=received_at,
        receipt="",
        supersedes_id=previous[-1].id if previous else None,
        ip=ip,
        user_agent=(user_agent or "")[:300],
        address_hmac=keyed_hash("address", ip),
        agent_hmac=keyed_hash("agent", user_agent),
    )
    db.session.add(bid)
    if sequence is None:
        db.session.flush()  # no sequence to ask (SQLite): the id comes with the INSERT
    # The bid's id is the receipt's sequence.
    receipt = make_receipt(
        envelope_tender_id(tender),
        bidder_id(company),
        stored.sha256,
        stored.size,
        received_at,
        bid.id,
        lot=None if lot is None else lot.reference,
    )
    bid.receipt = dump_document(sign_receipt(receipt, platform_signing_key())).decode("ascii")
    for old in previous:
        old.status = BidStatus.SUPERSEDED
    db.session.flush()  # with a sequence: one INSERT, receipt included
    # After the commit *and* the connection's release: the follow-up transaction takes a
    # connection of its own, and a request must never hold one while waiting for another.
    event = _received_event(
        bid, actor, tender.centre_id, request.remote_addr if has_request_context() else None
    )
    after_commit_released(db.session(), partial(record_bid_received, bid.id, event))
    log.info(
        "bid %s accepted for tender %s%s (%s bytes)",
        bid.id,
        tender.id,
        "" if lot is None else f" lot {lot.reference}",
        stored.size,
    )
    return bid


# --- the audit event, after the commit --------------------------------------------------------


def _received_data(bid: Bid) -> dict:
    return {
        "tender_id": bid.tender_id,
        "company_id": bid.company_id,
        "sequence": bid.id,
        "sha256": bid.envelope_sha256,
        "size": bid.size,
        "received_at": format_timestamp(bid.received_at),
        "supersedes": bid.supersedes_id,
        **({"lot_id": bid.lot_id} if bid.lot_id is not None else {}),
    }


_REQUEST_ADDRESS = object()  # append_event reads the current request's address


@dataclass(frozen=True)
class _Actor:
    """Who submitted, as the audit event records it (no ORM object crosses sessions)."""

    id: int
    role: str


def _received_event(
    bid: Bid, actor: User, centre_id: int, ip: str | object | None = _REQUEST_ADDRESS
) -> EventSpec:
    return EventSpec(
        RECEIVED,
        actor=_Actor(actor.id, actor.role),
        object_type="bid",
        object_id=bid.id,
        centre_id=centre_id,
        tender_id=bid.tender_id,
        data=_received_data(bid),
        **({} if ip is _REQUEST_ADDRESS else {"ip": ip}),
    )


def _append_received(specs: list[EventSpec]) -> list[int]:
    """Append the `bid.received` events not there yet, under one take of the chain's lock
    (taken before the check: check-and-append is atomic against a reconciliation); returns
    the bid ids appended for."""
    if not specs:
        return []
    chain_lock()
    # Under the lock, in one statement: the chain's head, joined with the events already
    # there for these bids (one row per such event; one row with NULL when there is none;
    # no row in an empty chain).
    head = (
        select(AuditEvent.seq, AuditEvent.hash)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
        .subquery("head")
    )
    existing = aliased(AuditEvent)
    rows = db.session.execute(
        select(head.c.seq, head.c.hash, existing.object_id)
        .select_from(head)
        .outerjoin(
            existing,
            (existing.action == RECEIVED)
            & (existing.object_type == "bid")
            & existing.object_id.in_([str(spec.object_id) for spec in specs]),
        )
    ).all()
    last = (rows[0].seq, rows[0].hash) if rows else (0, GENESIS)  # as `chain_head` has it
    done = {row.object_id for row in rows if row.object_id is not None}
    todo = []
    for spec in specs:
        if str(spec.object_id) not in done:
            done.add(str(spec.object_id))
            todo.append(spec)
    if todo:
        append_events(todo, locked=True, head=last)
    return [spec.object_id for spec in todo]


def _append_received_events(bids: list[tuple[Bid, object]]) -> list[int]:
    """Append `bid.received` for each (bid, client address) that has none yet, in this
    transaction; returns the ids appended for."""
    if not bids:
        return []
    # Read before the lock: every append of every tender waits for it.
    users = {
        user.id: user
        for user in db.session.scalars(
            select(User).where(User.id.in_({bid.submitted_by_id for bid, _ip in bids}))
        )
    }
    tenders = {
        tender.id: tender
        for tender in db.session.scalars(
            select(Tender).where(Tender.id.in_({bid.tender_id for bid, _ip in bids}))
        )
    }
    return _append_received(
        [
            _received_event(bid, users[bid.submitted_by_id], tenders[bid.tender_id].centre_id, ip)
            for bid, ip in bids
        ]
    )


def _append_received_event(bid: Bid) -> bool:
    """Append `bid.received` for `bid` unless it is there already; True if appended."""
    return bool(_append_received_events([(bid, _REQUEST_ADDRESS)]))


@dataclass
class _Waiting:
    bid_id: int
    event: EventSpec | None  # None: read the bid from the database
    ip: str | None
    done: bool = False


class _GroupCommit:
    """The `bid.received` appends of one worker process, committed in groups.

    Every append takes the chain's global lock and commits (a WAL flush) before the bidder
    gets the receipt. One transaction per bid serialised 300 deadline uploads on that lock,
    and under gevent each holder kept it across several event-loop turns of the other
    uploads (each round trip waits for one). Here a request hands its event over and
    waits; one of the waiting requests at a time (the leader) appends every event handed
    over so far in one transaction (lock, check, head, one INSERT, commit), then wakes them
    all. Each request still returns only after its own event is committed (or its failure
    logged: `reconcile_audit` appends it later), as before. The lock and condition are
    gevent's when gevent has patched `threading`."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: list[_Waiting] = []
        self._leading = False

    def record(self, waiting: _Waiting) -> None:
        with self._condition:
            self._pending.append(waiting)
            while not waiting.done:
                if self._leading:
                    self._condition.wait()
                    continue
                self._leading = True
                batch, self._pending = self._pending, []
                self._condition.release()
                try:
                    self._append(batch)
                finally:
                    self._condition.acquire()
                    for item in batch:
                        item.done = True
                    self._leading = False
                    self._condition.notify_all()

    @staticmethod
    def _append(batch: list[_Waiting]) -> None:
        try:
            with own_session():
                unread = [w for w in batch if w.event is None]
                if unread:
                    bids = {
                        bid.id: bid
                        for bid in db.session.scalars(
                            select(Bid).where(Bid.id.in_([w.bid_id for w in unread]))
                        )
                    }
                    _append_received_events(
                        [(bids[w.bid_id], w.ip) for w in unread if w.bid_id in bids]
                    )
                _append_received([w.event for w in batch if w.event is not None])
        except Exception:
            # As for any after-commit side effect: the bids are committed; the events are
            # appended by `flask bids reconcile-audit`.
            log.exception("appending bid.received for bids %s failed", [w.bid_id for w in batch])


_received_events = _GroupCommit()


def record_bid_received(bid_id: int, event: EventSpec | None = None) -> None:
    """After-commit callback: the follow-up transaction that audits an accepted bid (shared
    with the other bids accepted at the same moment in this process). `event`: the event as
    the accepting request prepared it (else it is read from the database)."""
    ip = request.remote_addr if has_request_context() else None
    _received_events.record(_Waiting(bid_id, event, ip))


def reconcile_audit() -> list[int]:
    """Append the `bid.received` events a crash left out; returns the bids' ids. The caller
    commits."""
    missing = db.session.scalars(
        select(Bid)
        .where(
            ~exists().where(
                AuditEvent.action == RECEIVED,
                AuditEvent.object_type == "bid",
                AuditEvent.object_id == cast(Bid.id, String),
            )
        )
        .order_by(Bid.id)
    ).all()
    return [bid.id for bid in missing if _append_received_event(bid)]


def bid_data(bid: Bid) -> dict:
    """A bid as plain JSON data for its owner: status, hash, size, time and signed receipt."""
    return {
        "id": bid.id,
        "sequence": bid.id,
        "tender_id": bid.tender_id,
        "lot": None if bid.lot_id is None else db.session.get(Lot, bid.lot_id).reference,
        "status": bid.status,
        "envelope_sha256": bid.envelope_sha256,
        "size": bid.size,
        "received_at": format_timestamp(bid.received_at),
        "supersedes": bid.supersedes_id,
        "withdrawn_at": format_timestamp(bid.withdrawn_at) if bid.withdrawn_at else None,
        "receipt": json.loads(bid.receipt),
    }


# --- replacement and withdrawal -------------------------------------------------------------


def company_bids(actor: User, tender: Tender) -> list[Bid]:
    """The actor's company's bids for the tender, newest first (every status)."""
    require(actor, Permission.TAKE_PART)
    if actor.company_id is None:
        return []
    return list(
        db.session.scalars(
            select(Bid)
            .where(Bid.tender_id == tender.id, Bid.company_id == actor.company_id)
            .order_by(Bid.id.desc())
        )
    )


def bid_of_company(actor: User, bid_id: int) -> Bid | None:
    """A bid of the actor's own company, or None (others' bids do not exist for them)."""
    require(actor, Permission.TAKE_PART)
    bid = db.session.get(Bid, bid_id)
    if bid is None or actor.company_id is None or bid.company_id != actor.company_id:
        return None
    return bid


def withdraw_bid(actor: User, bid: Bid) -> Bid:
    """Withdraw the company's current bid before the deadline."""
    tender = db.session.get(Tender, bid.tender_id)
    company = bidding_company(actor, tender)
    if bid.company_id != company.id:
        raise OperationError(_l("There is no such bid."), code="not_found", status=404)
    check_open(tender)
    if bid.status != BidStatus.SUBMITTED:
        raise Conflict(_l("Only the current bid can be withdrawn."), code="not_current")
    bid.status = BidStatus.WITHDRAWN
    bid.withdrawn_at = utcnow()
    db.session.flush()
    append_event(
        "bid.withdrawn",
        actor=actor,
        object_type="bid",
        object_id=bid.id,
        centre_id=tender.centre_id,
        tender_id=tender.id,
        data={"tender_id": tender.id, "sequence": bid.id},
    )
    return bid


# --- resumable uploads ----------------------------------------------------------------------


@dataclass(frozen=True)
class UploadProgress:
    offset: int
    size: int
    bid: Bid | None = None


class OffsetMismatch(Conflict):
    """A chunk that does not start where the stored bytes end (409 with the offset)."""

    def __init__(self, offset: int) -> None:
        super().__init__(
            _l("The upload continues at byte %(offset)d.", offset=offset), code="offset_mismatch"
        )
        self.offset = offset

    def detail(self) -> dict[str, int]:
        return {"offset": self.offset}


def _session_dir(store: BlobStore) -> Path:
    return store.root / "tmp"


def session_path(store: BlobStore, upload: UploadSession) -> Path:
    return _session_dir(store) / f"{_SESSION_PREFIX}{uuid.UUID(upload.id)}.part"


def _gone() -> OperationError:
    return OperationError(
        _l("This upload is no longer available. Start the upload again."),
        code="upload_gone",
        status=410,
    )


def start_upload(actor: User, tender: Tender, size: object) -> UploadSession:
    """Open a resumable upload of `size` bytes; its bytes go to a temporary file of the blob
    store, keyed by the session, never to the database."""
    company, schedule = _bidding_company_and_schedule(actor, tender)
    _check_schedule(tender, schedule)
    limit = current_app.config["MAX_ENVELOPE_SIZE"]
    if type(size) is not int or size < 1:
        raise OperationError(_l("Give the envelope's size in bytes."), code="size")
    if size > limit:
        raise too_large(limit)
    upload = UploadSession(
        id=str(uuid.uuid4()),
        tender_id=tender.id,
        company_id=company.id,
        user_id=actor.id,
        declared_size=size,
        created_at=utcnow(),
    )
    store = blob_store()
    _session_dir(store).mkdir(parents=True, exist_ok=True)
    os.close(os.open(session_path(store, upload), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db.session.add(upload)
    db.session.flush()
    return upload


def upload_of_company(actor: User, session_id: str) -> UploadSession | None:
    """The company's own upload session, or None (another company's does not exist)."""
    require(actor, Permission.TAKE_PART)
    try:
        key = str(uuid.UUID(session_id))
    except (ValueError, TypeError):
        return None
    upload = db.session.get(UploadSession, key)
    if upload is None or actor.company_id is None or upload.company_id != actor.company_id:
        return None
    return upload


def upload_progress(actor: User, upload: UploadSession) -> UploadProgress:
    require(actor, Permission.TAKE_PART)
    if upload.completed_bid_id is not None:
        bid = db.session.get(Bid, upload.completed_bid_id)
        return UploadProgress(upload.declared_size, upload.declared_size, bid)
    try:
        offset = session_path(blob_store(), upload).stat().st_size
    except FileNotFoundError:
        raise _gone() from None
    return UploadProgress(offset, upload.declared_size)


def parse_content_range(value: str | None) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        raise OperationError(
            _l("Send each chunk with a Content-Range header: bytes FIRST-LAST/TOTAL."),
            code="content_range",
        )
    first, last, total = (int(group) for group in match.groups())
    if first > last or last >= total:
        raise OperationError(_l("The Content-Range is not a valid byte range."), "content_range")
    return first, last, total


def append_chunk(
    actor: User,
    upload: UploadSession,
    content_range: str | None,
    stream: BinaryIO,
    *,
    ip: str | None = None,
    user_agent: str = "",
) -> UploadProgress:
    """Append one chunk at the current offset; after the last byte, accept the envelope.

    A chunk that arrives incomplete is dropped whole (the offset stays where it was), so the
    client resends it; a chunk at any other offset than the stored length gets
    :class:`OffsetMismatch` with the offset to resume from.
    """
    tender = db.session.get(Tender, upload.tender_id)
    # The schedule is read with the registration (one round trip) and checked below, in
    # the same order of refusals as before.
    company, schedule = _bidding_company_and_schedule(actor, tender)
    if upload.company_id != company.id:
        raise OperationError(_l("There is no such upload."), code="not_found", status=404)
    if upload.completed_bid_id is not None:
        raise OffsetMismatch(upload.declared_size)
    first, last, total = parse_content_range(content_range)
    if total != upload.declared_size:
        raise OperationError(
            _l("This upload was opened for %(size)d bytes.", size=upload.declared_size),
            code="content_range",
        )
    length = last - first + 1
    if length > MAX_CHUNK_SIZE:
        raise OperationError(
            _l("Send chunks of at most %(mib)s MiB.", mib=_mib(MAX_CHUNK_SIZE)),
            code="chunk_too_large",
            status=413,
        )
    _check_schedule(tender, schedule)
    store = blob_store()
    path = session_path(store, upload)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise _gone() from None
    # No database connection is held while the chunk's bytes arrive (as for a whole
    # envelope): at a deadline hundreds of chunks are in flight and the pool has 15. The
    # last chunk's acceptance reads again what must be current.
    release_connection()
    with open(fd, "r+b", buffering=0) as handle:
        # One writer per session: a retried chunk racing its original waits here.
        _lock_session_file(handle.fileno())
        offset = os.fstat(handle.fileno()).st_size
        if first != offset:
            raise OffsetMismatch(offset)
        with _storage_errors():
            _write_chunk(handle, offset, length, stream)
        if offset + length < total:
            return UploadProgress(offset + length, total)
        # The last byte is durable now: that is the receipt time.
        received_at = utcnow()
        bid = _complete_upload(
            actor, tender, company, store, path, total, received_at, ip, user_agent
        )
    upload.completed_bid_id = bid.id
    db.session.flush()
    after_commit(db.session(), partial(_remove_file, path))
    return UploadProgress(total, total, bid)


def _lock_session_file(fd: int) -> None:
    """Take the upload session file's exclusive lock, waiting for a racing writer without
    blocking the process: under the gevent workers a blocking `flock` would stop every
    request of the worker, including the writer holding the lock (it could never finish)."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(_LOCK_POLL_SECONDS)  # cooperative under gevent (patched sleep)


def _write_chunk(handle, offset: int, length: int, stream: BinaryIO) -> None:
    handle.seek(offset)
    written = 0
    complete = False
    try:
        while written < length:
            block = stream.read(min(_COPY_BLOCK, length - written))
            if not block:
                break
            handle.write(block)
            written += len(block)
        complete = written == length and not stream.read(1)
    except (ClientDisconnected, OSError) as error:
        if isinstance(error, OSError) and error.errno in _STORAGE_FULL:
            handle.truncate(offset)  # a full disk: the stored bytes end where they did before
            raise
        complete = False
    if not complete:
        handle.truncate(offset)
        raise OperationError(
            _l(
                "The chunk did not arrive complete (%(got)d of %(want)d bytes). Send it again.",
                got=written,
                want=length,
            ),
            code="incomplete_chunk",
        )
    os.fsync(handle.fileno())


def _complete_upload(
    actor: User,
    tender: Tender,
    company: Company,
    store: BlobStore,
    path: Path,
    size: int,
    received_at: datetime,
    ip: str | None,
    user_agent: str,
) -> Bid:
    try:
        with open(path, "rb") as handle, _storage_errors():
            stored = store.put_stream(handle, max_size=size)
        return _accept_stored(actor, tender, company, store, stored, received_at, ip, user_agent)
    except OperationError:
        # Refused: nothing of it is kept; the session cannot be resumed.
        _remove_file(path)
        raise


def _remove_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- the sealing record ---------------------------------------------------------------------


def sealing_record_of(tender: Tender) -> TenderDocument | None:
    return record_of(tender, SEALING_RECORD_KIND)


def sealing_summary(tender: Tender) -> dict | None:
    """What the portal and OCDS publish of the sealing record: its Merkle root, the number of
    envelopes, the time it was made and its document's SHA-256 (None before sealing)."""
    document = sealing_record_of(tender)
    if document is None:
        return None
    with open_document(document) as stream:
        record = json.loads(stream.read())["record"]
    return {
        "root": record["root"],
        "count": len(record["leaves"]),
        "sealed_at": record["sealed_at"],
        "sha256": document.sha256,
        "document_id": document.id,
    }


def seal_bids(tender: Tender) -> TenderDocument:
    """Sign and publish the tender's sealing record, the Merkle root over its SUBMITTED bids'
    envelope hashes in receipt order, once the deadline and its grace period have passed.
    Reads the bids, never changes them. The caller holds the tender's row lock and has made
    sure it has no sealing record yet (`app.bids.jobs.seal_tender`)."""
    now = utcnow()
    if now < tender.submission_deadline + sealing_grace():
        raise Conflict(
            _l("A tender is sealed only after its bid deadline (and a short grace period)."),
            code="before_deadline",
        )
    # Wait for acceptances still committing (each holds its company's registration row);
    # one that starts checking after this sees the grace over and is refused.
    db.session.execute(
        select(TenderRegistration.id)
        .where(TenderRegistration.tender_id == tender.id)
        .order_by(TenderRegistration.id)
        .with_for_update()
    )
    rows = db.session.execute(
        select(Bid.envelope_sha256, Lot.reference)
        .outerjoin(Lot, Lot.id == Bid.lot_id)
        .where(Bid.tender_id == tender.id, Bid.status == BidStatus.SUBMITTED)
        .order_by(Bid.id)
    ).all()
    hashes = [row.envelope_sha256 for row in rows]
    # A tender divided into lots: one record over every lot's envelopes, each leaf carrying
    # its lot (format v2); a tender of one lot keeps the v1 record of bare envelope hashes.
    lots = [row.reference for row in rows] if tender.has_lots else None
    document = make_sealing_record(
        envelope_tender_id(tender), hashes, now, platform_signing_key(), lots=lots
    )
    record = store_record(
        tender, SEALING_RECORD_KIND, "Sealing record", dump_document(document), now
    )
    append_event(
        "tender.sealed",
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "document_id": record.id,
            "root": document["record"]["root"],
            "size": len(hashes),
            "sha256": record.sha256,
        },
    )
    publish_after_commit(TENDER_CHANNEL, {"tender": tender.id, "event": "sealed"})
    return record
