"""Fixtures for the app's tests: a migrated database per xdist worker, a transaction per
test that is rolled back, real Redis when REDIS_URL is set, captured e-mail.

Pure-library tests (tests/bidding, tests/evaluation) use none of this.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import nullcontext

import pyotp
import pytest
import sqlalchemy as sa
from flask import g, has_app_context, request_started
from hypothesis import settings
from sqlalchemy import orm

from config import TestingConfig, normalise_database_url

pytest_plugins = ["tests.factories", "tests.factories.results"]

# Tests never time things (a loaded CI machine is slow); CI replays the same examples every
# run, so a red build is reproducible, while local runs keep exploring new ones.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(re.sub(r"\D", "", worker) or 0)


def using_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql"))


def fresh_database(tmp_path_factory, name: str) -> tuple[str, dict]:
    """An empty database for one worker: a PostgreSQL schema, or a SQLite file."""
    if using_postgres():
        url = normalise_database_url(os.environ["DATABASE_URL"])
        # One schema per test run and worker, so concurrent runs on one server never meet.
        run = re.sub(r"\W", "", os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid())))[:8]
        schema = f"t_{name}_{run}_{_worker_index()}"
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        engine.dispose()
        return url, {
            "connect_args": {"options": f"-csearch_path={schema}"},
            "pool_pre_ping": True,
        }
    path = tmp_path_factory.mktemp(f"db-{name}") / "fairbid.db"
    return f"sqlite:///{path}", {"connect_args": {"timeout": 15}}


def redis_url() -> str:
    """A Redis database of its own per worker on the real server, or the stand-in."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return ""
    base = url.rsplit("/", 1)[0] if re.search(r"/\d+$", url) else url.rstrip("/")
    return f"{base}/{1 + _worker_index()}"


def build_app(tmp_path_factory, name: str, **overrides):
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    url, engine_options = fresh_database(tmp_path_factory, name)
    instance = tmp_path_factory.mktemp(f"instance-{name}")
    settings = {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "REDIS_URL": redis_url(),
        "INSTANCE_DIR": instance,
        "MAIL_FILE_PATH": str(instance / "mail"),
    }
    app = create_app(TestingConfig, **{**settings, **overrides})
    with app.app_context():
        upgrade()
        db.session.remove()
    return app


def dispose(app) -> None:
    """Close the app's connections; on PostgreSQL drop the run's schema."""
    from app.extensions import db

    with app.app_context():
        db.session.remove()
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {}).get("options")
        for engine in db.engines.values():
            engine.dispose()
    if options and options.startswith("-csearch_path="):
        engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as connection:
            schema = options.split("=", 1)[1]
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(scope="session")
def _app(tmp_path_factory):
    app = build_app(tmp_path_factory, "main")
    yield app
    dispose(app)


def _forget_request_user(sender, **extra):
    # Tests keep one app context pushed (for the shared session), so `g` would carry
    # Flask-Login's cached user from one request into the next; a server never does.
    g.pop("_login_user", None)


@pytest.fixture
def app(_app):
    """The app with a clean database: everything a test writes is rolled back."""
    from app.extensions import db, limiter, redis_client

    with _app.app_context():
        _app.extensions["mailman"].outbox = []  # the locmem backend's captured mail
        limiter.reset()
        redis_client.client.flushdb()
        connection = db.engine.connect()
        transaction = connection.begin()
        original_session = db.session
        db.session = orm.scoped_session(
            orm.sessionmaker(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=True
            )
        )
        request_started.connect(_forget_request_user, _app)
        try:
            yield _app
        finally:
            request_started.disconnect(_forget_request_user, _app)
            db.session.remove()
            db.session = original_session
            transaction.rollback()
            connection.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Outbox:
    """Captured e-mail. With a real Redis the mail jobs sit in the queue, so a burst
    worker runs them (in this process and app context) before each look."""

    def __init__(self, app):
        self.app = app

    def messages(self) -> list:
        if self.app.config["REDIS_URL"]:
            from rq import SimpleWorker

            from app.extensions import get_queue

            # Popping a second app context would end the test's database session.
            context = nullcontext() if has_app_context() else self.app.app_context()
            with context:
                queue = get_queue()
                SimpleWorker([queue], connection=queue.connection).work(burst=True)
        return self.app.extensions["mailman"].__dict__.setdefault("outbox", [])

    def __len__(self) -> int:
        return len(self.messages())

    def __getitem__(self, index):
        return self.messages()[index]

    def clear(self) -> None:
        self.messages().clear()


def run_queued_jobs() -> None:
    """With a real Redis, jobs sit in the queue: a burst worker runs them here, in this
    process and app context (with the in-process stand-in they already ran inline)."""
    from flask import current_app
    from rq import SimpleWorker

    from app.extensions import get_queue

    if not current_app.config["REDIS_URL"]:
        return
    queue = get_queue()
    if threading.current_thread() is threading.main_thread():
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
        return
    # A worker installs signal handlers, which only the main thread may do.
    while (job := queue.dequeue_any([queue], None, connection=queue.connection)) is not None:
        job[0].perform()


@pytest.fixture
def outbox(app):
    return Outbox(app)


def totp_now(user) -> str:
    return pyotp.TOTP(user.totp_secret).now()


class AuthActions:
    """Sign in through the real forms, second factor included."""

    def __init__(self, client):
        self.client = client

    def login(self, user, password: str = "correct horse battery"):
        response = self.client.post(
            "/accounts/login", data={"email": user.email, "password": password}
        )
        if user.needs_totp:
            assert response.status_code == 302, response.data[:500]
            response = self.client.post("/accounts/two-factor", data={"code": totp_now(user)})
        assert response.status_code == 302, response.data[:500]
        return response

    def logout(self):
        return self.client.post("/accounts/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)
