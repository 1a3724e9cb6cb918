"""The site's own address, its secret key, sessions that end, and TOTP secrets at rest
(issue 12: items 3, 6, 10 and 12)."""

from __future__ import annotations

import re

import pytest

from app.core.urls import public_url


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
