"""Key custody: a custodian's own key pair, the key ceremony at publication, and the paper
backup of a custodian's share.

Every cryptographic step is `bidding.keys`; this module stores what it returns and audits.
The tender private key exists only inside `bidding.keys.run_key_ceremony`; a custodian's
private key and share exist in clear only inside one request that holds their passphrase.
Neither passphrases nor share words ever reach the database, the audit log or a log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.accounts import security
from app.accounts.models import Role, User
from app.audit import append_event
from app.core.errors import Conflict, OperationError
from app.core.types import utcnow
from app.custody.models import CustodianKey, KeyShare, TenderKey
from app.extensions import db
from app.permissions import PermissionDenied
from app.tenders.models import Tender, TenderCustodian, TenderStatus
from bidding import keys
from bidding.canonical import canonical_json, parse_json
from bidding.errors import KeyCeremonyError, WrongPassphrase

log = logging.getLogger(__name__)

# Who may hold a key share (the tenders domain names them; see CUSTODIAN_ROLES there).
KEY_HOLDER_ROLES = frozenset({Role.CUSTODIAN, Role.STAFF, Role.SUPERVISOR})
MIN_PASSPHRASE_LENGTH = 12
MAX_PASSPHRASE_LENGTH = 256
# Until the opening a share is what keeps the bids sealed: its custodian key may not be
# replaced, and a paper backup still matters. Afterwards the key has done its work.
UNOPENED_STATUSES = frozenset({TenderStatus.PUBLISHED, TenderStatus.CLOSED})


def envelope_tender_id(tender: Tender) -> str:
    """The tender id inside envelopes, shares and receipts (`bidding` identifiers)."""
    return f"T{tender.id}"


def require_key_holder(actor: User) -> None:
    """The custody domain's one access check: custodians, staff and supervisors, active."""
    if actor is None or not actor.is_authenticated or not actor.is_active:
        raise PermissionDenied()
    if actor.role not in KEY_HOLDER_ROLES:
        raise PermissionDenied()


def _kdf() -> keys.KdfParams:
    return keys.KdfParams(**current_app.config["CUSTODIAN_KEY_KDF"])


def _json(value) -> str:
    return canonical_json(value).decode("utf-8")


# --- reading ---------------------------------------------------------------------------------


