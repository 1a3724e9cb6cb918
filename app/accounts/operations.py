"""Account operations: sign-up, confirmation, sign-in, second factor, reset, API tokens,
staff accounts. They mutate, flush and audit; the caller commits."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from stdnum.cn import uscc

from app.accounts import security
from app.accounts.models import CENTRE_ROLES, ApiToken, Role, User
from app.audit import append_event
from app.centres.models import TradingCentre
from app.companies.models import Company, CompanyStatus
from app.core.errors import Conflict, OperationError
from app.core.mail import send_after_commit
from app.core.text import clean_name, mixed_script_word, name_skeleton
from app.core.transaction import release_connection
from app.core.types import utcnow
from app.core.urls import public_url
from app.extensions import db
from app.permissions import Permission, require

CONFIRM_SALT = "confirm-email"
RESET_SALT = "reset-password"
MIN_PASSWORD_LENGTH = 10


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def check_password_strength(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise OperationError(
            _l("Use a password of at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            code="weak_password",
        )


def current_locale() -> str:
    try:
        return str(get_locale() or "en")
    except RuntimeError:
        return "en"


def _check_lookalike_name(name: str) -> None:
    """Homoglyphs: a word mixing alphabets ("Bridgеs" with a Cyrillic "е") is refused, and
    so is a name that reads like a registered company's without being it (same skeleton,
    other characters): both are ways to pass for another bidder in lists and records."""
    word = mixed_script_word(name)
    if word is not None:
        raise OperationError(
            _l(
                "The company name mixes alphabets in “%(word)s” (for example a Cyrillic "
                "letter among Latin ones). Type the name in one alphabet.",
                word=word,
            ),
            code="mixed_scripts",
        )
    skeleton = name_skeleton(name)
    for existing in db.session.scalars(select(Company.name)):
        if existing != name and name_skeleton(existing) == skeleton:
            raise Conflict(
                _l(
                    "The company name looks the same as that of a registered company "
                    "(%(name)s) but is written with other characters. Use your company's "
                    "own name.",
                    name=existing,
                ),
                code="lookalike_name",
            )


def register_company(
    *,
    company_name: str,
    registration_number: str,
    legal_representative: str,
    contact_name: str,
    contact_phone: str,
    home_centre_id: int,
    email: str,
    password: str,
) -> User:
    """A company signs up; anyone may do this. Staff of the home centre approve it later."""
    company_name = clean_name(company_name, _l("Company name"))
    _check_lookalike_name(company_name)
    legal_representative = clean_name(legal_representative, _l("Legal representative"))
    contact_name = clean_name(contact_name, _l("Your name"))
    number = uscc.compact(registration_number or "")
    if not uscc.is_valid(number):
        raise OperationError(
            _l("This is not a valid unified social credit code."), code="invalid_registration"
        )
    if db.session.get(TradingCentre, home_centre_id) is None:
        raise OperationError(_l("Choose an existing trading centre."), code="unknown_centre")
    email = normalise_email(email)
    check_password_strength(password)
    if user_by_email(email) is not None:
        raise Conflict(_l("An account with this e-mail address exists."), code="email_taken")
    if db.session.scalar(select(Company.id).where(Company.registration_number == number)):
        raise Conflict(
            _l("A company with this registration number is already registered."),
            code="company_exists",
        )
    company = Company(
        name=company_name.strip(),
        registration_number=number,
        legal_representative=legal_representative.strip(),
        contact_name=contact_name.strip(),
        contact_phone=contact_phone.strip(),
        home_centre_id=home_centre_id,
        status=CompanyStatus.PENDING,
    )
    db.session.add(company)
    db.session.flush()
    user = User(
        email=email,
        full_name=contact_name.strip(),
        password_hash=security.hash_password(password),
        role=Role.BIDDER,
        company_id=company.id,
        locale=current_locale(),
    )
    db.session.add(user)
    db.session.flush()
    append_event(
        "company.registered",
        actor=user,
        object_type="company",
        object_id=company.id,
        centre_id=home_centre_id,
        data={"name": company.name, "registration_number": number, "user_id": user.id},
    )
    send_confirmation(user)
    return user


def send_confirmation(user: User) -> None:
    token = security.make_token(CONFIRM_SALT, {"uid": user.id, "email": user.email})
    send_after_commit(
        user.email,
        _l("Confirm your e-mail address for Fairbid"),
        "confirm_email",
        locale=user.locale,
        user=user,
        link=public_url("accounts.confirm_email", token=token),
    )


def confirm_email(token: str) -> User:
    payload = security.read_token(
        CONFIRM_SALT, token, max_age=current_app.config["EMAIL_TOKEN_MAX_AGE"]
    )
    user = db.session.get(User, payload.get("uid")) if payload else None
    if user is None or user.email != payload.get("email"):
        raise OperationError(
            _l("This confirmation link is invalid or has expired."), code="invalid_token"
        )
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
        append_event("user.email_confirmed", actor=user, object_type="user", object_id=user.id)
    return user


class SignInFailed(OperationError):
    """A wrong password or second-factor code: refused, and the audited attempt is kept."""

    status = 401
    keeps_audit = True


class SignInBusy(OperationError):
    """Too many sign-ins in progress at once: nothing was checked or stored; try again."""

    status = 503


def authenticate(email: str, password: str) -> User:
    """Check e-mail and password (see `_authenticate`), once one of the process's sign-in
    slots is free (`SIGN_IN_CONCURRENCY`): a surge of sign-ins queues here holding no
    database connection. None free within `SIGN_IN_QUEUE_SECONDS`: `SignInBusy` (503),
    with nothing checked, counted as a failure or stored."""
    config = current_app.config
    size = int(config.get("SIGN_IN_CONCURRENCY") or 0)
    if size <= 0:
        return _authenticate(email, password)
    slot = security.sign_in_slot(size, float(config.get("SIGN_IN_QUEUE_SECONDS", 60)))
    if slot is None:
        raise SignInBusy(
            _l("Many people are signing in right now. Please try again in a minute."),
            code="busy",
        )
    try:
        return _authenticate(email, password)
    finally:
        slot.release()


def _authenticate(email: str, password: str) -> User:
    """Check e-mail and password; failures are audited without the password.

    No database connection is held while argon2 runs (~170 ms of CPU at the production
    cost): the user is loaded, the read-only transaction ends (`release_connection`), the
    password is verified (and rehashed if the configured cost changed), then the user is
    read again and what must be current (the hash verified, enabled, confirmed) is checked
    on that fresh row. Under a surge of sign-ins, holding the connection through argon2 is
    how the pool ran out (bench/README.md, "sign-in under the surge")."""
    email = normalise_email(email)
    user = user_by_email(email)
    verified_hash = user.password_hash if user is not None else None
    release_connection()  # a no-op when the caller's transaction has written something
    verified = security.check_password(verified_hash, password)
    new_hash = None
    if verified and security.password_needs_rehash(verified_hash):
        new_hash = security.hash_password(password)
    if user is not None:
        db.session.refresh(user)  # a new transaction: the row as it is now
        # A password changed meanwhile: what was verified is no longer the account's.
        verified = verified and user.password_hash == verified_hash
    if user is None or not verified:
        append_event(
            "auth.sign_in_failed",
            actor=user,
            object_type="user",
            object_id=user.id if user else None,
            data={"email": email, "reason": "bad_credentials"},
        )
        raise SignInFailed(_l("Wrong e-mail address or password."), code="bad_credentials")
    if not user.is_enabled:
        append_event(
            "auth.sign_in_failed",
            object_type="user",
            object_id=user.id,
            data={"email": email, "reason": "disabled"},
        )
        raise SignInFailed(_l("This account is disabled."), code="disabled")
    if user.email_confirmed_at is None:
        raise SignInFailed(
            _l("Confirm your e-mail address first: we sent you a link."), code="unconfirmed"
        )
    if new_hash is not None:
        user.password_hash = new_hash
    return user


def check_second_factor(user: User, code: str) -> None:
    if not user.has_totp:
        # Enrolment happens at the first sign-in on the website, never through a code check.
        raise OperationError(
            _l(
                "Set up your authenticator app first: sign in on the website, which guides "
                "you through it."
            ),
            code="totp_not_enrolled",
            status=403,
        )
    step = security.match_totp(user.totp_secret or "", code, user.totp_last_step)
    if step is None:
        append_event("auth.second_factor_failed", actor=user, object_type="user", object_id=user.id)
        raise SignInFailed(_l("That code is not valid. Try the current one."), code="bad_totp")
    user.totp_last_step = step


def start_totp_enrolment(user: User) -> str:
    """The secret of the user's open enrolment, started now if none is open. It is kept on
    the server, sealed; the session cookie carries none of it."""
    window = timedelta(seconds=current_app.config["TOTP_ENROLMENT_SECONDS"])
    started = user.totp_pending_at
    if user.totp_pending_sealed and started is not None and utcnow() - started < window:
        return security.open_totp_secret(user.totp_pending_sealed)
    secret = security.new_totp_secret()
    user.totp_pending_sealed = security.seal_totp_secret(secret)
    user.totp_pending_at = utcnow()
    return secret


def enrol_second_factor(user: User, code: str) -> None:
    """Finish the open enrolment with a code from the authenticator app."""
    window = timedelta(seconds=current_app.config["TOTP_ENROLMENT_SECONDS"])
    started = user.totp_pending_at
    if not user.totp_pending_sealed or started is None or utcnow() - started >= window:
        raise OperationError(
            _l("This set-up has expired. Scan the new code and try again."),
            code="enrolment_expired",
        )
    secret = security.open_totp_secret(user.totp_pending_sealed)
    step = security.match_totp(secret, code, 0)
    if step is None:
        raise OperationError(
            _l("That code does not match. Check the clock of your device and try again."),
            code="bad_totp",
        )
    user.totp_secret = secret
    user.totp_pending_sealed = None
    user.totp_pending_at = None
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    append_event("user.totp_enrolled", actor=user, object_type="user", object_id=user.id)


def reseal_totp_secrets() -> int:
    """Seal every stored TOTP secret (and open enrolment) again under the current key: the
    middle step of a key rotation (README). Returns how many users were resealed."""
    count = 0
    for user in db.session.scalars(
        select(User).where(
            (User.totp_secret_sealed.is_not(None)) | (User.totp_pending_sealed.is_not(None))
        )
    ):
        changed = False
        for column in ("totp_secret_sealed", "totp_pending_sealed"):
            sealed = getattr(user, column)
            if sealed and not security.totp_sealed_with_current_key(sealed):
                setattr(user, column, security.seal_totp_secret(security.open_totp_secret(sealed)))
                changed = True
        if changed:
            count += 1
            append_event("user.totp_resealed", object_type="user", object_id=user.id)
    db.session.flush()
    return count


def end_sessions(user: User) -> None:
    """Every signed-in copy of the user's session stops working (see `User.session_version`)."""
    user.session_version = (user.session_version or 0) + 1


