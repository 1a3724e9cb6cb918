from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts import security
from app.centres.models import TradingCentre
from app.companies.models import Company
from app.core.types import UTCDateTime, utcnow
from app.extensions import db


class Role(StrEnum):
    BIDDER = "bidder"
    EXPERT = "expert"
    STAFF = "staff"
    CUSTODIAN = "custodian"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


# Roles that must use a TOTP second factor on every sign-in.
PRIVILEGED_ROLES = frozenset({Role.STAFF, Role.CUSTODIAN, Role.EXPERT, Role.SUPERVISOR, Role.ADMIN})
# Roles that belong to one trading centre.
CENTRE_ROLES = frozenset({Role.STAFF, Role.CUSTODIAN})


class User(UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), index=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("trading_centre.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id"), index=True)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The TOTP secret, sealed (AES-256-GCM; app.accounts.security): read and set it through
    # `totp_secret`. A started enrolment keeps its secret here too, never in the cookie.
    totp_secret_sealed: Mapped[str | None] = mapped_column(String(255))
    totp_pending_sealed: Mapped[str | None] = mapped_column(String(255))
    totp_pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Last accepted TOTP time step: a code is never accepted twice.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    # Sessions carry the version they were signed in with: signing out, a password reset, a
    # role change or disabling the account bumps it, and every copy of an older cookie ends.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    centre: Mapped[TradingCentre | None] = relationship()
    company: Mapped[Company | None] = relationship(foreign_keys=[company_id])

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_enabled

    @property
    def needs_totp(self) -> bool:
        return self.role in PRIVILEGED_ROLES

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None and bool(self.totp_secret_sealed)

    @property
    def totp_secret(self) -> str | None:
        sealed = self.totp_secret_sealed
        return security.open_totp_secret(sealed) if sealed else None

    @totp_secret.setter
    def totp_secret(self, secret: str | None) -> None:
        self.totp_secret_sealed = security.seal_totp_secret(secret) if secret else None

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


class ApiToken(db.Model):
    """A bearer token for API clients; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