def active_key_of(user: User, lock: bool = False) -> CustodianKey | None:
    query = (
        select(CustodianKey)
        .where(CustodianKey.user_id == user.id, CustodianKey.retired_at.is_(None))
        .order_by(CustodianKey.id.desc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update()
    return db.session.scalar(query)


def tender_key_of(tender: Tender) -> TenderKey | None:
    return db.session.get(TenderKey, tender.id)


@dataclass
class ShareRow:
    share: KeyShare
    tender: Tender
    tender_key: TenderKey
    count: int

    @property
    def unopened(self) -> bool:
        return self.tender.status in UNOPENED_STATUSES


def shares_of(user: User) -> list[ShareRow]:
    """The user's shares, the tenders still to open first, then by opening time."""
    require_key_holder(user)
    rows = db.session.execute(
        select(KeyShare, Tender, TenderKey)
        .join(TenderKey, TenderKey.tender_id == KeyShare.tender_id)
        .join(Tender, Tender.id == KeyShare.tender_id)
        .where(KeyShare.custodian_id == user.id)
        .order_by(Tender.opening_at.desc(), Tender.id.desc())
    ).all()
    result = [
        ShareRow(share, tender, tender_key, len(tender_key.shares))
        for share, tender, tender_key in rows
    ]
    return sorted(result, key=lambda row: not row.unopened)


def tenders_awaiting_key(user: User) -> list[Tender]:
    """Draft tenders that name the user as custodian: they cannot be published until the
    user has a key."""
    require_key_holder(user)
    return list(
        db.session.scalars(
            select(Tender)
            .join(TenderCustodian, TenderCustodian.tender_id == Tender.id)
            .where(TenderCustodian.user_id == user.id, Tender.status == TenderStatus.DRAFT)
            .order_by(Tender.submission_deadline, Tender.id)
        )
    )


def tenders_holding(key: CustodianKey) -> list[Tender]:
    """Unopened tenders with a share encrypted to `key`: while there are any, the key stays."""
    return list(
        db.session.scalars(
            select(Tender)
            .join(KeyShare, KeyShare.tender_id == Tender.id)
            .where(KeyShare.custodian_key_id == key.id, Tender.status.in_(UNOPENED_STATUSES))
            .order_by(Tender.opening_at, Tender.id)
        )
    )


# --- the custodian's own key -----------------------------------------------------------------


def check_passphrase(user: User, passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise OperationError(
            _l("Use a passphrase of at least %(n)d characters.", n=MIN_PASSPHRASE_LENGTH),
            code="passphrase_too_short",
        )
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        raise OperationError(
            _l("Use a passphrase of at most %(n)d characters.", n=MAX_PASSPHRASE_LENGTH),
            code="passphrase_too_long",
        )
    if not passphrase.strip():
        raise OperationError(_l("The passphrase cannot be only spaces."), code="passphrase")
    # Someone who learns the sign-in password must not also hold the key.
    if security.check_password(user.password_hash, passphrase):
        raise OperationError(
            _l("Do not use your sign-in password as the key passphrase."),
            code="passphrase_is_password",
        )


def create_custodian_key(actor: User, passphrase: str) -> CustodianKey:
    """Generate the actor's key pair; store the public key and the passphrase-locked private
    key. An existing key is retired, unless an unopened tender holds a share sealed to it:
    that share could then only be unlocked with the old key, so re-keying waits."""
    require_key_holder(actor)
    check_passphrase(actor, passphrase)
    # One key operation per person at a time (PostgreSQL; SQLite serialises writers).
    db.session.execute(select(User.id).where(User.id == actor.id).with_for_update())
    previous = active_key_of(actor, lock=True)
    if previous is not None:
        holding = tenders_holding(previous)
        if holding:
            raise Conflict(
                _l(
                    "Your key cannot be replaced yet: it holds shares of tenders not opened "
                    "yet (%(tenders)s). Create a new key after their opening.",
                    tenders=", ".join(t.reference for t in holding),
                ),
                code="key_in_use",
            )
    public_key, blob = keys.create_custodian_key(passphrase, _kdf())
    now = utcnow()
    if previous is not None:
        previous.retired_at = now
        append_event(
            "custodian_key.retired",
            actor=actor,
            object_type="custodian_key",
            object_id=previous.id,
            centre_id=actor.centre_id,
            data={"fingerprint": previous.fingerprint},
        )
    key = CustodianKey(
        user_id=actor.id,
        public_key=public_key.public_bytes_raw().hex(),
        locked_private_key=_json(blob),
        fingerprint=keys.key_fingerprint(public_key),
        created_at=now,
    )
    db.session.add(key)
    db.session.flush()
    append_event(
        "custodian_key.created",
        actor=actor,
        object_type="custodian_key",
        object_id=key.id,
        centre_id=actor.centre_id,
        data={
            "fingerprint": key.fingerprint,
            "replaces": previous.fingerprint if previous else None,
            "kdf": blob["kdf"]["name"],
        },
    )
    return key


# --- the key ceremony at publication ---------------------------------------------------------


def run_key_ceremony(tender: Tender, actor: User) -> TenderKey:
    """At publication: the tender's key pair, its private key split k-of-n among the named
    custodians, each share sealed to that custodian's own key. Refuses (and so aborts the
    publication) when a custodian has no key, naming who."""
    custodian_ids = sorted({c.user_id for c in tender.custodians})
    people = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(custodian_ids)))}
    # Locked so a custodian cannot retire the key while its share is being sealed to it.
    active = {
        k.user_id: k
        for k in db.session.scalars(
            select(CustodianKey)
            .where(CustodianKey.user_id.in_(custodian_ids), CustodianKey.retired_at.is_(None))
            .order_by(CustodianKey.id)
            .with_for_update()
        )
    }
    missing = [people[i].full_name for i in custodian_ids if i not in active]
    if missing:
        raise Conflict(
            _l(
                "Publication needs every key custodian's own key. Not set up yet: %(names)s. "
                "They set it up under Key custody.",
                names=", ".join(missing),
            ),
            code="custodian_keys_missing",
        )
    if len(custodian_ids) > keys.MAX_CUSTODIANS:
        raise OperationError(
            _l("A tender can have at most %(n)d key custodians.", n=keys.MAX_CUSTODIANS),
            code="custodians",
        )
    if tender_key_of(tender) is not None:
        raise Conflict(_l("This tender already has its key."), code="tender_key_exists")
    threshold = tender.custodian_threshold
    envelope_id = envelope_tender_id(tender)
    custodian_keys = [active[i] for i in custodian_ids]
    public_keys = [
        X25519PublicKey.from_public_bytes(bytes.fromhex(k.public_key)) for k in custodian_keys
    ]
    try:
        ceremony = keys.run_key_ceremony(envelope_id, threshold, public_keys)
    except ValueError as error:
        # e.g. two custodians with the same public key: never expected, refuse loudly.
        raise OperationError(
            _l("The key ceremony failed: %(reason)s", reason=str(error)), code="key_ceremony"
        ) from None
    public_raw = ceremony.public_key.public_bytes_raw()
    tender_key = TenderKey(
        tender_id=tender.id,
        public_key=public_raw.hex(),
        public_key_pem=ceremony.public_key_pem.decode("ascii"),
        fingerprint=keys.key_fingerprint(public_raw),
        threshold=threshold,
    )
    db.session.add(tender_key)
    db.session.flush()
    for custodian_key, share in zip(custodian_keys, ceremony.shares, strict=True):
        db.session.add(
            KeyShare(
                tender_id=tender.id,
                custodian_id=custodian_key.user_id,
                custodian_key_id=custodian_key.id,
                encrypted_share=_json(share.to_json()),
            )
        )
    db.session.flush()
    append_event(
        "tender.key_ceremony",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={
            "envelope_tender_id": envelope_id,
            "fingerprint": tender_key.fingerprint,
            "k": threshold,
            "n": len(custodian_keys),
            "custodians": [
                {"user": k.user_id, "key_fingerprint": k.fingerprint} for k in custodian_keys
            ],
        },
    )
    return tender_key


