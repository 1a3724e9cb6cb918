"""The site's own address, its secret key, sessions that end, and TOTP secrets at rest
(issue 12: items 3, 6, 10 and 12)."""

from __future__ import annotations

import re

import pytest

from app.core.urls import public_url
from tests.factories import PASSWORD


def link_in(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


# --- item 3: links are built on FAIRBID_PUBLIC_URL; unknown hosts are refused -------------


@pytest.fixture
def public_address(app):
    before = app.config["PUBLIC_URL"]
    app.config["PUBLIC_URL"] = "https://bids.example.gov"
    yield "https://bids.example.gov"
    app.config["PUBLIC_URL"] = before


def test_reset_mail_links_to_the_public_url_whatever_the_host(
    client, make_user, outbox, public_address
):
    user = make_user()
    # 127.0.0.1 is a host the testing configuration serves, but not the public address.
    response = client.post(
        "/accounts/reset", data={"email": user.email}, headers={"Host": "127.0.0.1:8080"}
    )
    assert response.status_code == 302
    link = link_in(outbox[0])
    assert link.startswith(f"{public_address}/accounts/reset/")
    assert "127.0.0.1" not in outbox[0].body


@pytest.mark.parametrize("path", ["/accounts/reset", "/", "/api/v1/ocds/centres/HZ"])
def test_an_unknown_host_is_refused(client, make_user, outbox, path):
    user = make_user()
    response = client.post(path, data={"email": user.email}, headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert len(outbox) == 0
    assert client.get(path, headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"Host": "localhost"}).status_code == 200


def test_links_outside_a_request_use_the_public_url(app, public_address):
    with app.app_context():
        assert public_url("accounts.login") == f"{public_address}/accounts/login"


def test_extra_trusted_hosts_and_the_public_host_are_served(tmp_path):
    from app import create_app
    from config import TestingConfig

    app = create_app(
        TestingConfig,
        INSTANCE_DIR=tmp_path,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.db'}",
        PUBLIC_URL="https://bids.example.gov/fairbid",
        EXTRA_TRUSTED_HOSTS=(".internal.example",),
    )
    assert "bids.example.gov" in app.config["TRUSTED_HOSTS"]
    assert "evil.example" not in app.config["TRUSTED_HOSTS"]
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "node1.internal.example"}).status_code != 400
    assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    with app.app_context():
        assert public_url("accounts.login") == "https://bids.example.gov/fairbid/accounts/login"
    with app.test_request_context("/", base_url="http://node1.internal.example/"):
        assert public_url("accounts.login") == "https://bids.example.gov/fairbid/accounts/login"


def test_an_unusable_public_url_refuses_to_start(tmp_path):
    from app import create_app
    from config import TestingConfig

    for url in ("", "bids.example.gov", "ftp://bids.example.gov", "https://x.gov/?a=1"):
        with pytest.raises(RuntimeError, match="FAIRBID_PUBLIC_URL"):
            create_app(TestingConfig, INSTANCE_DIR=tmp_path, PUBLIC_URL=url)


# --- item 6: no usable secret key ships; a generated one is private and survives restarts ---

OLD_DEVELOPMENT_KEY = "dev-only-secret-key-never-use-in-production"
OLD_TESTING_KEY = "testing-secret-key"


def _bare_app(config, instance, **overrides):
    from app import create_app

    return create_app(
        config,
        INSTANCE_DIR=instance,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{instance / 'fairbid.db'}",
        REDIS_URL="",
        **overrides,
    )


def test_a_generated_secret_key_is_private_and_reused(tmp_path):
    from config import DevelopmentConfig, TestingConfig

    first = _bare_app(DevelopmentConfig, tmp_path / "a")
    key_file = tmp_path / "a" / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(first.config["SECRET_KEY"]) >= 32
    again = _bare_app(DevelopmentConfig, tmp_path / "a")
    assert again.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    other = _bare_app(TestingConfig, tmp_path / "b")
    assert other.config["SECRET_KEY"] != first.config["SECRET_KEY"]
    # A key file others can read is refused rather than used.
    key_file.chmod(0o644)
    with pytest.raises(RuntimeError, match="readable by other users"):
        _bare_app(DevelopmentConfig, tmp_path / "a")


