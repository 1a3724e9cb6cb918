"""Sign-in under a surge (issue 18): argon2 off the event loop and with no database connection
held, and a per-account limit whose key needs no database and cannot fail open."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from app.accounts import limits, operations, security
from app.accounts.models import User
from app.audit import AuditEvent, verify_chain
from app.extensions import db, limiter
from tests.factories import PASSWORD


def _events(action: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    )


def test_without_gevent_argon2_runs_in_the_calling_thread(app):
    seen = []
    assert security.run_blocking(lambda x: seen.append(threading.get_ident()) or x, 7) == 7
    assert seen == [threading.get_ident()]
    assert security.check_password(security.hash_password(PASSWORD), PASSWORD)
    assert not security.check_password(security.hash_password(PASSWORD), "another password")
    assert not security.check_password(None, PASSWORD)


def test_under_gevent_argon2_runs_in_a_native_thread_while_the_loop_serves(tmp_path):
    # A fresh interpreter: gevent's monkey-patching cannot be undone in this one. The
    # verification waits for a native event that only another greenlet sets: it completes
    # only if it runs off the event loop while the loop keeps serving.
    script = tmp_path / "under_gevent.py"
    script.write_text(
        textwrap.dedent(
            """
            from gevent import monkey
            monkey.patch_all()
            import gevent
            from flask import Flask
            from app.accounts import security

            native = monkey.get_original("threading", "Event")()
            get_ident = monkey.get_original("threading", "get_ident")
            loop_thread = get_ident()
            app = Flask("t")
            app.config.update(ARGON2_TIME_COST=1, ARGON2_MEMORY_COST=1024)

            def wait_for_greenlet():
                assert native.wait(20), "the event loop did not run during the call"
                return get_ident()

            setter = gevent.spawn(native.set)
            assert security.run_blocking(wait_for_greenlet) != loop_thread
            setter.join()
            with app.app_context():
                hashed = security.hash_password("correct horse battery")
                assert security.check_password(hashed, "correct horse battery")
                assert not security.check_password(hashed, "wrong horse battery")
                assert not security.check_password(None, "correct horse battery")

            def verify():
                with app.app_context():
                    return security.check_password(hashed, "correct horse battery")

            verifications = [gevent.spawn(verify) for _ in range(6)]
            gevent.joinall(verifications, raise_error=True)
            assert all(g.value for g in verifications)
            pool = security._argon2_pool()
            assert 1 <= pool.maxsize <= security.os.cpu_count()
            print("ok")
            """
        )
    )
    repo = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": repo},
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_no_transaction_is_open_while_the_password_is_verified(app, make_user, monkeypatch):
    user = make_user(email="verify.alone@example.com")
    db.session.expire_all()
    verify = security.check_password
    during = []

    def watched(password_hash, password):
        during.append(db.session().in_transaction())
        return verify(password_hash, password)

    monkeypatch.setattr(security, "check_password", watched)
    assert operations.authenticate(" Verify.Alone@example.com ", PASSWORD).id == user.id
    assert during == [False]
    db.session.rollback()


def test_a_password_changed_during_the_verification_is_refused(app, make_user, monkeypatch):
    user = make_user(email="changed.meanwhile@example.com")
    verify = security.check_password

    def changed_meanwhile(password_hash, password):
        # Another request resets the password while this one verifies the old one.
        # (The tests' sessions are bound to one connection: its outer transaction is
        # what another request's commit looks like to this session's next transaction.)
        db.session.get_bind().execute(
            update(User)
            .where(User.id == user.id)
            .values(password_hash=security.hash_password("a brand new password"))
        )
        return verify(password_hash, password)

    db.session.expire_all()
    monkeypatch.setattr(security, "check_password", changed_meanwhile)
    try:
        operations.authenticate(user.email, PASSWORD)
    except operations.SignInFailed as error:
        assert error.code == "bad_credentials"
    else:
        raise AssertionError("a sign-in with the replaced password was accepted")
    db.session.rollback()


def test_a_hash_of_another_cost_is_replaced_at_sign_in(app, client, make_user):
    user = make_user(email="old.cost@example.com")
    user.password_hash = PasswordHasher(time_cost=2, memory_cost=2048).hash(PASSWORD)
    db.session.commit()
    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    db.session.expire_all()
    stored = db.session.get(User, user.id).password_hash
    assert not security.password_needs_rehash(stored)
    assert security.check_password(stored, PASSWORD)


def test_a_sign_in_is_recorded_with_the_chain_intact(app, client, make_user):
    user = make_user(email="recorded@example.com")
    before = _events("auth.signed_in")
    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert _events("auth.signed_in") == before + 1
    db.session.expire_all()
    assert db.session.get(User, user.id).last_login_at is not None
    assert verify_chain() is None


def test_the_account_key_needs_no_database(app, make_user, monkeypatch):
    user = make_user(email="key.owner@example.com")

    def no_database(*args, **kwargs):
        raise AssertionError("the limiter key queried the database")

    monkeypatch.setattr(db.session, "execute", no_database)
    monkeypatch.setattr(db.session, "scalar", no_database)
    with app.test_request_context("/accounts/login", method="POST"):
        assert limits.account_key(user) == limits.account_key(" KEY.Owner@Example.com ")
        assert limits.account_key("nobody@example.com") == "email:nobody@example.com"
        assert limits.account_key(user) != limits.account_key("nobody@example.com")


def test_a_failing_account_key_refuses_the_attempt(app, client, make_user, monkeypatch):
    user = make_user(email="key.fails@example.com")
    limiter.reset()

    def broken(email):
        raise RuntimeError("the key function failed")

    monkeypatch.setattr(limits, "normalise_email", broken)
    before = (_events("auth.signed_in"), _events("auth.sign_in_failed"))
    allowed = int(app.config["RATELIMIT_LOGIN_ACCOUNT"].split()[0])
    for n in range(allowed + 1):
        response = client.post(
            "/accounts/login",
            data={"email": user.email, "password": PASSWORD},
            environ_base={"REMOTE_ADDR": f"10.0.9.{n}"},
        )
        assert response.status_code == 503
    # No password was checked and nobody signed in: the view never ran.
    assert (_events("auth.signed_in"), _events("auth.sign_in_failed")) == before
    with client.session_transaction() as session:
        assert "_user_id" not in session
    # The limiter did not take the failure for a storage failure (no in-memory fallback).
    assert not limiter._storage_dead
    monkeypatch.undo()
    response = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302


def test_sign_ins_beyond_the_slots_wait_without_a_connection_then_get_a_clear_503(
    app, client, make_user, monkeypatch
):
    # Every slot taken (by sign-ins in progress elsewhere in the process): a new sign-in
    # waits its turn before its first query, then, none free in time, is told to try again
    # with nothing checked, counted or stored.
    user = make_user(email="queued@example.com")
    monkeypatch.setitem(app.config, "SIGN_IN_CONCURRENCY", 2)
    monkeypatch.setitem(app.config, "SIGN_IN_QUEUE_SECONDS", 0.01)
    taken = [security.sign_in_slot(2, 1) for _ in range(2)]
    assert all(slot is not None for slot in taken)
    queried = []
    monkeypatch.setattr(operations, "user_by_email", lambda email: queried.append(email))
    before = (_events("auth.signed_in"), _events("auth.sign_in_failed"))
    try:
        page = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
        assert page.status_code == 503
        assert "Many people are signing in right now" in page.get_data(as_text=True)
        api = client.post("/api/v1/tokens", json={"email": user.email, "password": PASSWORD})
        assert api.status_code == 503 and api.json["error"] == "busy"
    finally:
        for slot in taken:
            slot.release()
    assert queried == []  # refused before the first query: no connection was taken
    assert (_events("auth.signed_in"), _events("auth.sign_in_failed")) == before
    with client.session_transaction() as session:
        assert "_user_id" not in session
    # A slot free again: the same sign-in goes through.
    monkeypatch.undo()
    page = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert page.status_code == 302


def test_a_sign_in_slot_is_given_back_after_a_refusal(app, client, make_user, monkeypatch):
    user = make_user(email="slot.back@example.com")
    monkeypatch.setitem(app.config, "SIGN_IN_CONCURRENCY", 1)
    monkeypatch.setitem(app.config, "SIGN_IN_QUEUE_SECONDS", 0.01)
    wrong = client.post("/accounts/login", data={"email": user.email, "password": "wrong pass"})
    assert wrong.status_code == 401
    right = client.post("/accounts/login", data={"email": user.email, "password": PASSWORD})
    assert right.status_code == 302  # the refused attempt released its slot