def record_sign_in(user: User) -> None:
    """Record the sign-in; the caller commits right after. The user's row is written first
    and the event appended last, so the audit chain's global lock (taken by the append,
    held to the commit) is held for the head read, one INSERT and the commit only."""
    user.last_login_at = utcnow()
    db.session.flush()
    append_event("auth.signed_in", actor=user, object_type="user", object_id=user.id)


def record_sign_out(user: User) -> None:
    end_sessions(user)
    append_event("auth.signed_out", actor=user, object_type="user", object_id=user.id)


def request_password_reset(email: str) -> None:
    """Send a reset link if the account exists; the answer is the same either way."""
    user = user_by_email(email)
    if user is None or not user.is_enabled:
        return
    token = security.make_token(
        RESET_SALT, {"uid": user.id, "fp": security.password_fingerprint(user.password_hash)}
    )
    append_event("user.password_reset_requested", object_type="user", object_id=user.id)
    send_after_commit(
        user.email,
        _l("Reset your Fairbid password"),
        "reset_password",
        locale=user.locale,
        user=user,
        link=public_url("accounts.reset_password", token=token),
    )


def reset_password(token: str, new_password: str) -> User:
    payload = security.read_token(
        RESET_SALT, token, max_age=current_app.config["RESET_TOKEN_MAX_AGE"]
    )
    user = db.session.get(User, payload.get("uid")) if payload else None
    if user is None or payload.get("fp") != security.password_fingerprint(user.password_hash):
        raise OperationError(_l("This reset link is invalid or has expired."), code="invalid_token")
    check_password_strength(new_password)
    user.password_hash = security.hash_password(new_password)
    end_sessions(user)
    # Following the link proves control of the mailbox.
    user.email_confirmed_at = user.email_confirmed_at or utcnow()
    append_event("user.password_reset", actor=user, object_type="user", object_id=user.id)
    return user