def key_ceremony_on_publication(tender: Tender, *, actor: User) -> None:
    """Receiver of `app.tenders.signals.tender_publishing` (connected in the app factory)."""
    run_key_ceremony(tender, actor)


# --- unlocking a share ------------------------------------------------------------------------


class WrongKeyPassphrase(OperationError):
    """A wrong custodian key passphrase: refused, and the audited failed attempt is kept."""

    keeps_audit = True


def unseal_share(
    actor: User, share: KeyShare, tender: Tender, passphrase: str, *, purpose: str | None = None
) -> tuple[keys.EncryptedShare, str]:
    """Unlock the custodian key the share was sealed to (even if retired since) with the
    actor's passphrase and decrypt the share: returns it and its SLIP-39 mnemonic. A wrong
    passphrase appends `key_share.unlock_failed` (with `purpose` when given) and raises
    `WrongKeyPassphrase`. Callers check first that `share` is the actor's."""
    custodian_key = db.session.get(CustodianKey, share.custodian_key_id)
    try:
        private_key = keys.unlock_custodian_key(
            custodian_key.locked_private_key.encode("utf-8"), passphrase
        )
    except (WrongPassphrase, ValueError):
        data = {"custodian_key": custodian_key.fingerprint}
        if purpose is not None:
            data["purpose"] = purpose
        append_event(
            "key_share.unlock_failed",
            actor=actor,
            object_type="tender",
            object_id=tender.id,
            centre_id=tender.centre_id,
            data=data,
        )
        raise WrongKeyPassphrase(
            _l("Wrong passphrase: your share stays locked."), code="wrong_passphrase"
        ) from None
    except KeyCeremonyError:
        log.error("custodian key %s does not parse", custodian_key.id)
        raise OperationError(
            _l("Your stored key is damaged; tell the trading centre."),
            code="key_damaged",
            status=500,
        ) from None
    try:
        sealed = keys.EncryptedShare.from_json(parse_json(share.encrypted_share.encode("utf-8")))
        mnemonic = keys.decrypt_share(sealed, private_key)
    except KeyCeremonyError:
        log.error("key share %s of tender %s does not decrypt", share.id, tender.id)
        raise OperationError(
            _l("Your share of this tender cannot be decrypted; tell the trading centre."),
            code="share_damaged",
            status=500,
        ) from None
    finally:
        del private_key
    return sealed, mnemonic


# --- paper backup ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareBackup:
    """A custodian's share in clear, for the paper backup: handed to the response and
    dropped (Python cannot wipe `str`; see bidding.keys)."""

    tender: Tender
    envelope_tender_id: str
    fingerprint: str
    index: int
    threshold: int
    count: int
    words: tuple[str, ...]
    downloaded_at: datetime


def share_of(user: User, tender_id: int) -> KeyShare | None:
    return db.session.scalar(
        select(KeyShare).where(KeyShare.tender_id == tender_id, KeyShare.custodian_id == user.id)
    )


def unlock_share_backup(actor: User, share: KeyShare, passphrase: str) -> ShareBackup:
    """Unlock the actor's share with their passphrase and return its SLIP-39 words; records
    the download. A wrong passphrase is audited and refused (`WrongKeyPassphrase`)."""
    require_key_holder(actor)
    if share.custodian_id != actor.id:
        raise PermissionDenied()
    tender = db.session.get(Tender, share.tender_id)
    if tender.status not in UNOPENED_STATUSES:
        raise Conflict(
            _l("Paper backups are for tenders whose bids are still sealed."),
            code="tender_not_sealed",
        )
    sealed, mnemonic = unseal_share(actor, share, tender, passphrase)
    tender_key = tender_key_of(tender)
    now = utcnow()
    share.backup_downloaded_at = now
    append_event(
        "key_share.backup_downloaded",
        actor=actor,
        object_type="tender",
        object_id=tender.id,
        centre_id=tender.centre_id,
        data={"share_index": sealed.index, "fingerprint": tender_key.fingerprint},
    )
    return ShareBackup(
        tender=tender,
        envelope_tender_id=sealed.tender,
        fingerprint=tender_key.fingerprint,
        index=sealed.index,
        threshold=sealed.threshold,
        count=sealed.count,
        words=tuple(mnemonic.split()),
        downloaded_at=now,
    )
