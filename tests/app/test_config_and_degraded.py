"""Configuration safety, and Redis outages that degrade live features but lose nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.accounts.models import User
from app.extensions import db
from tests.factories.accounts import signup_form


def test_production_refuses_development_secrets(monkeypatch):
    import config

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", "")
    monkeypatch.setattr(config.ProductionConfig, "PUBLIC_URL", "")
    monkeypatch.setattr(config.ProductionConfig, "REDIS_URL", "")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("FAIRBID_PLATFORM_KEY", raising=False)
    for name in config.SIGNING_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError) as error:
        config.ProductionConfig.check()
    message = str(error.value)
    for name in (
        "SECRET_KEY",
        "FAIRBID_PUBLIC_URL",
        "DATABASE_URL",
        "REDIS_URL",
        "FAIRBID_PLATFORM_KEY",
    ):
        assert name in message
    for name in config.SIGNING_SETTINGS:
        assert name in message


def test_production_accepts_real_settings(monkeypatch):
    import config

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", "k" * 48)
    monkeypatch.setattr(config.ProductionConfig, "PUBLIC_URL", "https://bids.example.gov")
    monkeypatch.setattr(config.ProductionConfig, "REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://fairbid@db/fairbid")
    monkeypatch.setenv("FAIRBID_PLATFORM_KEY", "/etc/fairbid/receipt-key.pem")
    for name in config.SIGNING_SETTINGS:
        monkeypatch.setenv(name, f"/etc/fairbid/{name.lower()}.pem")
    config.ProductionConfig.check()


def test_production_refuses_to_start_without_a_signing_certificate(monkeypatch):
    import config

    monkeypatch.setattr(config.ProductionConfig, "SECRET_KEY", "k" * 48)
    monkeypatch.setattr(config.ProductionConfig, "PUBLIC_URL", "https://bids.example.gov")
    monkeypatch.setattr(config.ProductionConfig, "REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://fairbid@db/fairbid")
    monkeypatch.setenv("FAIRBID_PLATFORM_KEY", "/etc/fairbid/receipt-key.pem")
    for name in config.SIGNING_SETTINGS:
        monkeypatch.setenv(name, f"/etc/fairbid/{name.lower()}.pem")
    monkeypatch.delenv("FAIRBID_SIGNING_CERT")
    with pytest.raises(RuntimeError, match="FAIRBID_SIGNING_CERT must name the PEM files"):
        config.ProductionConfig.check()


def test_database_url_uses_psycopg3():
    from config import normalise_database_url

    assert normalise_database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.fixture
def redis_down(app):
    """Point the app at a port where no Redis listens (an outage)."""
    import redis as redis_lib

    from app import web

    original = app.extensions["fairbid_redis"]
    app.extensions["fairbid_redis"] = redis_lib.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2
    )
    web._redis_state.update(checked=0.0, ok=True)
    yield
    app.extensions["fairbid_redis"] = original
    web._redis_state.update(checked=0.0, ok=True)


def test_redis_outage_shows_a_degraded_banner_and_sign_up_still_works(
    client, redis_down, make_centre, outbox
):
    page = client.get("/")
    assert page.status_code == 200
    assert b"Live updates and queues are temporarily unavailable" in page.data
    response = client.post("/accounts/signup", data=signup_form(make_centre()))
    assert response.status_code == 200
    assert db.session.scalar(select(User).where(User.email == "li.si@bridges.example"))
    health = client.get("/healthz").json
    assert health == {"database": "ok", "redis": "degraded"}


LIMITER_DOWN_SCRIPT = """
import sys
from config import TestingConfig
from app import create_app
from app.accounts import security
from app.accounts.models import User
from app.core.types import utcnow
from app.extensions import db
from flask_migrate import upgrade

app = create_app(
    TestingConfig,
    SQLALCHEMY_DATABASE_URI="sqlite:///" + sys.argv[1] + "/fairbid.db",
    INSTANCE_DIR=sys.argv[1],
    RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
)
with app.app_context():
    upgrade()
    db.session.add(User(email="down@example.com", full_name="Down", role="bidder",
                        password_hash=security.hash_password("correct horse battery"),
                        email_confirmed_at=utcnow()))
    db.session.commit()
response = app.test_client().post(
    "/accounts/login", data={"email": "down@example.com", "password": "correct horse battery"}
)
print(response.status_code)
"""


def test_sign_in_works_when_the_rate_limit_store_is_down(tmp_path):
    """Flask-Limiter falls back to in-memory limits instead of failing sign-in. Run in its
    own process: the limiter's storage is process-wide."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", LIMITER_DOWN_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == "302", result.stderr[-2000:]