@pytest.mark.parametrize("published", [OLD_DEVELOPMENT_KEY, OLD_TESTING_KEY])
def test_a_published_secret_key_is_refused_in_every_mode(tmp_path, monkeypatch, published):
    import config

    for mode in (config.DevelopmentConfig, config.TestingConfig):
        with pytest.raises(RuntimeError, match="published in the Fairbid repository"):
            _bare_app(mode, tmp_path, SECRET_KEY=published)
    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", published + "x" * 32)
    assert not config.is_published_secret(config.ProductionConfig.SECRET_KEY)
    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", published)
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        config.ProductionConfig.check()


def test_keys_derived_from_the_secret_key_survive_a_restart(tmp_path):
    from types import SimpleNamespace

    from app.accounts import security
    from app.opening.operations import _wrapping_key
    from app.records.signing import _seal_key, _unseal_key
    from config import DevelopmentConfig

    ceremony = SimpleNamespace(wrap_salt="ab" * 16, tender_id=7)
    before = _bare_app(DevelopmentConfig, tmp_path)
    with before.app_context():
        sealed_member_key = _seal_key("0a1b", b"member signing key")
        sealed_totp = security.seal_totp_secret("JBSWY3DPEHPK3PXP")
        wrapping = bytes(_wrapping_key(ceremony))
    after = _bare_app(DevelopmentConfig, tmp_path)  # a restart: same instance folder
    with after.app_context():
        row = SimpleNamespace(sealed_key=sealed_member_key, serial="0a1b")
        assert _unseal_key(row) == b"member signing key"
        assert security.open_totp_secret(sealed_totp) == "JBSWY3DPEHPK3PXP"
        assert bytes(_wrapping_key(ceremony)) == wrapping


def _forged_session_cookie(app, user, key: str) -> str:
    """What the reviewer sent: a session naming an administrator, signed with `key`."""
    from app.web import session_identifier

    with app.test_request_context(
        "/", headers={"User-Agent": "probe"}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ):
        identifier = session_identifier()
    payload = {
        "_user_id": str(user.id),
        "_fresh": True,
        "_id": identifier,
        "second_factor_ok": True,
        "session_version": user.session_version,
    }
    real_key = app.secret_key
    app.secret_key = key
    try:
        return app.session_interface.get_signing_serializer(app).dumps(payload)
    finally:
        app.secret_key = real_key


def test_a_cookie_signed_with_the_published_key_opens_nothing(app, client, make_user):
    from app.accounts.models import Role
    from app.extensions import db

    admin = make_user(Role.ADMIN)
    db.session.commit()
    headers = {"User-Agent": "probe"}
    client.set_cookie("fairbid_session", _forged_session_cookie(app, admin, OLD_DEVELOPMENT_KEY))
    response = client.get("/admin/users", headers=headers)
    assert response.status_code == 302 and "/accounts/login" in response.headers["Location"]
    # The same cookie signed with the app's real key does open it: the probe is real.
    client.set_cookie("fairbid_session", _forged_session_cookie(app, admin, app.secret_key))
    assert client.get("/admin/users", headers=headers).status_code == 200


# --- item 10: signing out (and a password reset, a role change, disabling) ends every copy ---


def _copy_of_session(client, app):
    """A second browser holding a copy of `client`'s session cookie."""
    stolen = app.test_client()
    stolen.set_cookie("fairbid_session", client.get_cookie("fairbid_session").value)
    return stolen


def _signed_in(client) -> bool:
    return client.get("/accounts/profile").status_code == 200


def test_a_copied_cookie_stops_working_after_sign_out(app, client, auth, make_user):
    from app.accounts.models import Role

    staff = make_user(Role.STAFF)
    auth.login(staff)
    copy = _copy_of_session(client, app)
    assert _signed_in(copy)
    auth.logout()
    assert not _signed_in(client)
    assert not _signed_in(copy)
    response = copy.get("/centre/templates/")
    assert response.status_code == 302 and "/accounts/login" in response.headers["Location"]


def test_a_password_reset_ends_other_sessions(app, client, auth, make_user, outbox):
    user = make_user()
    auth.login(user)
    assert _signed_in(client)
    other = app.test_client()
    other.post("/accounts/reset", data={"email": user.email})
    new = "another long password"
    response = other.post(link_in(outbox[0]), data={"password": new, "confirm": new})
    assert response.status_code == 302
    assert not _signed_in(client)
    auth.login(user, password=new)
    assert _signed_in(client)


