"""A live Fairbid server on a loopback port and Debian's headless Chromium via Playwright."""

from __future__ import annotations

import logging
import shutil
import threading

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server

from app.accounts import security
from app.accounts.models import Role, User
from app.extensions import db
from app.panels.models import MemberStatus, PanelMember
from app.tenders.models import Tender
from tests.conftest import Outbox, build_app, dispose
from tests.factories import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# A loaded CI machine is slow: give page assertions time before calling them failures.
expect.set_options(timeout=15_000)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    app = build_app(tmp_path_factory, "browser", WTF_CSRF_ENABLED=True)
    yield app
    dispose(app)


@pytest.fixture(scope="session")
def live_server(live_app):
    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    # Links in e-mail are built on the public address: here, the live server's.
    live_app.config.update(PUBLIC_URL=url, SERVER_NAME=url.split("//", 1)[1])
    yield url
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def outbox(live_app):
    outbox = Outbox(live_app)
    outbox.clear()
    return outbox


# --- the demo seed (`make run`'s data, every stage of the lifecycle), for the layout,
# accessibility and keyboard tests -------------------------------------------------------


@pytest.fixture(scope="session")
def demo_app(tmp_path_factory):
    app = build_app(tmp_path_factory, "ux", WTF_CSRF_ENABLED=True)
    with app.app_context():
        from app.demo import seed

        seed(echo=lambda _line: None)
        # One known password for every account; no TOTP step used yet.
        for user in db.session.scalars(select(User)):
            user.password_hash = security.hash_password(PASSWORD)
            user.totp_last_step = 0
        db.session.commit()
        db.session.remove()
    yield app
    dispose(app)


@pytest.fixture(scope="session")
def demo_server(demo_app):
    import threading

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = make_server("127.0.0.1", 0, demo_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    demo_app.config.update(PUBLIC_URL=url, SERVER_NAME=url.split("//", 1)[1])
    yield url
    server.shutdown()
    thread.join(timeout=5)


def _tender(reference: str) -> int:
    return db.session.scalar(select(Tender.id).where(Tender.reference == reference))


@pytest.fixture(scope="session")
def demo(demo_app) -> dict:
    """Ids and accounts the pages below need."""
    with demo_app.app_context():
        ids = {
            key: _tender(reference)
            for key, reference in {
                "open": "HZ-DEMO-OPEN",
                "closed": "HZ-DEMO-CLOSED",
                "eval": "HZ-DEMO-EVAL",
                "cand": "HZ-DEMO-CAND",
                "award": "HZ-DEMO-AWARD",
                "fail": "HZ-DEMO-FAIL",
                "goods": "HZ-G-2026-001",
            }.items()
        }
        member = db.session.scalars(
            select(User)
            .join(PanelMember, PanelMember.user_id == User.id)
            .where(
                PanelMember.tender_id == ids["eval"],
                User.role == Role.EXPERT,
                # Seated with an open sheet (the demo tour leaves other demo experts invited).
                PanelMember.status == MemberStatus.ACCEPTED,
                PanelMember.conflict_declared_at.is_not(None),
            )
            .order_by(User.id)
        ).first()
        people = {
            "bidder": "bidder1@demo.fairbid.example",
            "staff": "staff@demo.fairbid.example",
            "custodian": "custodian1@demo.fairbid.example",
            "expert": member.email,
            "supervisor": "supervisor@demo.fairbid.example",
            "admin": "admin@demo.fairbid.example",
        }
        secrets = {
            role: db.session.scalar(select(User).where(User.email == email)).totp_secret
            for role, email in people.items()
        }
        db.session.remove()
    return {"ids": ids, "people": people, "secrets": secrets}