def create_api_token(user: User, name: str) -> str:
    """Issue a bearer token for `user` (the acting user); the plaintext is returned once."""
    token, digest = security.new_api_token()
    now = utcnow()
    days = current_app.config["API_TOKEN_DAYS"]
    api_token = ApiToken(
        user_id=user.id,
        token_hash=digest,
        name=name[:100],
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(api_token)
    db.session.flush()
    append_event(
        "api_token.created",
        actor=user,
        object_type="api_token",
        object_id=api_token.id,
        data={"name": api_token.name},
    )
    return token


def user_for_api_token(token: str) -> User | None:
    api_token = api_token_record(token)
    if api_token is None or api_token.revoked_at is not None or api_token.expires_at < utcnow():
        return None
    if not api_token.user.is_active:
        return None
    return api_token.user


def api_token_record(token: str) -> ApiToken | None:
    # The user (and a bidder's company, which most bidder requests check: NULLs for
    # everyone else) in the same statement as the token: two lazy loads fewer per request.
    return db.session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user).joinedload(User.company))
        .where(ApiToken.token_hash == security.api_token_hash(token))
    )


def revoke_api_token(user: User, api_token: ApiToken) -> None:
    """A user revokes one of their own tokens."""
    if api_token.user_id != user.id:
        raise OperationError(_l("Unknown token."), code="unknown_token", status=404)
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        append_event(
            "api_token.revoked", actor=user, object_type="api_token", object_id=api_token.id
        )


