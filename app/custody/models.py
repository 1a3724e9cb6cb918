"""Key custody: custodians' own key pairs (private half stored only passphrase-encrypted),
each tender's public key, and the k-of-n shares of its private key, each encrypted to one
custodian. The whole tender private key is stored nowhere."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class CustodianKey(db.Model):
    __tablename__ = "custodian_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))  # raw X25519, hex
    # JSON from bidding.keys (KDF parameters, salt, nonce, ciphertext); never the clear key.
    locked_private_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TenderKey(db.Model):
    __tablename__ = "tender_key"

    tender_id: Mapped[int] = mapped_column(ForeignKey("tender.id"), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # raw X25519, hex
    public_key_pem: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    shares: Mapped[list[KeyShare]] = relationship(order_by="KeyShare.id")


class KeyShare(db.Model):
    __tablename__ = "key_share"
    __table_args__ = (UniqueConstraint("tender_id", "custodian_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tender_id: Mapped[int] = mapped_column(ForeignKey("tender_key.tender_id"), index=True)
    custodian_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    custodian_key_id: Mapped[int] = mapped_column(ForeignKey("custodian_key.id"))
    encrypted_share: Mapped[str] = mapped_column(Text)  # JSON: HPKE to the custodian's key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    backup_downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