def test_a_role_change_or_disabling_ends_the_users_sessions(app, client, auth, make_user):
    from app.accounts import operations
    from app.accounts.models import Role
    from app.core.boundary import commit

    admin = make_user(Role.ADMIN)
    expert = make_user(Role.EXPERT)
    auth.login(expert)
    assert _signed_in(client)
    operations.change_role(admin, expert, Role.SUPERVISOR, None)
    commit()
    assert not _signed_in(client)
    bidder = make_user()
    auth.login(bidder)
    assert _signed_in(client)
    operations.set_enabled(admin, bidder, False)
    commit()
    assert not _signed_in(client)


def test_x_forwarded_for_is_ignored_without_a_configured_proxy(app, client):
    from sqlalchemy import select

    from app.audit import AuditEvent
    from app.extensions import db

    assert app.config["PROXY_COUNT"] == 0
    limit = int(app.config["RATELIMIT_LOGIN"].split()[0])
    statuses = []
    for n in range(limit + 1):
        response = client.post(
            "/accounts/login",
            data={"email": f"nobody{n}@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        statuses.append(response.status_code)
    # One client address, however many it claims: the per-address limit applies.
    assert statuses[:limit] == [401] * limit and statuses[-1] == 429
    ips = db.session.scalars(
        select(AuditEvent.ip).where(AuditEvent.action == "auth.sign_in_failed")
    ).all()
    assert ips and set(ips) == {"127.0.0.1"}
    # Session protection ignores the header too: claiming the victim's address in
    # X-Forwarded-For does not make another client look like the victim's browser.
    from app.web import session_identifier

    def identifier(**headers) -> str:
        with app.test_request_context(
            "/", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.1"}
        ):
            return session_identifier()

    assert identifier(**{"X-Forwarded-For": "198.51.100.7"}) == identifier()
    assert identifier(**{"User-Agent": "other"}) != identifier()


def test_a_configured_proxy_count_trusts_that_many_hops(tmp_path):
    from werkzeug.middleware.proxy_fix import ProxyFix

    from config import TestingConfig

    app = _bare_app(TestingConfig, tmp_path, PROXY_COUNT=1)
    assert isinstance(app.wsgi_app, ProxyFix) and app.wsgi_app.x_for == 1
    seen = {}

    @app.get("/probe-address")
    def probe():
        from flask import request

        seen["ip"] = request.remote_addr
        return "ok"

    app.test_client().get("/probe-address", headers={"X-Forwarded-For": "198.51.100.7"})
    assert seen["ip"] == "198.51.100.7"
    assert not isinstance(_bare_app(TestingConfig, tmp_path / "b").wsgi_app, ProxyFix)


# --- item 12: TOTP secrets sealed at rest; the pending enrolment stays on the server --------


def test_totp_secrets_are_sealed_in_the_database(app, make_user):
    import sqlalchemy as sa

    from app.accounts.models import Role
    from app.extensions import db

    staff = make_user(Role.STAFF)
    secret = staff.totp_secret
    db.session.commit()
    stored = db.session.execute(
        sa.text("SELECT totp_secret_sealed FROM user_account WHERE id = :id"), {"id": staff.id}
    ).scalar_one()
    assert stored.startswith("v1:") and secret not in stored
    columns = {c["name"] for c in sa.inspect(db.session.connection()).get_columns("user_account")}
    assert "totp_secret" not in columns


def test_the_enrolment_secret_never_rides_in_the_cookie(app, client, make_user):
    import pyotp

    from app.accounts.models import Role
    from app.extensions import db

    staff = make_user(Role.STAFF, totp=False)
    client.post("/accounts/login", data={"email": staff.email, "password": PASSWORD})
    page = client.get("/accounts/two-factor")
    secret = re.search(rb'id="totp-secret">([A-Z2-7]+)<', page.data).group(1).decode()
    cookie = client.get_cookie("fairbid_session").value
    session = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert secret not in repr(session)
    db.session.refresh(staff)
    assert staff.totp_pending_sealed and secret not in staff.totp_pending_sealed
    # The same enrolment is shown again until it expires (the app is not re-scanned).
    again = client.get("/accounts/two-factor")
    assert secret.encode() in again.data
    response = client.post("/accounts/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    db.session.refresh(staff)
    assert staff.has_totp and staff.totp_secret == secret
    assert staff.totp_pending_sealed is None


def test_an_expired_enrolment_is_refused_and_replaced(app, client, make_user):
    from datetime import timedelta

    import pyotp

    from app.accounts.models import Role
    from app.extensions import db

    staff = make_user(Role.STAFF, totp=False)
    client.post("/accounts/login", data={"email": staff.email, "password": PASSWORD})
    page = client.get("/accounts/two-factor")
    secret = re.search(rb'id="totp-secret">([A-Z2-7]+)<', page.data).group(1).decode()
    db.session.refresh(staff)
    staff.totp_pending_at -= timedelta(seconds=app.config["TOTP_ENROLMENT_SECONDS"] + 1)
    db.session.commit()
    response = client.post("/accounts/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    assert b"This set-up has expired" in response.data
    assert secret.encode() not in response.data  # a new secret to scan
    db.session.refresh(staff)
    assert not staff.has_totp


def test_totp_key_rotation(app, runner, make_user):
    from app.accounts import security
    from app.accounts.models import Role
    from app.extensions import db

    staff = make_user(Role.STAFF)
    secret = staff.totp_secret
    db.session.commit()
    old_sealed = staff.totp_secret_sealed
    app.config["FAIRBID_TOTP_KEY"] = "a new TOTP key of at least thirty-two characters"
    try:
        # A new key alone does not open the old secrets: an error, never "not enrolled".
        with pytest.raises(security.TotpKeyError):
            security.open_totp_secret(old_sealed)
        app.config["FAIRBID_TOTP_PREVIOUS_KEYS"] = (app.config["SECRET_KEY"],)
        assert security.open_totp_secret(old_sealed) == secret
        result = runner.invoke(args=["users", "reseal-totp"])
        assert result.exit_code == 0 and "1 users" in result.output
        db.session.expire_all()
        staff = db.session.get(type(staff), staff.id)
        assert staff.totp_secret_sealed != old_sealed
        app.config["FAIRBID_TOTP_PREVIOUS_KEYS"] = ()
        assert staff.totp_secret == secret
    finally:
        app.config["FAIRBID_TOTP_KEY"] = ""
        app.config["FAIRBID_TOTP_PREVIOUS_KEYS"] = ()


def test_the_migration_seals_existing_secrets_and_the_downgrade_opens_them(tmp_path_factory):
    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    from app.accounts import security
    from app.extensions import db
    from tests.conftest import build_app, dispose

    app = build_app(tmp_path_factory, "totp_migration")
    with app.app_context():
        downgrade(revision="8e76199cd94a")
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO user_account (email, full_name, password_hash, role, "
                    "is_enabled, totp_secret, totp_last_step, created_at, session_version) "
                    "VALUES ('s@example.com', 'S', 'x', 'staff', true, 'JBSWY3DPEHPK3PXP', 0, "
                    "CURRENT_TIMESTAMP, 0)"
                )
            )
        upgrade()
        with db.engine.connect() as connection:
            sealed = connection.execute(
                sa.text("SELECT totp_secret_sealed FROM user_account")
            ).scalar_one()
        assert "JBSWY3DPEHPK3PXP" not in sealed
        assert security.open_totp_secret(sealed) == "JBSWY3DPEHPK3PXP"
        downgrade(revision="8e76199cd94a")
        with db.engine.connect() as connection:
            plain = connection.execute(sa.text("SELECT totp_secret FROM user_account")).scalar_one()
        assert plain == "JBSWY3DPEHPK3PXP"
        with db.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM user_account"))
        upgrade()
    dispose(app)


def test_limiter_shortcut_skips_only_routes_no_limit_applies_to(app, client, monkeypatch):
    """The limiter's before-request pass is skipped for an unlimited route (app.core.
    request_hooks) only while no default limit exists: with one, the route is limited."""
    from flask_limiter import Limit

    from app.extensions import limiter

    assert all(client.get("/healthz").status_code == 200 for _ in range(3))
    default = Limit(limit_provider="2 per minute", key_function=lambda: "one-client").bind(limiter)
    monkeypatch.setattr(limiter.limit_manager, "_default_limits", [default])
    statuses = [client.get("/healthz").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