def _check_role_placement(role: str, centre_id: int | None) -> None:
    if role not in set(Role) or role == Role.BIDDER:
        raise OperationError(_l("Choose a staff, expert, custodian or supervisor role."))
    if role in CENTRE_ROLES and db.session.get(TradingCentre, centre_id or 0) is None:
        raise OperationError(_l("Staff and custodians belong to a trading centre."))
    if role == Role.SUPERVISOR and centre_id and db.session.get(TradingCentre, centre_id) is None:
        raise OperationError(_l("Choose an existing trading centre."), code="unknown_centre")


def _placement(role: str, centre_id: int | None) -> int | None:
    """Staff and custodians work at a centre; a supervisor may be placed at one (it then
    oversees that centre and those below it: app.supervision.monitoring.jurisdiction)."""
    if role in CENTRE_ROLES or role == Role.SUPERVISOR:
        return centre_id or None
    return None


def create_user(
    actor: User,
    *,
    email: str,
    full_name: str,
    role: str,
    centre_id: int | None,
    password: str | None = None,
) -> User:
    """An administrator creates a staff, expert, custodian, supervisor or admin account.

    Without a password the new user receives a link to set one (the reset flow)."""
    require(actor, Permission.MANAGE_USERS)
    full_name = clean_name(full_name, _l("Full name"))
    _check_role_placement(role, centre_id)
    email = normalise_email(email)
    if user_by_email(email) is not None:
        raise Conflict(_l("An account with this e-mail address exists."), code="email_taken")
    if password is not None:
        check_password_strength(password)
    user = User(
        email=email,
        full_name=full_name.strip(),
        role=role,
        centre_id=_placement(role, centre_id),
        password_hash=security.hash_password(password or security.new_api_token()[0]),
        email_confirmed_at=utcnow() if password is not None else None,
    )
    db.session.add(user)
    db.session.flush()
    append_event(
        "user.created",
        actor=actor,
        object_type="user",
        object_id=user.id,
        centre_id=user.centre_id,
        data={"email": email, "role": role},
    )
    if password is None:
        request_password_reset(email)
    return user


def change_role(actor: User, user: User, role: str, centre_id: int | None) -> None:
    require(actor, Permission.MANAGE_USERS)
    if user.role == Role.BIDDER:
        raise OperationError(_l("Bidder accounts belong to their company and keep their role."))
    _check_role_placement(role, centre_id)
    if user.id == actor.id and role != Role.ADMIN:
        raise OperationError(_l("You cannot remove your own administrator role."))
    before = {"role": user.role, "centre_id": user.centre_id}
    user.role = role
    user.centre_id = _placement(role, centre_id)
    end_sessions(user)
    append_event(
        "user.role_changed",
        actor=actor,
        object_type="user",
        object_id=user.id,
        centre_id=user.centre_id,
        data={"before": before, "after": {"role": role, "centre_id": user.centre_id}},
    )


def set_enabled(actor: User, user: User, enabled: bool) -> None:
    require(actor, Permission.MANAGE_USERS)
    if user.id == actor.id:
        raise OperationError(_l("You cannot disable your own account."))
    user.is_enabled = enabled
    if not enabled:
        end_sessions(user)
    append_event(
        "user.enabled" if enabled else "user.disabled",
        actor=actor,
        object_type="user",
        object_id=user.id,
    )
